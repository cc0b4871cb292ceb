package livestore_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// startSyncServer serves the real sync server over loopback and returns its
// ws:// URL and its storage.
func startSyncServer(t testing.TB) (string, syncserver.Storage) {
	t.Helper()
	storage, err := sqlitestore.Open(filepath.Join(t.TempDir(), "server.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := syncserver.New(syncserver.Options{Storage: storage})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.CloseClientConnections()
		srv.Close()
		hs.Close()
		storage.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http"), storage
}

func serverLog(t *testing.T, st syncserver.Storage, storeID string) []syncproto.Event {
	t.Helper()
	evs, err := st.Read(context.Background(), storeID, 0, 1<<62, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]syncproto.Event, len(evs))
	for i, e := range evs {
		out[i] = e.Event
	}
	return out
}

// syncTransports are the transports of package syncclient, each as the
// backend of a store syncing with the server at url.
var syncTransports = []struct {
	name    string
	backend func(url string) livestore.SyncBackend
}{
	{"ws", func(url string) livestore.SyncBackend { return syncclient.WebSocketBackend(url, syncclient.Options{}) }},
	{"http", func(url string) livestore.SyncBackend {
		return syncclient.HTTPBackend(url, syncclient.HTTPOptions{PollInterval: 20 * time.Millisecond})
	}},
}

// TestSyncOverTransports runs three stores against the real server over
// loopback, on each transport: concurrent commits converge, and a store
// reopened later catches up from its cursor.
func TestSyncOverTransports(t *testing.T) {
	for _, tr := range syncTransports {
		t.Run(tr.name, func(t *testing.T) { testSyncOver(t, tr.backend) })
	}
}

func testSyncOver(t *testing.T, newBackend func(url string) livestore.SyncBackend) {
	url, storage := startSyncServer(t)
	a := newTodoApp(t)
	backend := newBackend(url)
	open := func(dir string) *livestore.Store {
		s, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: dir, StoreID: "ws-store",
			Sync: &livestore.SyncOptions{Backend: backend, MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	stores := []*livestore.Store{open(dirs[0]), open(dirs[1]), open(dirs[2])}
	ctx := context.Background()
	errs := make(chan error, len(stores))
	for i, s := range stores {
		go func() {
			for j := 0; j < 60; j++ {
				id := fmt.Sprintf("c%d-%d", i, j)
				evs := []livestore.Event{a.created.New(todoCreated{ID: id, Text: "τέλος ✓ " + id})}
				if j%3 == 0 {
					evs = append(evs, a.completed.New(todoID{ID: id}))
				}
				if err := s.Commit(ctx, evs...); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range stores {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	waitServerConverged(t, storage, "ws-store", 240, stores...)
	ref := dump(t, stores[0])
	for i, s := range stores[1:] {
		if d := dump(t, s); d != ref {
			t.Fatalf("store %d differs", i+1)
		}
	}
	// A store closed and reopened continues from its cursor.
	stores[2].Close()
	mustCommit(t, stores[0], a.created.New(todoCreated{ID: "late", Text: "after close"}))
	stores[2] = open(dirs[2])
	waitServerConverged(t, storage, "ws-store", 241, stores...)
	for _, s := range stores {
		s.Close()
	}
}

func waitServerConverged(t *testing.T, storage syncserver.Storage, storeID string, want int, stores ...*livestore.Store) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for {
		log := serverLog(t, storage, storeID)
		ok := len(log) == want
		for _, s := range stores {
			st, err := s.SyncStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Stopped {
				t.Fatalf("sync stopped: %s", st.Err)
			}
			ok = ok && st.PendingCount == 0 && st.UpstreamHead == int64(len(log))
		}
		if ok {
			want := eventsString(log)
			for i, s := range stores {
				if got := eventsString(syncedEvents(t, s)); got != want {
					t.Fatalf("store %d log differs from the server's", i)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			for i, s := range stores {
				st, _ := s.SyncStatus(ctx)
				t.Logf("store %d: %+v", i, st)
			}
			t.Fatalf("no convergence: server has %d events, want %d", len(log), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
