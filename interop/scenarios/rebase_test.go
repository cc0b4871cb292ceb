package scenarios

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// TestConcurrentCommitsRebaseOnBothSides (scenario 2; on PostgreSQL, the
// other half of scenario 5): a JS client and a Go store commit concurrently
// and converge, each rebasing its pending events on the other's.
//
// First deterministically, with a proxy holding back the server's pull pages
// so that each side pushes on a stale head: the JS client's first push is
// answered with ServerAheadError (the Go events came first), and so is the
// Go store's later push (the JS events came first). Both must rebase (the
// eventlogs show rebase generation ≥ 1) and push again. Then freely: both
// commit at the same time without a proxy, and converge again.
//
// Subtest "http" runs it on SQLite with both sides on the HTTP transport
// (makeHttpSync, syncclient.HTTPBackend; the proxy holds pull requests).
func TestConcurrentCommitsRebaseOnBothSides(t *testing.T) {
	harnessReady(t)
	t.Parallel()
	for _, tc := range []struct {
		name string
		kind storageKind
		tr   transport
	}{{"sqlite", onSQLite, overWS}, {"postgres", onPostgres, overWS}, {"http", onSQLite, overHTTP}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			timed(t)
			testConcurrentRebase(t, tc.kind, tc.tr)
		})
	}
}

func testConcurrentRebase(t *testing.T, kind storageKind, tr transport) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	srv := startGoServer(t, kind)
	app := newTodoApp(t)
	storeID := newStoreID("rebase")

	goProxy := tr.holdProxy(t, srv.URL(), false)
	g := openGoStore(t, app, goProxy.URL(), storeID, "g")
	if err := g.Commit(ctx, app.events(goWork{prefix: "g1", n: 3, complete: 1})...); err != nil {
		t.Fatal(err)
	}
	waitGoSynced(ctx, t, app, g, srv.URL(), 3)

	// The Go store hears of no new events from now on (until its push fails).
	goProxy.Hold()

	// The JS client sees none of the server's events before its push fails.
	jsProxy := tr.holdProxy(t, srv.URL(), true)
	jsLog := filepath.Join(t.TempDir(), "js1-eventlog.db")
	mustJS(ctx, t, jsProxy.URL(), storeID, tr.jsArgs("--commit", "3", "--prefix", "j1", "--complete", "2",
		"--wait-rows", "6", "--wait-server-head", "--eventlog-out", jsLog)...)
	if errs := jsProxy.ServerAheadErrors(); len(errs) == 0 {
		t.Errorf("the JS client was never answered with ServerAheadError")
	} else {
		t.Logf("JS client got %d ServerAheadError(s), first: %s", len(errs), errs[0])
	}
	jsEvents := readJSEventlog(t, jsLog)
	if gen := maxRebaseGeneration(jsEvents); gen < 1 {
		t.Errorf("the JS client's eventlog shows no rebase (max rebase generation %d)", gen)
	}

	// Go commits on the head it knows, which is stale by the JS events.
	if err := g.Commit(ctx, app.events(goWork{prefix: "g2", n: 3, complete: 3, delete: 1})...); err != nil {
		t.Fatal(err)
	}
	log := waitGoSynced(ctx, t, app, g, srv.URL(), 9)
	if errs := goProxy.ServerAheadErrors(); len(errs) == 0 {
		t.Errorf("the Go store was never answered with ServerAheadError")
	} else {
		t.Logf("Go store got %d ServerAheadError(s), first: %s", len(errs), errs[0])
	}
	goLog := goEvents(ctx, t, g)
	if gen := maxRebaseGeneration(goLog); gen < 1 {
		t.Errorf("the Go store's eventlog shows no rebase (max rebase generation %d)", gen)
	}
	checkServerLog(t, "server log after the held pushes", log)
	compareLog(t, "Go eventlog", log, goLog)
	compareLog(t, "JS eventlog", log[:len(jsEvents)], jsEvents)
	gs, err := app.state(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ids(gs.Todos)); got != "[g1-000 g1-001 g1-002 g2-000 g2-001 g2-002 j1-000 j1-001 j1-002]" {
		t.Errorf("Go store's todos: %s", got)
	}

	// Free-running: a JS client and the Go store commit at the same time.
	js2Log := filepath.Join(t.TempDir(), "js2-eventlog.db")
	js2 := startJS(ctx, t, tr.url(srv.URL()), storeID, tr.jsArgs("--commit", "4", "--prefix", "j2", "--complete", "4",
		"--wait-rows", "17", "--wait-server-events", "32", "--wait-server-head", "--eventlog-out", js2Log)...)
	for i := range 4 {
		if err := g.Commit(ctx, app.events(goWork{prefix: fmt.Sprintf("g3%d", i), n: 1, complete: 1})...); err != nil {
			t.Fatal(err)
		}
	}
	js2Result := waitJS(t, js2)
	log = waitGoSynced(ctx, t, app, g, srv.URL(), 17)
	checkServerLog(t, "final server log", log)
	if gs, err = app.state(ctx, g); err != nil {
		t.Fatal(err)
	}
	compareStates(t, "Go store vs JS client", gs, js2Result)
	compareLog(t, "Go eventlog", log, goEvents(ctx, t, g))
	compareLog(t, "JS eventlog", log, readJSEventlog(t, js2Log))
}
