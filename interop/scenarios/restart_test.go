package scenarios

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// TestJSClientContinuesAfterServerRestart (scenario 3): our server is
// restarted on the same SQLite file and port, twice. A JS client with file
// storage reopened after the first restart continues from its cursor; the
// same client, connected during the second restart, reconnects by itself and
// gets the events pushed after it. A Go store commits while the server is
// down and pushes when it is back. The server log has no gap and no
// duplicate, the backend id survives the restarts, and the JS client's
// eventlog and state equal the server log.
func TestJSClientContinuesAfterServerRestart(t *testing.T) {
	harnessReady(t)
	t.Parallel()
	timed(t)
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	srv := startGoServer(t, onSQLite)
	app := newTodoApp(t)
	storeID := newStoreID("restart")
	dir := filepath.Join(t.TempDir(), "js-client")

	first := mustJS(ctx, t, srv.URL(), storeID, "--storage", "fs:"+dir, "--commit", "3", "--prefix", "x1", "--wait-rows", "3")
	backendID := serverBackendID(ctx, t, srv.URL(), storeID)

	srv.Stop()
	srv.Start()
	t.Log("server restarted")

	// Reopened after the restart: it must pull from its cursor (e3), commit
	// on top, and stay connected until two more todos arrive.
	jsLog := filepath.Join(t.TempDir(), "js-eventlog.db")
	reopened := startJS(ctx, t, srv.URL(), storeID, "--storage", "fs:"+dir, "--commit", "3", "--prefix", "x2",
		"--complete", "1", "--wait-rows", "8", "--wait-server-events", "11", "--wait-server-head", "--eventlog-out", jsLog)
	poll(ctx, t, "the reopened JS client's events on the server", func() (bool, string, error) {
		log, err := srv.Log(ctx, storeID)
		return len(log) >= 7, fmt.Sprintf("server log has %d events", len(log)), err
	})

	// Restart again while the JS client is connected; a Go store commits
	// while the server is down.
	srv.Stop()
	g := openGoStore(t, app, srv.URL(), storeID, "g")
	if err := g.Commit(ctx, app.events(goWork{prefix: "g", n: 2, complete: 1, delete: 1})...); err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Log("server restarted again")

	second := waitJS(t, reopened)
	if second.ClientID != first.ClientID {
		t.Errorf("the fs client's id changed on reopen: %s, then %s", first.ClientID, second.ClientID)
	}
	log := waitGoSynced(ctx, t, app, g, srv.URL(), 8)
	checkServerLog(t, "server log", log)
	if len(log) != 11 { // x1: 3 created; x2: 3 created, 1 completed; g: 2 created, 1 completed, 1 deleted
		t.Errorf("server log has %d events, want 11", len(log))
	}
	if got := serverBackendID(ctx, t, srv.URL(), storeID); got != backendID {
		t.Errorf("backend id changed across restarts: %s, then %s", backendID, got)
	}
	// The reopened client's eventlog holds the first run's events (not pulled
	// again) and everything after, exactly as the server has them.
	compareLog(t, "JS eventlog", log, readJSEventlog(t, jsLog))
	gs, err := app.state(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	compareStates(t, "state from the server log vs JS client", gs, second)
	if got := fmt.Sprint(ids(gs.Todos)); got != "[g-000 g-001 x1-000 x1-001 x1-002 x2-000 x2-001 x2-002]" {
		t.Errorf("todos %s", got)
	}
}

// serverBackendID is the backend id a fresh pull of storeID reports.
func serverBackendID(ctx context.Context, t *testing.T, url, storeID string) string {
	t.Helper()
	_, id, err := pullLogAndBackend(ctx, url, storeID)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
