package devtools

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/livestore-go/livestore"
)

// liveKeepAlive is how often an idle live stream sends a comment, so that
// proxies and browsers keep it open.
const liveKeepAlive = 15 * time.Second

// liveState collects what happened in the store until the stream's
// goroutine sends it: the store's callbacks only merge into it and signal,
// never wait for the client.
type liveState struct {
	mu     sync.Mutex
	wrote  bool
	tables map[string]struct{}
	reran  map[int64]struct{}
	sync   *livestore.SyncStatus
	wake   chan struct{}
}

func (l *liveState) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// take returns what gathered since the last take and resets it.
func (l *liveState) take() (wrote bool, tables []string, reran []int64, st *livestore.SyncStatus) {
	l.mu.Lock()
	defer l.mu.Unlock()
	wrote, st = l.wrote, l.sync
	for t := range l.tables {
		tables = append(tables, t)
	}
	for id := range l.reran {
		reran = append(reran, id)
	}
	slices.Sort(tables)
	slices.Sort(reran)
	l.wrote, l.sync = false, nil
	clear(l.tables)
	clear(l.reran)
	return wrote, tables, reran, st
}

// live streams the store's changes as Server-Sent Events until the client
// goes away: "ready" {"head"} once, then "commit" {"head","tables"} after
// writes, "queries" {"reran"} after refreshes of the reactive graph and
// "sync" {SyncStatus…} when the sync status changes. Changes that come
// faster than the client reads are merged into one event of each kind.
func (a *storeAPI) live(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	ctx := r.Context()
	l := &liveState{tables: map[string]struct{}{}, reran: map[int64]struct{}{}, wake: make(chan struct{}, 1)}
	stop, what, err := a.watch(l)
	if err != nil {
		a.failed(w, r, what, err)
		return
	}
	defer stop()
	head, err := a.head(ctx)
	if err != nil {
		a.failed(w, r, "read the head", err)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if !a.send(w, rc, "ready", map[string]string{"head": head}) {
		return
	}
	a.stream(ctx, w, rc, l)
}

// watch makes the store's changes and sync status gather in l until stop
// is called. On failure, what names what could not be watched.
func (a *storeAPI) watch(l *liveState) (stop func(), what string, err error) {
	stopObserve, err := a.s.Observe(func(c livestore.Change) {
		l.mu.Lock()
		l.wrote = l.wrote || c.Wrote
		for _, t := range c.Tables {
			l.tables[t] = struct{}{}
		}
		for _, id := range c.Reran {
			l.reran[id] = struct{}{}
		}
		l.mu.Unlock()
		l.signal()
	})
	if err != nil {
		return nil, "watch the store", err
	}
	sig := a.s.SyncStatusSignal()
	if sig == nil {
		return stopObserve, "", nil
	}
	unsubscribe, err := livestore.Subscribe(context.Background(), a.s, sig, func(st livestore.SyncStatus) {
		l.mu.Lock()
		l.sync = &st
		l.mu.Unlock()
		l.signal()
	})
	if err != nil {
		stopObserve()
		return nil, "watch the sync status", err
	}
	return func() { unsubscribe(); stopObserve() }, "", nil
}

// stream sends what gathers in l, and a keep-alive comment when idle, until
// the client or the store goes away.
func (a *storeAPI) stream(ctx context.Context, w http.ResponseWriter, rc *http.ResponseController, l *liveState) {
	keepAlive := time.NewTicker(liveKeepAlive)
	defer keepAlive.Stop()
	enabled := a.s.SyncStatusSignal() != nil
	for {
		select {
		case <-ctx.Done():
			return
		case <-keepAlive.C:
			// A closed store sends nothing more: the stream ends with it.
			if _, err := a.head(ctx); err != nil {
				return
			}
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-l.wake:
			wrote, tables, reran, st := l.take()
			if wrote {
				head, err := a.head(ctx)
				if err != nil {
					return
				}
				if tables == nil {
					tables = []string{}
				}
				if !a.send(w, rc, "commit", map[string]any{"head": head, "tables": tables}) {
					return
				}
			}
			if len(reran) > 0 && !a.send(w, rc, "queries", map[string]any{"reran": reran}) {
				return
			}
			if st != nil && !a.sendRaw(w, rc, "sync", syncStatusJSON(*st, enabled)) {
				return
			}
		}
	}
}

func (a *storeAPI) head(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	h, err := a.s.Head(ctx)
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

// send writes one event and flushes it; false when the client is gone.
func (a *storeAPI) send(w http.ResponseWriter, rc *http.ResponseController, event string, v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		a.log.Error("devtools: live", "event", event, "err", err)
		return false
	}
	return a.sendRaw(w, rc, event, b)
}

func (a *storeAPI) sendRaw(w http.ResponseWriter, rc *http.ResponseController, event string, data []byte) bool {
	if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
		return false
	}
	return rc.Flush() == nil
}
