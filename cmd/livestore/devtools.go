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

const devtoolsUsage = `Usage: livestore devtools [flags]

Serves the devtools page (stores, heads, events, refreshed live) over a sync
storage without running a sync server, e.g. to watch a PostgreSQL storage that
other servers write. The page is at /_devtools/, where ` + "`livestore serve`" + ` has it too.
With --dir, serves the page of a client store directory instead: its tables,
eventlog, recorded sync status, export and read-only SQL.
`

// devtoolsFlags are the flags of devtools.
type devtoolsFlags struct {
	storage      storageFlags
	addr         string
	logLevel     string
	allowedHosts string
	storeDir     string
	opts         devtools.Options
}

func (f *devtoolsFlags) register(fs *flag.FlagSet) {
	f.storage.register(fs)
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8788", "address to listen on (host:port)")
	fs.StringVar(&f.logLevel, "log-level", "warn", "log level: debug, info, warn or error")
	fs.StringVar(&f.storeDir, "dir", "", "a client store directory to look into (read-only, without the app's schema), instead of a sync storage")
	fs.IntVar(&f.opts.MaxAnswerBytes, "max-answer-bytes", devtools.DefaultMaxAnswerBytes, "largest answer of the devtools API; longer lists and pages are cut and say so")
	fs.DurationVar(&f.opts.QueryTimeout, "query-timeout", devtools.DefaultQueryTimeout, "time allowed to one devtools API request")
	fs.StringVar(&f.allowedHosts, "allowed-hosts", "", "comma-separated host names (patterns) the page answers besides localhost, 127.0.0.1 and [::1]; requests naming another Host get 403")
}

func runDevtools(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f devtoolsFlags
	fs := newFlagSet("devtools", devtoolsUsage, stderr)
	f.register(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	logger, err := newLogger(f.logLevel, stderr)
	if err != nil {
		return err
	}
	f.opts.Logger = logger
	hosts, err := splitPatterns(f.allowedHosts, "--allowed-hosts")
	if err != nil {
		return err
	}
	if f.storeDir != "" && storageFlagGiven(fs) {
		return fmt.Errorf("%w: --dir reads a client store, --data and --postgres a sync storage: give one", errUsage)
	}
	page, closePage, err := f.page(ctx)
	if err != nil {
		return err
	}
	defer closePage()

	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", f.addr, err)
	}
	srv := &http.Server{
		Handler:           newAdminGate(devtoolsMux(page), hosts, ""),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return serveDevtools(ctx, srv, ln, stdout)
}

// storageFlagGiven reports whether the command line set a flag choosing a
// sync storage.
func storageFlagGiven(fs *flag.FlagSet) bool {
	given := false
	fs.Visit(func(f *flag.Flag) {
		given = given || f.Name == "data" || f.Name == "postgres" || f.Name == "pg-schema"
	})
	return given
}

// page returns the devtools page of the client store directory (--dir) or
// of the sync storage, and what releases it.
func (f *devtoolsFlags) page(ctx context.Context) (http.Handler, func(), error) {
	if f.storeDir != "" {
		// Fail now on what is not a store directory rather than on the
		// page's first request.
		d, err := inspect.Open(ctx, f.storeDir)
		if err != nil {
			return nil, nil, err
		}
		d.Close()
		return devtools.DirHandler(f.storeDir, f.opts), func() {}, nil
	}
	st, closeFn, err := f.storage.openReadOnly(ctx)
	if err != nil {
		return nil, nil, err
	}
	return devtools.ServerHandler(st, f.opts), closeFn, nil
}

// devtoolsMux puts page under /_devtools/ as `livestore serve` does, so that
// links and bookmarks work against either.
func devtoolsMux(page http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/_devtools/", http.StripPrefix("/_devtools", page))
	mux.Handle("/_devtools", http.RedirectHandler("/_devtools/", http.StatusMovedPermanently))
	mux.Handle("GET /{$}", http.RedirectHandler("/_devtools/", http.StatusFound))
	return mux
}

// serveDevtools serves srv on ln until ctx ends, then shuts it down.
func serveDevtools(ctx context.Context, srv *http.Server, ln net.Listener, stdout io.Writer) error {
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
	err := srv.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
