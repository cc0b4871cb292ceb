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
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/livestore-go/livestore/devtools"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/pgstore"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// serveConfig is what the serve flags set.
type serveConfig struct {
	addr             string
	dataDir          string
	postgresURL      string
	pgSchema         string
	maxMessageBytes  int
	maxBatchSize     int
	maxConnsPerStore int
	maxConns         int
	maxPullsPerConn  int
	maxPullBytes     int
	maxArgsDepth     int
	writeTimeout     time.Duration
	maxPendingBytes  int
	logLevel         string
	shutdownTimeout  time.Duration
	pingInterval     time.Duration
	devtools         bool

	readHeaderTimeout time.Duration
	maxStorageBytes   int64

	devtoolsMaxAnswerBytes int
	devtoolsQueryTimeout   time.Duration
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		cfg  serveConfig
		auth authFlags
		dep  deployFlags
	)
	fs := serveFlagSet(&cfg, &auth, &dep, stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	logger, err := newLogger(cfg.logLevel, stderr)
	if err != nil {
		return err
	}
	if cfg.maxStorageBytes < 0 {
		return fmt.Errorf("%w: --max-storage-bytes must not be negative", errUsage)
	}
	if err := dep.prepare(); err != nil {
		return err
	}

	lns, err := dep.listen(cfg.addr, auth.configured())
	if err != nil {
		return err
	}
	defer lns.close()

	storage, describe, closeStorage, err := openStorage(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStorage()
	authFn, closeAuth, err := auth.build(ctx, logger)
	if err != nil {
		return err
	}
	defer closeAuth()

	srv, err := newSyncServer(cfg, storage, logger, authFn, dep.origins(lns.loopback))
	if err != nil {
		return err
	}
	var dt *devtools.Options
	if cfg.devtools {
		dt = &devtools.Options{Logger: logger, MaxAnswerBytes: cfg.devtoolsMaxAnswerBytes, QueryTimeout: cfg.devtoolsQueryTimeout}
	}
	mainH, adminH, err := dep.handlers(srv, storage, lns, dt, logger)
	if err != nil {
		_ = srv.Close()
		return err
	}

	servers := httpServers(cfg, lns, mainH, adminH, logger)
	served := startHTTP(servers)
	lns.announce(stdout, describe, cfg.devtools)
	if err := waitAndShutdown(ctx, cfg.shutdownTimeout, servers, served, srv, logger); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "livestore sync server stopped")
	return nil
}

// serveFlagSet returns the flag set of serve, writing into cfg, auth and dep.
func serveFlagSet(cfg *serveConfig, auth *authFlags, dep *deployFlags, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("livestore serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8787", "address to listen on (host:port)")
	fs.StringVar(&cfg.dataDir, "data", "./livestore-data", "directory of the SQLite storage (file sync.db inside it)")
	fs.StringVar(&cfg.postgresURL, "postgres", "", "PostgreSQL URL; stores events there instead of SQLite, so that several servers can share them")
	fs.StringVar(&cfg.pgSchema, "pg-schema", "public", "PostgreSQL schema of the tables (with --postgres)")
	fs.IntVar(&cfg.maxMessageBytes, "max-message-bytes", syncserver.DefaultMaxMessageBytes, "largest WebSocket message accepted from a client")
	fs.IntVar(&cfg.maxBatchSize, "max-batch-size", syncserver.DefaultMaxBatchSize, "most events accepted in one push")
	fs.IntVar(&cfg.maxConnsPerStore, "max-connections-per-store", 0, "most WebSocket connections to one store (0: no limit)")
	fs.IntVar(&cfg.maxConns, "max-connections", syncserver.DefaultMaxConnections, "most WebSocket connections to the server; more are refused with HTTP 503")
	fs.IntVar(&cfg.maxPullsPerConn, "max-pulls-per-connection", syncserver.DefaultMaxPullsPerConn, "most pulls open at once on one connection")
	fs.IntVar(&cfg.maxPullBytes, "max-pull-bytes", syncserver.DefaultMaxPullBytes, "most bytes of pull pages read from storage and not yet sent, over all clients; pulls wait beyond it")
	fs.IntVar(&cfg.maxArgsDepth, "max-args-depth", syncproto.DefaultMaxArgsDepth, "deepest nesting accepted in a pushed event's args")
	fs.DurationVar(&cfg.writeTimeout, "write-timeout", syncserver.DefaultWriteTimeout, "time allowed to send one message to a client before it is disconnected")
	fs.IntVar(&cfg.maxPendingBytes, "max-pending-bytes", syncserver.DefaultMaxPendingBytes, "most bytes queued for one client; a client further behind is disconnected")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&cfg.devtools, "devtools", true, "serve the devtools page under /_devtools/ on the admin surface")
	fs.IntVar(&cfg.devtoolsMaxAnswerBytes, "devtools-max-answer-bytes", devtools.DefaultMaxAnswerBytes, "largest answer of the devtools API; longer lists and pages are cut and say so")
	fs.DurationVar(&cfg.devtoolsQueryTimeout, "devtools-query-timeout", devtools.DefaultQueryTimeout, "time allowed to one devtools API request reading the storage")
	fs.DurationVar(&cfg.pingInterval, "ping-interval", syncserver.DefaultPingInterval, "time between WebSocket pings to each client; a client that misses the next one is disconnected (negative: never ping)")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 30*time.Second, "time allowed on SIGINT/SIGTERM to finish pushes and close connections")
	fs.DurationVar(&cfg.readHeaderTimeout, "read-header-timeout", 10*time.Second, "time allowed to a client to send the headers of an HTTP request")
	fs.Int64Var(&cfg.maxStorageBytes, "max-storage-bytes", 0, "largest size of the SQLite storage file; pushes beyond it fail with \"storage full\" (0: no limit)")
	auth.register(fs)
	dep.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: livestore serve [flags]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Runs the sync server. Clients connect to ws://ADDR/?storeId=ID&transport=ws;")
		fmt.Fprintln(stderr, "GET /health reports health. The admin surface (/_devtools/, the stores and their")
		fmt.Fprintln(stderr, "events, and /metrics) stays on ADDR for a loopback address without auth and moves")
		fmt.Fprintln(stderr, "to --admin-addr otherwise. A non-loopback address needs auth or --insecure-no-auth.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	return fs
}

// newSyncServer builds the sync server from the serve flags.
func newSyncServer(cfg serveConfig, storage syncserver.Storage, logger *slog.Logger, authFn syncserver.AuthFunc, origins []string) (*syncserver.Server, error) {
	return syncserver.New(syncserver.Options{
		Storage:                storage,
		Logger:                 logger,
		MaxMessageBytes:        cfg.maxMessageBytes,
		MaxBatchSize:           cfg.maxBatchSize,
		MaxConnectionsPerStore: cfg.maxConnsPerStore,
		MaxConnections:         cfg.maxConns,
		MaxPullsPerConnection:  cfg.maxPullsPerConn,
		MaxPullBytes:           cfg.maxPullBytes,
		MaxArgsDepth:           cfg.maxArgsDepth,
		WriteTimeout:           cfg.writeTimeout,
		MaxPendingBytes:        cfg.maxPendingBytes,
		PingInterval:           cfg.pingInterval,
		Auth:                   authFn,
		OriginPatterns:         origins,
	})
}

// httpServers pairs each listener with the HTTP server answering on it: the
// sync surface, and the admin surface when it has its own listener.
func httpServers(cfg serveConfig, lns *serveListeners, mainH, adminH http.Handler, logger *slog.Logger) map[net.Listener]*http.Server {
	errorLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	servers := map[net.Listener]*http.Server{lns.sync: {Handler: mainH, ReadHeaderTimeout: cfg.readHeaderTimeout, ErrorLog: errorLog}}
	if lns.admin != nil {
		servers[lns.admin] = &http.Server{Handler: adminH, ReadHeaderTimeout: cfg.readHeaderTimeout, ErrorLog: errorLog}
	}
	return servers
}

// startHTTP serves each listener in its own goroutine; the channel receives
// one result per server when its Serve returns.
func startHTTP(servers map[net.Listener]*http.Server) <-chan error {
	served := make(chan error, len(servers))
	for ln, hs := range servers {
		go func() { served <- hs.Serve(ln) }()
	}
	return served
}

// waitAndShutdown waits for ctx to end or a server to fail, then shuts the
// HTTP servers and the sync server down within timeout and waits for every
// Serve goroutine to return.
func waitAndShutdown(ctx context.Context, timeout time.Duration, servers map[net.Listener]*http.Server, served <-chan error, srv *syncserver.Server, logger *slog.Logger) error {
	var serveErr error
	pending := len(servers)
	select {
	case serveErr = <-served:
		pending--
	case <-ctx.Done():
	}
	logger.Info("shutting down", "timeout", timeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Stop accepting first; WebSocket connections are hijacked, so the sync
	// server closes them itself after finishing their pushes.
	var errs []error
	for _, hs := range servers {
		errs = append(errs, hs.Shutdown(sctx))
	}
	errs = append(errs, srv.Shutdown(sctx))
	for range pending {
		<-served
	}
	if serveErr != nil {
		return fmt.Errorf("serve: %w", serveErr)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// openStorage opens PostgreSQL storage if --postgres is set, else the SQLite
// file in --data.
func openStorage(ctx context.Context, cfg serveConfig) (storage syncserver.Storage, describe string, closeFn func(), err error) {
	if cfg.postgresURL != "" {
		st, err := pgstore.Open(ctx, cfg.postgresURL, pgstore.Options{Schema: cfg.pgSchema})
		if err != nil {
			return nil, "", nil, err
		}
		return st, "postgres, schema " + cfg.pgSchema, func() { _ = st.Close() }, nil
	}
	if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
		return nil, "", nil, fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(cfg.dataDir, "sync.db")
	st, err := sqlitestore.Open(path, sqlitestore.Options{MaxBytes: cfg.maxStorageBytes})
	if err != nil {
		return nil, "", nil, fmt.Errorf("open storage in %s: %w", cfg.dataDir, err)
	}
	return st, "sqlite " + strings.TrimPrefix(path, "./"), func() { _ = st.Close() }, nil
}
