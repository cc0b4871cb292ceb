package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/livestore-go/livestore/interop/harness"
	"github.com/livestore-go/livestore/syncserver"
)

// The targets a run measures.
const (
	targetOurs      = "ours"      // this module's sync server
	targetReference = "reference" // @livestore/sync-cf in workerd (interop/harness)
	targetFloor     = "floor"     // the same work without a server (see floor.go)
)

// env is what runs share: the reference server and the livestore binary,
// each started or built once.
type env struct {
	referenceURL string // the reference server, for --target reference
	livestoreBin string // the built cmd/livestore, for --serve-processes
}

// prepareEnv starts or builds what cfg's runs need, once; the returned
// func stops and removes it. Output of the reference server goes to logw
// when it stops.
func prepareEnv(ctx context.Context, cfg config, logw io.Writer) (*env, func(), error) {
	e := &env{}
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if cfg.target == targetOurs && cfg.processes {
		bin, remove, err := buildLivestore(ctx)
		if err != nil {
			return nil, nil, err
		}
		e.livestoreBin = bin
		closers = append(closers, remove)
	}
	if cfg.target == targetReference {
		url, stop, err := harness.StartReference(ctx, logw)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		e.referenceURL = url
		closers = append(closers, func() { _ = stop() })
	}
	return e, closeAll, nil
}

// unsupported says why a target cannot run cfg's row, or "" if it can.
func unsupported(cfg config) string {
	switch {
	case cfg.target == targetReference && cfg.replicas > 1:
		return "the reference is one workerd process: it has no replicas sharing a storage"
	case cfg.target == targetReference && cfg.storage == "postgres":
		return "the reference stores in its Durable Objects' SQLite; it has no PostgreSQL storage"
	case cfg.storage == "postgres" && cfg.postgresURL == "":
		return "no PostgreSQL URL (--postgres or LIVESTORE_TEST_POSTGRES_URL)"
	}
	return ""
}

// running is a started target: the URLs clients connect to (one per
// server), or the storages floor pushers append to, and its stop.
type running struct {
	urls     []string
	storages []syncserver.Storage
	// ready waits until n live pulls have reached the server (the floor's
	// broadcaster, which sends only to pulls it has seen); nil if not needed.
	ready func(ctx context.Context, n int) error
	stop  func() error // an error is a server that did not stop cleanly
}

// quietly adapts a stop that reports nothing.
func quietly(stop func()) func() error { return func() error { stop(); return nil } }

// startTarget starts cfg.target on fresh storage.
func startTarget(ctx context.Context, cfg config, e *env) (*running, error) {
	switch cfg.target {
	case targetOurs:
		if cfg.processes {
			urls, stop, err := startServeProcesses(ctx, cfg, e.livestoreBin)
			if err != nil {
				return nil, err
			}
			return &running{urls: urls, stop: stop}, nil
		}
		return startOurs(cfg)
	case targetReference:
		if e.referenceURL == "" {
			return nil, errors.New("the reference server is not running")
		}
		// Fresh storage: every run uses new store ids, each a new Durable Object.
		return &running{urls: []string{e.referenceURL}, stop: func() error { return nil }}, nil
	case targetFloor:
		if cfg.live > 0 && cfg.replicas > 1 {
			return startRelayFloor(cfg)
		}
		if cfg.live > 0 {
			return startBroadcaster()
		}
		storages, cleanup, err := openStorages(cfg)
		if err != nil {
			return nil, err
		}
		return &running{storages: storages, stop: quietly(cleanup)}, nil
	}
	return nil, fmt.Errorf("unknown --target %q (ours, reference or floor)", cfg.target)
}

// startOurs serves this module's sync server in-process over fresh storage.
func startOurs(cfg config) (*running, error) {
	storages, cleanup, err := openStorages(cfg)
	if err != nil {
		return nil, err
	}
	urls, stopServers, err := startServers(storages)
	if err != nil {
		cleanup()
		return nil, err
	}
	return &running{urls: urls, stop: quietly(func() { stopServers(); cleanup() })}, nil
}
