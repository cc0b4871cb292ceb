package scenarios

import (
	"context"
	"path/filepath"
	"testing"
)

// TestJSClientsExchangeManyEvents (scenario 8): two JS stores sync both
// ways through our server, on each transport, with more events than one
// pull page or push request holds (100): store A commits 150 (pushed as
// 100 + 50); store B pulls them (pages of 100 + 50), commits 120 (100 + 20);
// A, reopened from its directory, continues from its cursor and pulls B's
// 120. A Go store on the same transport then pulls all 270 from scratch.
// Logs, eventlogs and states agree.
func TestJSClientsExchangeManyEvents(t *testing.T) {
	harnessReady(t)
	t.Parallel()
	for _, tr := range []transport{overWS, overHTTP} {
		t.Run(string(tr), func(t *testing.T) {
			t.Parallel()
			timed(t)
			testManyEvents(t, tr)
		})
	}
}

func testManyEvents(t *testing.T, tr transport) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	srv := startGoServer(t, onSQLite)
	url := tr.url(srv.URL())
	storeID := newStoreID("many-" + string(tr))
	dirA := t.TempDir()

	a1 := mustJS(ctx, t, url, storeID, tr.jsArgs("--storage", "fs:"+dirA, "--commit", "150", "--prefix", "a", "--wait-rows", "150")...)
	if a1.Committed != 150 {
		t.Fatalf("A committed %d", a1.Committed)
	}
	bLog := filepath.Join(t.TempDir(), "b-eventlog.db")
	b := mustJS(ctx, t, url, storeID, tr.jsArgs("--commit", "120", "--prefix", "b", "--wait-rows", "270",
		"--wait-server-head", "--eventlog-out", bLog)...)
	aLog := filepath.Join(t.TempDir(), "a-eventlog.db")
	a2 := mustJS(ctx, t, url, storeID, tr.jsArgs("--storage", "fs:"+dirA, "--wait-rows", "270", "--wait-server-head",
		"--eventlog-out", aLog)...)
	if a2.ClientID != a1.ClientID {
		t.Fatalf("store A reopened as client %s, was %s", a2.ClientID, a1.ClientID)
	}

	log, err := pullLog(ctx, srv.URL(), storeID)
	if err != nil {
		t.Fatal(err)
	}
	checkServerLog(t, "server log", log)
	if len(log) != 270 {
		t.Fatalf("server log has %d events, want 270", len(log))
	}
	compareLog(t, "A's eventlog", log, readJSEventlog(t, aLog))
	compareLog(t, "B's eventlog", log, readJSEventlog(t, bLog))

	app := newTodoApp(t)
	g := openGoStore(t, app, url, storeID, "g")
	compareLog(t, "Go eventlog", waitGoSynced(ctx, t, app, g, srv.URL(), 270), goEvents(ctx, t, g))
	gs, err := app.state(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	compareStates(t, "Go store vs JS store A", gs, a2)
	compareStates(t, "Go store vs JS store B", gs, b)
}
