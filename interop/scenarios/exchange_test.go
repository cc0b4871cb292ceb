package scenarios

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

// TestJSAndGoExchangeEvents (scenario 1; on PostgreSQL, half of scenario 5):
// a Go store's events reach a JS client and a JS client's events reach the Go
// store, through our server; both states are equal field by field, and both
// eventlogs equal the server's log. The events exercise the encodings: a
// Go time with nanoseconds and an offset (JS keeps milliseconds), a JS Date,
// booleans, unicode in texts and notes, nested JSON, notes of 300 KB from Go
// and 200 KB from JS (so pushes and pull pages are split at 900,000 bytes).
func TestJSAndGoExchangeEvents(t *testing.T) {
	harnessReady(t)
	t.Parallel()
	for _, kind := range []storageKind{onSQLite, onPostgres} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			timed(t)
			testExchange(t, kind)
		})
	}
}

func testExchange(t *testing.T, kind storageKind) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	srv := startGoServer(t, kind)
	app := newTodoApp(t)
	storeID := newStoreID("exchange")

	// Go first: its events are on the server before the JS client starts.
	g := openGoStore(t, app, srv.URL(), storeID, "g")
	if err := g.Commit(ctx, app.events(goWork{prefix: "go", n: 3, complete: 1, delete: 1, annotate: true, noteBytes: 300_000})...); err != nil {
		t.Fatal(err)
	}
	waitGoSynced(ctx, t, app, g, srv.URL(), 3)

	// The JS client pulls the Go events, commits its own and waits for all.
	jsLog := filepath.Join(t.TempDir(), "js-eventlog.db")
	js := mustJS(ctx, t, srv.URL(), storeID, "--commit", "3", "--prefix", "js", "--complete", "1", "--delete", "1",
		"--annotate", "--note-bytes", "200000", "--text-suffix", " — ü ß 日本語 🎉 \"q\" \\ \u2028",
		"--wait-rows", "6", "--wait-server-head", "--eventlog-out", jsLog)

	log := waitGoSynced(ctx, t, app, g, srv.URL(), 6)
	checkServerLog(t, "server log", log)
	if len(log) != 16 { // 2×(3 created + 3 annotated + 1 completed + 1 deleted)
		t.Errorf("server log has %d events, want 16", len(log))
	}
	gs, err := app.state(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	compareStates(t, "Go store vs JS client", gs, js)
	compareLog(t, "Go eventlog", log, goEvents(ctx, t, g))
	compareLog(t, "JS eventlog", log, readJSEventlog(t, jsLog))

	// The values that differ in encoding between the two languages, spelled out.
	row := func(id string) todoRow {
		for _, r := range gs.Todos {
			if r.ID == id {
				return r
			}
		}
		t.Fatalf("no todo %s in the Go store", id)
		return todoRow{}
	}
	if r := row("go-000"); !r.Completed || r.DeletedAt == nil || *r.DeletedAt != goDeletedAtISO {
		t.Errorf("go-000 in the Go store: %+v, want completed and deletedAt %s", r, goDeletedAtISO)
	}
	if r := row("js-000"); !r.Completed || r.DeletedAt == nil || *r.DeletedAt != "2025-01-02T03:04:05.678Z" {
		t.Errorf("js-000 in the Go store: %+v, want completed and deletedAt 2025-01-02T03:04:05.678Z", r)
	}
	if r := row("js-001"); r.Completed || r.DeletedAt != nil || !strings.HasSuffix(r.Text, "🎉 \"q\" \\ \u2028") {
		t.Errorf("js-001 in the Go store: %+v", r)
	}
	if r := row("go-001"); r.Completed || r.DeletedAt != nil {
		t.Errorf("go-001 in the Go store: %+v", r)
	}
	// The Go event keeps Go's encoding on the wire (nanoseconds, offset).
	if d := deletedArg(t, log, "go-000"); d != goDeletedAt.Format(time.RFC3339Nano) {
		t.Errorf("go-000's deletedAt on the server: %s, want %s", d, goDeletedAt.Format(time.RFC3339Nano))
	}
}

// deletedArg is the deletedAt arg of the v1.TodoDeleted event of todo id.
func deletedArg(t *testing.T, log []syncproto.Event, id string) string {
	t.Helper()
	for _, ev := range log {
		if ev.Name != "v1.TodoDeleted" {
			continue
		}
		var a struct{ ID, DeletedAt string }
		if err := json.Unmarshal(ev.Args, &a); err != nil {
			t.Fatal(err)
		}
		if a.ID == id {
			return a.DeletedAt
		}
	}
	t.Fatalf("no v1.TodoDeleted for %s", id)
	return ""
}
