package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/livestore-go/livestore/mcp"
	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
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

// serveMCP is runMCP reading requests from stdin instead of the process's
// standard input.
func serveMCP(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var (
		storage   storageFlags
		storeDirs stringList
		noStorage bool
		logLevel  string
		maxAnswer int
		timeout   time.Duration
		allowW    bool
		serverURL string
		payload   string
	)
	fs := flag.NewFlagSet("livestore mcp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	storage.register(fs)
	fs.Var(&storeDirs, "store-dir", "client store directory the tools may read (repeatable)")
	fs.BoolVar(&noStorage, "no-storage", false, "serve only the --store-dir directories, no sync server storage")
	fs.StringVar(&logLevel, "log-level", "warn", "log level on stderr: debug, info, warn or error")
	fs.IntVar(&maxAnswer, "max-answer-bytes", mcp.DefaultMaxAnswerBytes, "most bytes in one tool answer; longer pages end early and say where to go on")
	fs.DurationVar(&timeout, "query-timeout", mcp.DefaultQueryTimeout, "most time one tool call reads; a SQL query is interrupted after it")
	fs.BoolVar(&allowW, "allow-writes", false, "enable push_events, which appends events to the storage's stores (read-only without it)")
	fs.StringVar(&serverURL, "server", "", "with --allow-writes: push through the running sync server at this URL (ws://HOST:PORT) instead of writing the storage")
	fs.StringVar(&payload, "server-payload", "", "with --server: the sync payload as JSON, e.g. {\"authToken\":\"...\"}")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: livestore mcp [flags]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Serves the Model Context Protocol on stdin/stdout until stdin closes, so that")
		fmt.Fprintln(stderr, "AI assistants can read a sync server's stores and events and client store")
		fmt.Fprintln(stderr, "directories. The tools only read unless --allow-writes is given. Logs go to stderr.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if noStorage && len(storeDirs) == 0 {
		return fmt.Errorf("%w: --no-storage needs at least one --store-dir", errUsage)
	}
	if allowW && noStorage {
		return fmt.Errorf("%w: --allow-writes appends to the sync storage; it cannot go with --no-storage", errUsage)
	}
	if !allowW && (serverURL != "" || payload != "") {
		return fmt.Errorf("%w: --server and --server-payload are for pushing: add --allow-writes", errUsage)
	}
	if payload != "" && (serverURL == "" || !json.Valid([]byte(payload))) {
		return fmt.Errorf("%w: --server-payload must be JSON and go with --server", errUsage)
	}
	logger, err := newLogger(logLevel, stderr)
	if err != nil {
		return err
	}

	opts := mcp.Options{StoreDirs: storeDirs, Version: moduleVersion(), Logger: logger, MaxAnswerBytes: maxAnswer, QueryTimeout: timeout}
	switch {
	case noStorage:
	case allowW && serverURL == "":
		st, closeStorage, err := openForPush(ctx, &storage)
		if err != nil {
			return err
		}
		defer closeStorage()
		opts.Storage = st
		opts.Appender = mcp.StorageAppender(st)
	default:
		st, closeStorage, err := storage.openReadOnly(ctx)
		if err != nil {
			return err
		}
		defer closeStorage()
		opts.Storage = st
		if allowW {
			opts.Appender = mcp.ServerAppender(serverURL, syncclient.Options{Payload: payloadJSON(payload), Logger: logger})
		}
	}
	srv, err := mcp.NewServer(opts)
	if err != nil {
		return err
	}
	// One client per process: the connection ends when stdin closes, or is
	// closed when ctx ends (SIGINT/SIGTERM), which is a normal end too.
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
