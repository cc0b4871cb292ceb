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
)

func runDevtools(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var sf storageFlags
	var addr, logLevel, allowedHosts string
	fs := flag.NewFlagSet("livestore devtools", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sf.register(fs)
	fs.StringVar(&addr, "addr", "127.0.0.1:8788", "address to listen on (host:port)")
	fs.StringVar(&logLevel, "log-level", "warn", "log level: debug, info, warn or error")
	fs.StringVar(&allowedHosts, "allowed-hosts", "", "comma-separated host names (patterns) the page answers besides localhost, 127.0.0.1 and [::1]; requests naming another Host get 403")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: livestore devtools [flags]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Serves the devtools page (stores, heads, events, refreshed live) over a sync")
		fmt.Fprintln(stderr, "storage without running a sync server, e.g. to watch a PostgreSQL storage that")
		fmt.Fprintln(stderr, "other servers write. `livestore serve` includes the same page under /_devtools/.")
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
	hosts, err := splitPatterns(allowedHosts, "--allowed-hosts")
	if err != nil {
		return err
	}
	st, closeFn, err := sf.openReadOnly(ctx)
	if err != nil {
		return err
	}
	defer closeFn()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           newAdminGate(devtools.ServerHandler(st, devtools.Options{Logger: logger}), hosts, ""),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "livestore devtools on http://%s/\n", ln.Addr())
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
