package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type tagRow struct {
	TodoID string `db:"todoId"`
	Tag    string `db:"tag"`
}

// An app commits todos through a real sync server; the reactor, another
// client of the same store, tags them, and the tags reach the app.
func TestReactorTagsTodosOfAnotherClient(t *testing.T) {
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := syncserver.New(syncserver.Options{Storage: st})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv)
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http")

	a, err := newApp()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	appStore, err := livestore.Open(ctx, a.schema, livestore.Options{
		Dir: t.TempDir(), StoreID: "todos",
		Sync: &livestore.SyncOptions{Backend: syncclient.WebSocketBackend(url, syncclient.Options{})},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer appStore.Close()
	for _, td := range []todoCreated{{"1", "Buy milk"}, {"2", "Call the bank, urgent"}, {"3", "Read a book"}} {
		if err := appStore.Commit(ctx, a.created.New(td)); err != nil {
			t.Fatal(err)
		}
	}

	rctx, cancel := context.WithCancel(ctx)
	var out bytes.Buffer
	var wg sync.WaitGroup
	var runErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		runErr = run(rctx, []string{"-url", url, "-store", "todos", "-dir", t.TempDir()}, &out)
	}()

	waitTags := func(want string) {
		t.Helper()
		var got string
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			rows, err := livestore.Query[tagRow](ctx, appStore, a.tags.Select().OrderBy("todoId"))
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, r := range rows {
				parts = append(parts, r.TodoID+":"+r.Tag)
			}
			if got = strings.Join(parts, " "); got == want {
				return
			}
		}
		t.Fatalf("app sees tags %q, want %q", got, want)
	}
	waitTags("1:shopping 2:urgent 3:general")
	// A todo committed while the reactor runs is tagged too.
	if err := appStore.Commit(ctx, a.created.New(todoCreated{"4", "Fix the roof!"})); err != nil {
		t.Fatal(err)
	}
	waitTags("1:shopping 2:urgent 3:general 4:urgent")

	cancel()
	wg.Wait()
	if runErr != nil {
		t.Fatalf("reactor: %v", runErr)
	}
	if !strings.Contains(out.String(), "tagged ") {
		t.Fatalf("reactor printed %q", out.String())
	}
	// Each todo was tagged once.
	tagged := 0
	for ev, err := range appStore.Events(ctx, eventlog.Root) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Name == "v1.TodoTagged" {
			tagged++
		}
	}
	if tagged != 4 {
		t.Fatalf("%d tag events, want 4", tagged)
	}
}
