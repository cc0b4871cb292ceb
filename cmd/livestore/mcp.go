package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/livestore-go/livestore/mcp"
	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"
)

// stringList is a flag that may be given several times.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ", ") }

func (l *stringList) Set(v string) error {
	if v == "" {
		return errors.New("empty path")
	}
	*l = append(*l, v)
	return nil
}

func runMCP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return serveMCP(ctx, args, os.Stdin, stdout, stderr)
}

const mcpUsage = `Usage: livestore mcp [flags]

Serves the Model Context Protocol on stdin/stdout until stdin closes, so that
AI assistants can read a sync server's stores and events and client store
directories. The tools only read unless --allow-writes is given. Logs go to stderr.
`

// mcpFlags are the flags of mcp.
type mcpFlags struct {
	storage   storageFlags
	storeDirs stringList
	noStorage bool
	logLevel  string
	maxAnswer int
	timeout   time.Duration
	allowW    bool
	serverURL string
	payload   string
}

func (f *mcpFlags) register(fs *flag.FlagSet) {
	f.storage.register(fs)
	fs.Var(&f.storeDirs, "store-dir", "client store directory the tools may read (repeatable)")
	fs.BoolVar(&f.noStorage, "no-storage", false, "serve only the --store-dir directories, no sync server storage")
	fs.StringVar(&f.logLevel, "log-level", "warn", "log level on stderr: debug, info, warn or error")
	fs.IntVar(&f.maxAnswer, "max-answer-bytes", mcp.DefaultMaxAnswerBytes, "most bytes in one tool answer; longer pages end early and say where to go on")
	fs.DurationVar(&f.timeout, "query-timeout", mcp.DefaultQueryTimeout, "most time one tool call reads; a SQL query is interrupted after it")
	fs.BoolVar(&f.allowW, "allow-writes", false, "enable push_events, which appends events to the storage's stores (read-only without it)")
	fs.StringVar(&f.serverURL, "server", "", "with --allow-writes: push through the running sync server at this URL (ws://HOST:PORT) instead of writing the storage")
	fs.StringVar(&f.payload, "server-payload", "", "with --server: the sync payload as JSON, e.g. {\"authToken\":\"...\"}")
}

// check rejects combinations of flags that do not go together.
func (f *mcpFlags) check() error {
	if f.noStorage && len(f.storeDirs) == 0 {
		return fmt.Errorf("%w: --no-storage needs at least one --store-dir", errUsage)
	}
	if f.allowW && f.noStorage {
		return fmt.Errorf("%w: --allow-writes appends to the sync storage; it cannot go with --no-storage", errUsage)
	}
	if !f.allowW && (f.serverURL != "" || f.payload != "") {
		return fmt.Errorf("%w: --server and --server-payload are for pushing: add --allow-writes", errUsage)
	}
	if f.payload != "" && (f.serverURL == "" || !json.Valid([]byte(f.payload))) {
		return fmt.Errorf("%w: --server-payload must be JSON and go with --server", errUsage)
	}
	return nil
}

// serveMCP is runMCP reading requests from stdin instead of the process's
// standard input.
func serveMCP(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var f mcpFlags
	fs := newFlagSet("mcp", mcpUsage, stderr)
	f.register(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	logger, err := newLogger(f.logLevel, stderr)
	if err != nil {
		return err
	}
	opts := mcp.Options{StoreDirs: f.storeDirs, Version: moduleVersion(), Logger: logger, MaxAnswerBytes: f.maxAnswer, QueryTimeout: f.timeout}
	closeStorage, err := f.openStorage(ctx, &opts)
	if err != nil {
		return err
	}
	defer closeStorage()
	srv, err := mcp.NewServer(opts)
	if err != nil {
		return err
	}
	return runMCPSession(ctx, srv, stdin, stdout, logger)
}

// openStorage sets the storage of opts, and its appender with
// --allow-writes, as the flags ask; it returns what closes the storage.
func (f *mcpFlags) openStorage(ctx context.Context, opts *mcp.Options) (func(), error) {
	switch {
	case f.noStorage:
		return func() {}, nil
	case f.allowW && f.serverURL == "":
		st, closeStorage, err := openForPush(ctx, &f.storage)
		if err != nil {
			return nil, err
		}
		opts.Storage = st
		opts.Appender = mcp.StorageAppender(st)
		return closeStorage, nil
	default:
		st, closeStorage, err := f.storage.openReadOnly(ctx)
		if err != nil {
			return nil, err
		}
		opts.Storage = st
		if f.allowW {
			opts.Appender = mcp.ServerAppender(f.serverURL, syncclient.Options{Payload: payloadJSON(f.payload), Logger: opts.Logger})
		}
		return closeStorage, nil
	}
}

// runMCPSession serves the one client of the process. The connection ends
// when stdin closes, or is closed when ctx ends (SIGINT/SIGTERM), which is a
// normal end too.
func runMCPSession(ctx context.Context, srv *sdkmcp.Server, stdin io.Reader, stdout io.Writer, logger *slog.Logger) error {
	filter := newStdioFilter(stdin, stdout, logger)
	defer filter.stop()
	ss, err := srv.Connect(ctx, filter.transport(), nil)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	ended := make(chan error, 1)
	go func() { ended <- ss.Wait() }()
	select {
	case err = <-ended:
	case <-ctx.Done():
		ss.Close()
		<-ended
		return nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// openForPush opens the storage for appending. A SQLite file that a
// running `livestore serve` holds cannot be opened: two writers would
// break the server's view of each store's head, so the events must go
// through the server.
func openForPush(ctx context.Context, storage *storageFlags) (storageReader, func(), error) {
	st, closeStorage, err := storage.open(ctx, true)
	if errors.Is(err, sqlitestore.ErrLocked) {
		return nil, nil, fmt.Errorf("--allow-writes: %w\na running sync server owns this storage: pass --server ws://HOST:PORT to push through it", err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("--allow-writes: %w", err)
	}
	return st, closeStorage, nil
}

// moduleVersion is the version the binary was built from ("go install
// ...@v1.2.3"), or "" for a build from a work tree.
func moduleVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok || info.Main.Version == "(devel)" {
		return ""
	}
	return info.Main.Version
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// payloadJSON is the --server-payload flag's JSON, nil when not given.
func payloadJSON(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}
