package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/livestore-go/livestore/mcp"
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
	)
	fs := flag.NewFlagSet("livestore mcp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	storage.register(fs)
	fs.Var(&storeDirs, "store-dir", "client store directory the tools may read (repeatable)")
	fs.BoolVar(&noStorage, "no-storage", false, "serve only the --store-dir directories, no sync server storage")
	fs.StringVar(&logLevel, "log-level", "warn", "log level on stderr: debug, info, warn or error")
	fs.IntVar(&maxAnswer, "max-answer-bytes", mcp.DefaultMaxAnswerBytes, "most bytes in one tool answer; longer pages end early and say where to go on")
	fs.DurationVar(&timeout, "query-timeout", mcp.DefaultQueryTimeout, "most time one tool call reads; a SQL query is interrupted after it")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: livestore mcp [flags]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Serves the Model Context Protocol on stdin/stdout until stdin closes, so that")
		fmt.Fprintln(stderr, "AI assistants can read a sync server's stores and events and client store")
		fmt.Fprintln(stderr, "directories. The tools only read. Logs go to stderr.")
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
	logger, err := newLogger(logLevel, stderr)
	if err != nil {
		return err
	}

	opts := mcp.Options{StoreDirs: storeDirs, Version: moduleVersion(), Logger: logger, MaxAnswerBytes: maxAnswer, QueryTimeout: timeout}
	if !noStorage {
		st, closeStorage, err := storage.openReadOnly(ctx)
		if err != nil {
			return err
		}
		defer closeStorage()
		opts.Storage = st
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
