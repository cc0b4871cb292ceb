package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/pgstore"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// load is one run: its settings, the servers' URLs and the clients to
// close at its end.
type load struct {
	cfg      config
	urls     []string             // one per replica
	storages []syncserver.Storage // for the floor's pushers, which append straight to storage
	runID    string
	closers  []func()
}

// storeID is the store of the i-th pusher or follower.
func (l *load) storeID(i int) string { return fmt.Sprintf("load-%s-%d", l.runID, i%l.cfg.stores) }

// pusherURL is the server the i-th pusher connects to.
func (l *load) pusherURL(i int) string {
	if l.cfg.pushTo == "all" {
		return l.urls[i%len(l.urls)]
	}
	return l.urls[0]
}

// followerURL is the server live clients connect to: the last.
func (l *load) followerURL() string { return l.urls[len(l.urls)-1] }

// closeClients closes the clients, the last opened first.
func (l *load) closeClients() {
	for i := len(l.closers) - 1; i >= 0; i-- {
		l.closers[i]()
	}
}

// openStorages opens one storage handle per replica, all on the same data,
// and returns what closes them and removes the data.
func openStorages(cfg config) ([]syncserver.Storage, func(), error) {
	switch cfg.storage {
	case "sqlite":
		dir, err := os.MkdirTemp("", "serverload")
		if err != nil {
			return nil, nil, err
		}
		st, err := sqlitestore.Open(filepath.Join(dir, "sync.db"), sqlitestore.Options{})
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		return []syncserver.Storage{st}, func() { st.Close(); os.RemoveAll(dir) }, nil
	case "postgres":
		return openPostgres(cfg)
	}
	return nil, nil, fmt.Errorf("unknown --storage %q (sqlite or postgres)", cfg.storage)
}

// openPostgres opens cfg.replicas stores on one new schema, which the
// returned cleanup drops.
func openPostgres(cfg config) ([]syncserver.Storage, func(), error) {
	if cfg.postgresURL == "" {
		return nil, nil, errors.New("--postgres URL (or LIVESTORE_TEST_POSTGRES_URL) is required for --storage postgres")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	schema := "serverload_" + randomHex(4)
	var opened []*pgstore.Store
	cleanup := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if len(opened) > 0 {
			_ = opened[0].DropSchema(ctx)
		}
		for _, st := range opened {
			st.Close()
		}
	}
	storages := make([]syncserver.Storage, 0, cfg.replicas)
	for range cfg.replicas {
		st, err := pgstore.Open(ctx, cfg.postgresURL, pgstore.Options{Schema: schema})
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		opened = append(opened, st)
		storages = append(storages, st)
	}
	return storages, cleanup, nil
}

// startServers serves a sync server over each storage on a loopback port
// and returns their ws:// URLs and what shuts them down.
func startServers(storages []syncserver.Storage) (urls []string, stop func(), err error) {
	var stops []func()
	stopAll := func() {
		for _, s := range stops {
			s()
		}
	}
	for _, st := range storages {
		url, stop, err := startServer(st)
		if err != nil {
			stopAll()
			return nil, nil, err
		}
		urls = append(urls, url)
		stops = append(stops, stop)
	}
	return urls, stopAll, nil
}

// startServer serves a sync server over storage on a loopback port and
// returns its ws:// URL and what shuts it down.
func startServer(storage syncserver.Storage) (url string, stop func(), err error) {
	srv, err := syncserver.New(syncserver.Options{Storage: storage})
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	httpSrv := &http.Server{Handler: srv}
	go func() { _ = httpSrv.Serve(ln) }()
	return "ws://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = httpSrv.Shutdown(ctx)
		_ = srv.Shutdown(ctx)
	}, nil
}
