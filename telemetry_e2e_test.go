package livestore_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// startTracedServer serves a sync server whose spans go to r, and returns
// its base URL (http://…).
func startTracedServer(t *testing.T, r *otelRig) string {
	t.Helper()
	storage, err := sqlitestore.Open(filepath.Join(t.TempDir(), "server.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := syncserver.New(syncserver.Options{Storage: storage, TracerProvider: r.tp, MeterProvider: r.mp})
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
	return hs.URL
}

// TestTraceOfACommitAcrossTheServer follows one commit of store A, over each
// transport, through a real sync server to store B, all reporting to one
// tracer provider: A's commit → A's push (child) → the server's push (child,
// through the request envelope) → the server's live page to B (child) —
// and the server's storage append under its push, and B's pull of the page.
func TestTraceOfACommitAcrossTheServer(t *testing.T) {
	for _, transport := range []string{"ws", "http"} {
		t.Run(transport, func(t *testing.T) {
			r := newOtelRig(t)
			base := startTracedServer(t, r)
			backend := syncclient.WebSocketBackend("ws"+strings.TrimPrefix(base, "http"), syncclient.Options{})
			if transport == "http" {
				backend = syncclient.HTTPBackend(base, syncclient.HTTPOptions{PollInterval: 20 * time.Millisecond})
			}
			a := newTodoApp(t)
			open := func(name string) *livestore.Store {
				s, err := livestore.Open(context.Background(), a.schema, livestore.Options{
					Dir: filepath.Join(t.TempDir(), name), StoreID: "traced-" + transport,
					Sync:           &livestore.SyncOptions{Backend: backend, MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
					TracerProvider: r.tp, MeterProvider: r.mp})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			storeA, storeB := open("a"), open("b")
			waitSynced(t, storeB, 0)
			mustCommit(t, storeA, a.created.New(todoCreated{ID: "traced", Text: "across"}))
			waitSynced(t, storeA, 1)
			waitSynced(t, storeB, 1)

			commit := r.one(t, "livestore.commit", "livestore.event.names", attribute.StringSliceValue([]string{"v1.TodoCreated"}))
			push := r.childrenOf(commit, "livestore.sync.push")
			if len(push) != 1 {
				t.Fatalf("%d push spans under the commit; spans: %v", len(push), spanNames(r))
			}
			serverPush := waitChildren(t, r, push[0], "livestore.server.push", 1)[0]
			wantAttrs(t, serverPush, attribute.String("livestore.store_id", "traced-"+transport),
				attribute.Int("livestore.event.count", 1), attribute.String("livestore.transport", transport))
			if len(r.childrenOf(serverPush, "livestore.server.append")) != 1 {
				t.Errorf("no storage append span under the server's push; spans: %v", spanNames(r))
			}
			if transport == "ws" {
				// Each live WebSocket pull (A's and B's) gets the page pushed
				// to it: the deliveries hang under the push that stored the
				// event. (An HTTP client polls; its pull is a request of its
				// own.)
				for _, page := range waitChildren(t, r, serverPush, "livestore.server.pull.page", 2) {
					wantAttrs(t, page, attribute.Int("livestore.event.count", 1))
				}
			}
			pulled := false
			for _, s := range r.named("livestore.sync.pull") {
				if v, ok := attr(s, "livestore.seq.first"); ok && v == attribute.Int64Value(1) {
					pulled = true
				}
			}
			if !pulled {
				t.Errorf("no sync.pull span of event 1 on a store; spans: %v", spanNames(r))
			}
		})
	}
}

// waitChildren waits for the n spans called name under parent: server
// spans end on the server's goroutines, after the client saw the answer.
func waitChildren(t *testing.T, r *otelRig, p tracetest.SpanStub, name string, n int) tracetest.SpanStubs {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got := r.childrenOf(p, name); len(got) == n {
			return got
		} else if len(got) > n || time.Now().After(deadline) {
			t.Fatalf("%d spans %s under %s; spans: %v", len(got), name, p.Name, spanNames(r))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
