package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/livestore-go/livestore/syncserver"
)

// storageFlags select a sync server's storage, as serve does: the SQLite
// file in --data, or PostgreSQL with --postgres.
type storageFlags struct {
	dataDir     string
	postgresURL string
	pgSchema    string
}

func (f *storageFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dataDir, "data", "./livestore-data", "directory of the SQLite storage (file sync.db inside it)")
	fs.StringVar(&f.postgresURL, "postgres", "", "PostgreSQL URL of the storage, instead of --data")
	fs.StringVar(&f.pgSchema, "pg-schema", "public", "PostgreSQL schema of the tables (with --postgres)")
}

// storageReader is what reading commands need of a storage.
type storageReader interface {
	syncserver.Storage
	Stores(ctx context.Context) ([]syncserver.StoreInfo, error)
}

// open opens the storage. With mustExist, a missing SQLite file is an error
// instead of being created.
func (f *storageFlags) open(ctx context.Context, mustExist bool) (storageReader, func(), error) {
	if f.postgresURL == "" && mustExist {
		path := filepath.Join(f.dataDir, "sync.db")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("no sync storage at %s (pass --data DIR or --postgres URL)", path)
		}
	}
	st, _, closeFn, err := openStorage(ctx, serveConfig{dataDir: f.dataDir, postgresURL: f.postgresURL, pgSchema: f.pgSchema})
	if err != nil {
		return nil, nil, err
	}
	r, ok := st.(storageReader)
	if !ok {
		closeFn()
		return nil, nil, fmt.Errorf("storage %T cannot list its stores", st)
	}
	return r, closeFn, nil
}

// parseFlags parses args with fs, mapping errors to errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// newLogger returns a text logger to w at the --log-level given.
func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level: %v", errUsage, err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
