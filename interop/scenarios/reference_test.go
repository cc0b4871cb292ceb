package scenarios

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/livestore-go/livestore"
)

// TestOnReferenceServer runs scenarios against the reference sync server
// (@livestore/sync-cf 0.4.0 in workerd), one server process for all of
// them, each on its own store.
func TestOnReferenceServer(t *testing.T) {
	harnessReady(t)
	// Started before t.Parallel: the other scenarios wait until it answers,
	// so that wrangler and workerd do not start on a CPU they load (the
	// harness gives the server a minute).
	url := startReferenceServer(t)
	t.Parallel()

	// Scenario 7: Go stores sync through the reference as they do through ours.
	t.Run("two Go stores and a JS client converge", func(t *testing.T) {
		t.Parallel()
		timed(t)
		testGoThroughReference(t, url, overWS)
	})
	// The same over the HTTP transport: the reference answers the Go
	// client's requests and the JS client's (makeHttpSync) alike.
	t.Run("over HTTP", func(t *testing.T) {
		t.Parallel()
		timed(t)
		testGoThroughReference(t, url, overHTTP)
	})
	// The reference as the oracle of the HTTP transport: our server answers
	// the same requests with the same messages.
	t.Run("HTTP answers equal ours", func(t *testing.T) {
		t.Parallel()
		timed(t)
		testHTTPAnswersMatch(t, url)
	})
	// The trace context the Go client puts in a request's envelope is
	// accepted, and the push stored as sent.
	t.Run("trace context in the request envelope", func(t *testing.T) {
		t.Parallel()
		timed(t)
		testTraceFields(t, url)
	})
	// Scenario 4 again: the JS client's handling of ServerAheadError does
	// not depend on which server sends it.
	t.Run("JS client rebases on ServerAheadError", func(t *testing.T) {
		t.Parallel()
		timed(t)
		testJSServerAhead(t, url, false)
	})
}

// testGoThroughReference: two Go stores and a JS client commit at the same
// time through the reference server and converge: equal states field by
// field, eventlogs equal to the reference's log. The Go stores' pushes race
// each other's and the JS client's, so rebases happen on all sides.
func testGoThroughReference(t *testing.T, url string, tr transport) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	app := newTodoApp(t)
	storeID := newStoreID("reference")
	// @livestore/sync-cf 0.4.0 builds a store's Durable Object context
	// (its cached head among it) on the first request it serves, and
	// requests arriving before that first one has finished build contexts
	// of their own: their pushes then pass the head check against different
	// heads, and the log forks (livestorejs/livestore#1537, fixed after
	// 0.4.0). One pull answered first builds the single context the three
	// clients then share.
	if _, err := pullLog(ctx, url, storeID); err != nil {
		t.Fatalf("first pull of %s: %v", storeID, err)
	}
	g1 := openGoStore(t, app, tr.url(url), storeID, "g1")
	g2 := openGoStore(t, app, tr.url(url), storeID, "g2")

	jsLog := filepath.Join(t.TempDir(), "js-eventlog.db")
	// Events: Go 2×(4 todos × (created, annotated) + 1 completed + 1 deleted)
	// = 20, JS 4 created + 4 annotated + 1 completed + 1 deleted = 10.
	js := startJS(ctx, t, tr.url(url), storeID, tr.jsArgs("--commit", "4", "--prefix", "js", "--complete", "1", "--delete", "1",
		"--annotate", "--note-bytes", "50000", "--wait-rows", "12", "--wait-server-events", "30", "--wait-server-head",
		"--eventlog-out", jsLog)...)
	// Each Go store commits one event at a time, so their pushes interleave
	// with each other's and the JS client's.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []*livestore.Store{g1, g2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := goWork{prefix: fmt.Sprintf("g%d", i+1), n: 4, complete: 1, delete: 1, annotate: true, noteBytes: 100_000}
			for _, ev := range app.events(w) {
				if err := s.Commit(ctx, ev); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	jsResult := waitJS(t, js)
	log := waitGoSynced(ctx, t, app, g1, url, 12)
	waitGoSynced(ctx, t, app, g2, url, 12)
	checkServerLog(t, "reference server log", log)
	if len(log) != 30 {
		t.Errorf("reference server log has %d events, want 30", len(log))
	}
	s1, err := app.state(ctx, g1)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := app.state(ctx, g2)
	if err != nil {
		t.Fatal(err)
	}
	compareGoStates(t, "Go store 1 vs Go store 2", s1, s2)
	compareStates(t, "Go store 1 vs JS client", s1, jsResult)
	compareLog(t, "Go store 1 eventlog", log, goEvents(ctx, t, g1))
	compareLog(t, "Go store 2 eventlog", log, goEvents(ctx, t, g2))
	compareLog(t, "JS eventlog", log, readJSEventlog(t, jsLog))
	gens := []int64{maxRebaseGeneration(goEvents(ctx, t, g1)), maxRebaseGeneration(goEvents(ctx, t, g2)), maxRebaseGeneration(readJSEventlog(t, jsLog))}
	t.Logf("max rebase generations: Go store 1 %d, Go store 2 %d, JS client %d", gens[0], gens[1], gens[2])
}
