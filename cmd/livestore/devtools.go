package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/livestore-go/livestore/devtools"
	"github.com/livestore-go/livestore/inspect"
)

func runDevtools(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var sf storageFlags
	var addr, logLevel, allowedHosts, storeDir string
	fs := flag.NewFlagSet("livestore devtools", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sf.register(fs)
	fs.StringVar(&addr, "addr", "127.0.0.1:8788", "address to listen on (host:port)")
	fs.StringVar(&logLevel, "log-level", "warn", "log level: debug, info, warn or error")
	fs.StringVar(&storeDir, "dir", "", "a client store directory to look into (read-only, without the app's schema), instead of a sync storage")
	var dtOpts devtools.Options
	fs.IntVar(&dtOpts.MaxAnswerBytes, "max-answer-bytes", devtools.DefaultMaxAnswerBytes, "largest answer of the devtools API; longer lists and pages are cut and say so")
	fs.DurationVar(&dtOpts.QueryTimeout, "query-timeout", devtools.DefaultQueryTimeout, "time allowed to one devtools API request")
	fs.StringVar(&allowedHosts, "allowed-hosts", "", "comma-separated host names (patterns) the page answers besides localhost, 127.0.0.1 and [::1]; requests naming another Host get 403")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: livestore devtools [flags]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Serves the devtools page (stores, heads, events, refreshed live) over a sync")
		fmt.Fprintln(stderr, "storage without running a sync server, e.g. to watch a PostgreSQL storage that")
		fmt.Fprintln(stderr, "other servers write. The page is at /_devtools/, where `livestore serve` has it too.")
		fmt.Fprintln(stderr, "With --dir, serves the page of a client store directory instead: its tables,")
		fmt.Fprintln(stderr, "eventlog, recorded sync status, export and read-only SQL.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	logger, err := newLogger(logLevel, stderr)
	if err != nil {
		return err
	}
	dtOpts.Logger = logger
	hosts, err := splitPatterns(allowedHosts, "--allowed-hosts")
	if err != nil {
		return err
	}
	var page http.Handler
	if storeDir != "" {
		storage := false
		fs.Visit(func(f *flag.Flag) {
			storage = storage || f.Name == "data" || f.Name == "postgres" || f.Name == "pg-schema"
		})
		if storage {
			return fmt.Errorf("%w: --dir reads a client store, --data and --postgres a sync storage: give one", errUsage)
		}
		d, err := inspect.Open(ctx, storeDir)
		if err != nil {
			return err
		}
		d.Close()
		page = devtools.DirHandler(storeDir, dtOpts)
	} else {
		st, closeFn, err := sf.openReadOnly(ctx)
		if err != nil {
			return err
		}
		defer closeFn()
		page = devtools.ServerHandler(st, dtOpts)
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	// The page lives under /_devtools/ as under `livestore serve`, so that
	// links and bookmarks work against either.
	mux := http.NewServeMux()
	mux.Handle("/_devtools/", http.StripPrefix("/_devtools", page))
	mux.Handle("/_devtools", http.RedirectHandler("/_devtools/", http.StatusMovedPermanently))
	mux.Handle("GET /{$}", http.RedirectHandler("/_devtools/", http.StatusFound))
	srv := &http.Server{
		Handler:           newAdminGate(mux, hosts, ""),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "livestore devtools on http://%s/_devtools/\n", ln.Addr())
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
