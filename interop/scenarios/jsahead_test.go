package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/livestore-go/livestore/interop/harness"
)

// TestJSClientRebasesOnServerAhead (scenario 4): a JS client whose push is
// answered with ServerAheadError handles it as the protocol intends: it
// waits for the pull, rebases its pending events on the new ones and pushes
// again, and never fails. A proxy holds back the server's pages until the
// rejection, so the client pushes on a stale head every time (a Go store
// pushed first). Then two JS clients commit at the same time; they converge. The server log has no gap and no duplicate, and each client's
// eventlog and state equal what the server log says (the state as a Go store
// built from that log has it).
//
// The same checks run against the reference server in TestOnReferenceServer.
func TestJSClientRebasesOnServerAhead(t *testing.T) {
	harnessReady(t)
	t.Parallel()
	timed(t)
	srv := startGoServer(t, onSQLite)
	testJSServerAhead(t, srv.URL(), true)
}

func testJSServerAhead(t *testing.T, url string, concurrentPair bool) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	app := newTodoApp(t)
	storeID := newStoreID("js-ahead")

	// A Go store pushes first; it reads the server's log back later.
	g := openGoStore(t, app, url, storeID, "g")
	if err := g.Commit(ctx, app.events(goWork{prefix: "a", n: 3, annotate: true})...); err != nil {
		t.Fatal(err)
	}
	waitGoSynced(ctx, t, app, g, url, 3)

	proxy := newHoldProxy(t, url, true)
	bLog := filepath.Join(t.TempDir(), "b-eventlog.db")
	b := mustJS(ctx, t, proxy.URL(), storeID, "--commit", "3", "--prefix", "b", "--complete", "3", "--delete", "1",
		"--wait-rows", "6", "--wait-server-head", "--eventlog-out", bLog)
	errs := proxy.ServerAheadErrors()
	if len(errs) == 0 {
		t.Fatalf("the JS client was never answered with ServerAheadError")
	}
	var first struct {
		Exit struct {
			Cause struct {
				Error struct {
					MinimumExpectedNum, ProvidedNum int64
				} `json:"error"`
			} `json:"cause"`
		} `json:"exit"`
	}
	if err := json.Unmarshal([]byte(errs[0]), &first); err != nil {
		t.Fatal(err)
	}
	if e := first.Exit.Cause.Error; e.MinimumExpectedNum != 6 || e.ProvidedNum != 0 {
		t.Errorf("first ServerAheadError: %s, want minimumExpectedNum 6, providedNum 0", errs[0])
	}
	t.Logf("JS client got %d ServerAheadError(s)", len(errs))
	bEvents := readJSEventlog(t, bLog)
	if gen := maxRebaseGeneration(bEvents); gen < 1 {
		t.Errorf("the JS client's eventlog shows no rebase (max rebase generation %d)", gen)
	}
	log, err := pullLog(ctx, url, storeID)
	if err != nil {
		t.Fatal(err)
	}
	checkServerLog(t, "server log", log)
	if len(log) != 13 { // a: 3 created + 3 annotated; b: 3 created, 3 completed, 1 deleted
		t.Errorf("server log has %d events, want 13", len(log))
	}
	compareLog(t, "JS eventlog", log, bEvents)

	// The state the server log describes, as the Go store built it.
	waitGoSynced(ctx, t, app, g, url, 6)
	gs, err := app.state(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	compareStates(t, "state from the server log vs JS client", gs, b)
	if got := fmt.Sprint(ids(gs.Todos)); got != "[a-000 a-001 a-002 b-000 b-001 b-002]" {
		t.Errorf("todos %s", got)
	}
	if !concurrentPair {
		return
	}

	// Two JS clients at once: whoever pushes second is rejected and rebases.
	var runs []<-chan jsRun
	for _, prefix := range []string{"c", "d"} {
		runs = append(runs, startJS(ctx, t, url, storeID, "--commit", "2", "--prefix", prefix, "--complete", "1",
			"--wait-rows", "10", "--wait-server-events", "19", "--wait-server-head"))
	}
	var results []*harness.ClientResult
	for _, r := range runs {
		results = append(results, waitJS(t, r))
	}
	log = waitGoSynced(ctx, t, app, g, url, 10)
	checkServerLog(t, "server log after the concurrent clients", log)
	if gs, err = app.state(ctx, g); err != nil {
		t.Fatal(err)
	}
	if len(log) != 19 {
		t.Errorf("server log has %d events, want 19", len(log))
	}
	for i, r := range results {
		compareStates(t, fmt.Sprintf("state from the server log vs concurrent JS client %d", i), gs, r)
	}
}
