package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/pgstore"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
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

// open opens the storage for writing (import). With mustExist, a missing
// SQLite file is an error instead of being created.
func (f *storageFlags) open(ctx context.Context, mustExist bool) (storageReader, func(), error) {
	if f.postgresURL == "" && mustExist {
		if err := f.sqliteExists(); err != nil {
			return nil, nil, err
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

// openReadOnly opens an existing storage for the reading commands: nothing
// is created or migrated, no lock is taken (a running server keeps its
// storage), and what is not a sync storage is an error rather than an
// empty list.
func (f *storageFlags) openReadOnly(ctx context.Context) (storageReader, func(), error) {
	if f.postgresURL != "" {
		st, err := pgstore.OpenReadOnly(ctx, f.postgresURL, pgstore.Options{Schema: f.pgSchema})
		if err != nil {
			return nil, nil, err
		}
		return st, func() { _ = st.Close() }, nil
	}
	if err := f.sqliteExists(); err != nil {
		return nil, nil, err
	}
	st, err := sqlitestore.OpenReadOnly(filepath.Join(f.dataDir, "sync.db"))
	if err != nil {
		return nil, nil, err
	}
	return st, func() { _ = st.Close() }, nil
}

func (f *storageFlags) sqliteExists() error {
	path := filepath.Join(f.dataDir, "sync.db")
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("no sync storage at %s (pass --data DIR or --postgres URL)", path)
	case err != nil:
		return fmt.Errorf("sync storage %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("sync storage %s is not a file", path)
	}
	return nil
}
