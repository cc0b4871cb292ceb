package devtools_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/devtools"
	"github.com/livestore-go/livestore/eventlog"
)

// logOf reads the whole eventlog of s.
func logOf(t testing.TB, s *livestore.Store) []eventlog.Event {
	t.Helper()
	var out []eventlog.Event
	for ev, err := range s.Events(context.Background(), eventlog.Root) {
		if err != nil {
			t.Fatal(err)
		}
		ev.SchemaHash, ev.SyncMetadata = 0, nil
		out = append(out, ev)
	}
	return out
}

func post(t testing.TB, url, contentType, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStoreExportImport exports a synced store's eventlog and imports it
// into an empty store: the same eventlog, the same state; a second import
// is refused.
func TestStoreExportImport(t *testing.T) {
	url := startSyncServer(t)
	a := newTodoSchema(t)
	src := openStore(t, a, url)
	commitTodos(t, a, src, 1, 40)
	waitSynced(t, src)
	if err := src.Commit(context.Background(), a.renamed.New(todoRenamed{ID: "t007", Text: "seven"})); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(servePage(t, src, devtools.Options{}) + "api/export")
	if err != nil {
		t.Fatal(err)
	}
	export, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %v", resp.StatusCode, resp.Header)
	}
	lines := strings.Split(strings.TrimSpace(string(export)), "\n")
	if len(lines) != 41 {
		t.Fatalf("export has %d lines", len(lines))
	}
	var first, last livestore.RecoveryEvent
	json.Unmarshal([]byte(lines[0]), &first)
	json.Unmarshal([]byte(lines[40]), &last)
	st, _ := src.SyncStatus(context.Background())
	if first.StoreID != "devtools-store" || first.SeqNum != 1 || first.BackendID != st.BackendID || first.CreatedAt == "" || first.Name != "v1.TodoCreated" {
		t.Fatalf("first line = %+v", first)
	}
	if last.Name != "v1.TodoRenamed" || last.SeqNum != 41 || last.ParentSeqNum != 40 {
		t.Fatalf("last line = %+v", last)
	}

	dst := openStore(t, a, "")
	base := servePage(t, dst, devtools.Options{})
	code, body := post(t, base+"api/import", "application/x-ndjson", string(export))
	if code != 200 || strings.TrimSpace(body) != `{"imported":41}` {
		t.Fatalf("import: %d %s", code, body)
	}
	if got, want := logOf(t, dst), logOf(t, src); !reflect.DeepEqual(got, want) {
		t.Fatalf("imported eventlog differs:\n%+v\nwant\n%+v", got[:2], want[:2])
	}
	ds, _ := dst.DumpState(context.Background())
	ss, _ := src.DumpState(context.Background())
	if ds != ss {
		t.Fatalf("imported state differs")
	}
	// The confirmed events stay confirmed, a pending one (the last, unless
	// the server confirmed it before the export) pending.
	dst2, _ := dst.SyncStatus(context.Background())
	wantUpstream := int64(40)
	if last.BackendID != "" {
		wantUpstream = 41
	}
	if dst2.UpstreamHead != wantUpstream || dst2.BackendID != st.BackendID || dst2.PendingCount != int(41-wantUpstream) {
		t.Fatalf("imported sync status = %+v", dst2)
	}
	code, body = post(t, base+"api/import", "application/x-ndjson", string(export))
	if code != 409 || !strings.Contains(body, "not empty") {
		t.Fatalf("second import: %d %s", code, body)
	}
	// Bad lines change nothing.
	empty := openStore(t, a, "")
	ebase := servePage(t, empty, devtools.Options{})
	for _, bad := range []string{
		"",
		"{not json",
		lines[1],            // parent e1 without e1
		lines[0] + lines[2], // e3 after e1
	} {
		code, body = post(t, ebase+"api/import", "application/x-ndjson", bad)
		if code != 400 || !strings.Contains(body, "error") {
			t.Errorf("import %q: %d %s", bad[:min(len(bad), 40)], code, body)
		}
	}
	if n := len(logOf(t, empty)); n != 0 {
		t.Fatalf("bad imports left %d events", n)
	}
}

// liveEvent is one Server-Sent Event.
type liveEvent struct {
	name string
	data string
}

// readLive delivers the events of an SSE stream until it ends.
func readLive(body io.Reader) <-chan liveEvent {
	ch := make(chan liveEvent, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(body)
		var ev liveEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case line == "" && ev.name != "":
				ch <- ev
				ev = liveEvent{}
			}
		}
	}()
	return ch
}

// next returns the next event named name, skipping others; it fails after
// ten seconds without one.
func next(t *testing.T, ch <-chan liveEvent, name string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended before a %s event", name)
			}
			if ev.name == name {
				return ev.data
			}
		case <-timeout:
			t.Fatalf("no %s event in 10s", name)
		}
	}
}

// TestStoreLiveFeed follows api/live while the store changes: a local
// commit, the re-run of a subscribed query, and a commit of another client
// arriving through sync each come as events.
func TestStoreLiveFeed(t *testing.T) {
	url := startSyncServer(t)
	a := newTodoSchema(t)
	s, other := openStore(t, a, url), openStore(t, a, url)
	commitTodos(t, a, s, 1, 2)
	waitSynced(t, s)
	q := livestore.QueryDB[todo](a.todos.Select(), "all todos")
	unsubscribe, err := livestore.Subscribe(context.Background(), s, q, func([]todo) {})
	if err != nil {
		t.Fatal(err)
	}
	defer unsubscribe()

	srv := httptest.NewServer(devtools.Handler(s, devtools.Options{}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/live", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	ch := readLive(resp.Body)
	if got := next(t, ch, "ready"); got != `{"head":"e2"}` {
		t.Fatalf("ready = %s", got)
	}
	commitTodos(t, a, s, 3, 1)
	// Writes without state changes (a confirmation from the server) come
	// as commits without tables.
	for got := next(t, ch, "commit"); got != `{"head":"e3","tables":["todos"]}`; got = next(t, ch, "commit") {
		if got != `{"head":"e3","tables":[]}` && got != `{"head":"e2","tables":[]}` {
			t.Fatalf("commit = %s", got)
		}
	}
	var id int64
	for _, n := range s.ReactiveNodes() {
		if n.Label == "all todos" {
			id = n.ID
		}
	}
	if got := next(t, ch, "queries"); got != fmt.Sprintf(`{"reran":[%d]}`, id) {
		t.Fatalf("queries = %s, want node %d", got, id)
	}
	// Another client's commit reaches this store through sync: a fourth
	// event.
	commitTodos(t, a, other, 4, 1)
	// Its commit and the sync status that counts it come in either order.
	timeout := time.After(10 * time.Second)
	var seen []liveEvent
	for sawCommit, sawSync := false, false; !sawCommit || !sawSync; {
		var ev liveEvent
		select {
		case ev = <-ch:
			seen = append(seen, ev)
		case <-timeout:
			t.Fatalf("commit seen %v, sync seen %v after 10s: %v", sawCommit, sawSync, seen)
		}
		switch ev.name {
		case "commit":
			var c struct {
				Head string `json:"head"`
			}
			if err := json.Unmarshal([]byte(ev.data), &c); err != nil {
				t.Fatal(err)
			}
			// The two commits of e3 race to the server: this store's may
			// come second and be rebased to e4r1.
			head, err := eventlog.ParseSeqNum(c.Head)
			if err != nil {
				t.Fatal(err)
			}
			sawCommit = sawCommit || head.Global == 4
		case "sync":
			var st struct {
				UpstreamHead int64 `json:"upstreamHead"`
				Enabled      bool  `json:"enabled"`
			}
			if err := json.Unmarshal([]byte(ev.data), &st); err != nil {
				t.Fatal(err)
			}
			if !st.Enabled {
				t.Fatal("sync event says sync is off")
			}
			sawSync = sawSync || st.UpstreamHead >= 4
		}
	}
	// The stream ends with the request.
	cancel()
	for range ch {
	}
}

func TestStoreQueriesAndGraph(t *testing.T) {
	a := newTodoSchema(t)
	s := openStore(t, a, "")
	commitTodos(t, a, s, 1, 15)
	q := livestore.QueryDB[todo](a.todos.Where(livestore.Ne("id", "t003")), "open todos")
	count := livestore.NewComputed(func(g *livestore.Getter) (int, error) {
		rows, err := livestore.Use(g, q)
		return len(rows), err
	}, "open count")
	got := make(chan int, 16)
	unsubscribe, err := livestore.Subscribe(context.Background(), s, count, func(n int) { got <- n })
	if err != nil {
		t.Fatal(err)
	}
	defer unsubscribe()
	if n := <-got; n != 14 {
		t.Fatalf("count = %d", n)
	}
	commitTodos(t, a, s, 16, 1)
	if n := <-got; n != 15 {
		t.Fatalf("count = %d", n)
	}
	base := servePage(t, s, devtools.Options{})
	var queries []struct {
		ID             int64           `json:"id"`
		Kind           string          `json:"kind"`
		Label          string          `json:"label"`
		SQL            string          `json:"sql"`
		Args           []any           `json:"args"`
		Tables         []string        `json:"tables"`
		Subscribers    int             `json:"subscribers"`
		RunCount       int64           `json:"runCount"`
		LastDurationNs int64           `json:"lastDurationNs"`
		MeanDurationNs int64           `json:"meanDurationNs"`
		LastResult     json.RawMessage `json:"lastResult"`
		ResultCut      bool            `json:"resultCut"`
		Stale          bool            `json:"stale"`
	}
	call(t, "GET", base+"api/queries", nil, 200, &queries)
	if len(queries) != 2 {
		t.Fatalf("queries = %+v", queries)
	}
	db, comp := queries[0], queries[1]
	if db.Kind != "db" {
		db, comp = comp, db
	}
	if db.Kind != "db" || db.Label != "open todos" || !strings.Contains(db.SQL, "todos") || !reflect.DeepEqual(db.Args, []any{"t003"}) ||
		!reflect.DeepEqual(db.Tables, []string{"todos"}) || db.RunCount != 2 || db.MeanDurationNs <= 0 || db.Stale || !db.ResultCut {
		t.Fatalf("db query = %+v", db)
	}
	var preview []todo
	if err := json.Unmarshal(db.LastResult, &preview); err != nil || len(preview) != livestore.PreviewItems || preview[0].ID != "t001" {
		t.Fatalf("preview = %s (%v)", db.LastResult, err)
	}
	if comp.Kind != "computed" || comp.Subscribers != 1 || string(comp.LastResult) != "15" || comp.ResultCut {
		t.Fatalf("computed = %+v", comp)
	}
	var graph struct {
		Nodes []struct {
			ID    int64  `json:"id"`
			Kind  string `json:"kind"`
			Label string `json:"label"`
		} `json:"nodes"`
		Edges      []struct{ From, To int64 } `json:"edges"`
		LastCommit struct {
			Seq    string   `json:"seq"`
			Tables []string `json:"tables"`
			Reran  []int64  `json:"reran"`
		} `json:"lastCommit"`
	}
	call(t, "GET", base+"api/graph", nil, 200, &graph)
	if len(graph.Nodes) != 2 || len(graph.Edges) != 1 || graph.Edges[0].From != db.ID || graph.Edges[0].To != comp.ID {
		t.Fatalf("graph = %+v", graph)
	}
	if graph.LastCommit.Seq != "e16" || !reflect.DeepEqual(graph.LastCommit.Tables, []string{"todos"}) ||
		!reflect.DeepEqual(graph.LastCommit.Reran, []int64{db.ID, comp.ID}) {
		t.Fatalf("last commit = %+v", graph.LastCommit)
	}
}
