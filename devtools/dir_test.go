package devtools_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/devtools"
	"github.com/livestore-go/livestore/memsync"
)

type dirTodo struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

type dirUI struct {
	Filter string `json:"filter"`
}

// dirStore is a store directory held open by its owning program, as the
// page meets it: 3 synced todos, a client document set, then 2 todos
// committed while offline (pending).
type dirStore struct {
	dir     string
	store   *livestore.Store
	created *livestore.EventDef[dirTodo]
}

func newDirStore(t *testing.T) dirStore {
	t.Helper()
	todos := livestore.NewTable("todos", livestore.Text("id").PrimaryKey(), livestore.Text("text"))
	ui := livestore.ClientDocument("uiState", dirUI{Filter: "all"})
	created := livestore.Synced[dirTodo]("v1.TodoCreated")
	schema, err := livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{todos, ui.Table},
		Events: []livestore.Definition{created},
		Materializers: []livestore.Materializer{
			livestore.Materialize(created, func(_ *livestore.MaterializeContext, e dirTodo) ([]livestore.Statement, error) {
				return []livestore.Statement{todos.Insert(livestore.Values{"id": e.ID, "text": e.Text})}, nil
			}),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	link := memsync.NewServer().NewLink()
	ctx := context.Background()
	s, err := livestore.Open(ctx, schema, livestore.Options{Dir: dir, StoreID: "todos", Sync: &livestore.SyncOptions{Backend: link}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	commit := func(ev livestore.Event) {
		t.Helper()
		if err := s.Commit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		commit(created.New(dirTodo{ID: fmt.Sprintf("t%d", i), Text: fmt.Sprintf("todo %d", i)}))
	}
	commit(ui.Set("main", dirUI{Filter: "done"}))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		st, err := s.SyncStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.IsSynced {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never synced: %+v", st)
		}
	}
	link.SetOnline(false)
	commit(created.New(dirTodo{ID: "t3", Text: "todo 3"}))
	commit(created.New(dirTodo{ID: "t4", Text: "todo 4"}))
	return dirStore{dir: dir, store: s, created: created}
}

type dirEvent struct {
	Seq        string          `json:"seq"`
	Parent     string          `json:"parent"`
	Name       string          `json:"name"`
	Args       json.RawMessage `json:"args"`
	Synced     bool            `json:"synced"`
	ClientOnly bool            `json:"clientOnly"`
}

type dirEvents struct {
	Events []dirEvent `json:"events"`
	More   bool       `json:"more"`
	Next   string     `json:"next"`
}

func (p dirEvents) seqs() string {
	var s []string
	for _, e := range p.Events {
		s = append(s, e.Seq)
	}
	return strings.Join(s, " ")
}

func postJSON(t *testing.T, url, body string, wantCode int, v any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantCode {
		t.Fatalf("POST %s: %d %s, want %d", url, resp.StatusCode, b, wantCode)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("POST %s: %v in %s", url, err, b)
	}
}

// TestDirPage reads a store directory whose program is running: info,
// tables, rows, events with filters and a cursor, sync status, export and
// read-only SQL; every attempt to change it is refused.
func TestDirPage(t *testing.T) {
	ds := newDirStore(t)
	srv := httptest.NewServer(devtools.DirHandler(ds.dir, devtools.Options{}))
	t.Cleanup(srv.Close)
	base := srv.URL + "/"

	var info struct {
		Mode        string            `json:"mode"`
		ReadOnly    bool              `json:"readOnly"`
		Views       []string          `json:"views"`
		Unavailable map[string]string `json:"unavailable"`
	}
	getJSON(t, base+"api/info", 200, &info)
	if info.Mode != "dir" || !info.ReadOnly || strings.Join(info.Views, ",") != "data,events,sync,export,sql" ||
		info.Unavailable["queries"] == "" || info.Unavailable["graph"] == "" {
		t.Fatalf("info = %+v", info)
	}

	var tables []struct {
		Name    string `json:"name"`
		Kind    string `json:"kind"`
		Columns []struct {
			Name       string `json:"name"`
			PrimaryKey bool   `json:"primaryKey"`
		} `json:"columns"`
		RowCount       int64  `json:"rowCount"`
		Editable       bool   `json:"editable"`
		ReadOnlyReason string `json:"readOnlyReason"`
	}
	getJSON(t, base+"api/tables", 200, &tables)
	if len(tables) != 2 || tables[0].Name != "todos" || tables[0].Kind != "table" || tables[0].RowCount != 5 ||
		len(tables[0].Columns) != 2 || !tables[0].Columns[0].PrimaryKey || tables[0].Editable || tables[0].ReadOnlyReason == "" ||
		tables[1].Name != "uiState" || tables[1].Kind != "clientDocument" || tables[1].RowCount != 1 {
		t.Fatalf("tables = %+v", tables)
	}

	var rows struct {
		Columns   []string `json:"columns"`
		Rows      [][]any  `json:"rows"`
		Total     int64    `json:"total"`
		Offset    int64    `json:"offset"`
		Truncated bool     `json:"truncated"`
	}
	getJSON(t, base+"api/tables/todos/rows?offset=1&limit=2&sort=text&dir=desc", 200, &rows)
	if strings.Join(rows.Columns, ",") != "id,text" || len(rows.Rows) != 2 || rows.Rows[0][0] != "t3" || rows.Rows[1][0] != "t2" ||
		rows.Total != 5 || rows.Offset != 1 || rows.Truncated {
		t.Fatalf("rows = %+v", rows)
	}
	var e struct {
		Error string `json:"error"`
	}
	getJSON(t, base+"api/tables/todos/rows?sort=nope", 400, &e)
	getJSON(t, base+"api/tables/eventlog/rows", 404, &e)
	getJSON(t, base+"api/tables/todos/rows?limit=5000", 400, &e)

	// Events: t0..t2 synced (e1..e3), the client-only uiStateSet (e3.1),
	// then t3, t4 pending (e4, e5).
	var p dirEvents
	getJSON(t, base+"api/events", 200, &p)
	if p.seqs() != "e1 e2 e3 e3.1 e4 e5" || p.More || p.Next != "e5" || !p.Events[0].Synced || p.Events[4].Synced ||
		!p.Events[3].ClientOnly || p.Events[3].Name != "uiStateSet" || p.Events[1].Parent != "e1" ||
		string(p.Events[0].Args) != `{"id":"t0","text":"todo 0"}` {
		t.Fatalf("events = %+v", p)
	}
	p = dirEvents{}
	getJSON(t, base+"api/events?limit=2&after=e2", 200, &p)
	if p.seqs() != "e3 e3.1" || !p.More || p.Next != "e3.1" {
		t.Fatalf("page after e2: %+v", p)
	}
	for query, want := range map[string]string{
		"status=pending":                  "e4 e5",
		"status=synced":                   "e1 e2 e3",
		"name=uiStateSet":                 "e3.1",
		"from=e2&to=e3.1":                 "e2 e3 e3.1",
		"from=e3.1&name=v1.TodoCreated":   "e4 e5",
		"after=e4&status=pending&from=e2": "e5",
	} {
		p = dirEvents{}
		getJSON(t, base+"api/events?"+query, 200, &p)
		if p.seqs() != want {
			t.Fatalf("%s: %q, want %q", query, p.seqs(), want)
		}
	}
	// A filtered page moves the cursor over what it read, matched or not.
	p = dirEvents{}
	getJSON(t, base+"api/events?status=synced", 200, &p)
	if p.More || p.Next != "e3.1" {
		t.Fatalf("synced page: more %v next %q", p.More, p.Next)
	}
	p = dirEvents{}
	getJSON(t, base+"api/events?after=e5&status=pending", 200, &p)
	if len(p.Events) != 0 || p.More || p.Next != "e5" {
		t.Fatalf("pending page at the end: %+v", p)
	}
	getJSON(t, base+"api/events?after=x5", 400, &e)
	getJSON(t, base+"api/events?status=lost", 400, &e)

	var sync struct {
		LocalHead    string `json:"localHead"`
		UpstreamHead int64  `json:"upstreamHead"`
		PendingCount int64  `json:"pendingCount"`
		BackendID    string `json:"backendId"`
		Recorded     bool   `json:"recorded"`
	}
	getJSON(t, base+"api/sync", 200, &sync)
	if sync.LocalHead != "e5" || sync.UpstreamHead != 3 || sync.PendingCount != 2 || sync.BackendID == "" || !sync.Recorded {
		t.Fatalf("sync = %+v", sync)
	}

	resp, err := http.Get(base + "api/export?storeId=todos")
	if err != nil {
		t.Fatal(err)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	resp.Body.Close()
	if !strings.Contains(resp.Header.Get("Content-Disposition"), "todos.jsonl") || resp.Trailer.Get("X-Livestore-Error") != "" ||
		len(lines) != 5 || lines[0]["storeId"] != "todos" || lines[0]["seqNum"] != 1.0 || lines[4]["seqNum"] != 5.0 || lines[0]["backendId"] != sync.BackendID {
		t.Fatalf("export: %v %v", resp.Header, lines)
	}

	var res struct {
		Columns []string `json:"columns"`
		Rows    [][]any  `json:"rows"`
	}
	postJSON(t, base+"api/sql", `{"sql":"SELECT count(*) AS n FROM todos"}`, 200, &res)
	if len(res.Rows) != 1 || res.Rows[0][0] != 5.0 || res.Columns[0] != "n" {
		t.Fatalf("sql: %+v", res)
	}
	for _, bad := range []string{`DELETE FROM todos`, `UPDATE todos SET text = 'x'`, `VACUUM INTO '/tmp/copy.db'`, `PRAGMA user_version = 3`} {
		e.Error = ""
		postJSON(t, base+"api/sql", mustMarshal(t, map[string]string{"sql": bad}), 400, &e)
		if !strings.Contains(e.Error, "not allowed") && !strings.Contains(e.Error, "only reading") {
			t.Fatalf("%s: %q", bad, e.Error)
		}
	}
	postJSON(t, base+"api/sql", `{"sql":""}`, 400, &e)
	postJSON(t, base+"api/tables/todos/edit", `{"key":{"id":"t0"},"column":"text","value":"x"}`, 403, &e)
	postJSON(t, base+"api/import", `{}`, 403, &e)
	if !strings.Contains(e.Error, "read-only") {
		t.Fatalf("import: %q", e.Error)
	}
	getJSON(t, base+"api/queries", 404, &e)
	postJSON(t, base+"api/sql", `{"sql":"SELECT count(*) FROM todos"}`, 200, &res)
	if res.Rows[0][0] != 5.0 {
		t.Fatalf("rows after refused writes: %v", res.Rows)
	}
}

// TestDirLive follows a directory's live stream while its program commits.
func TestDirLive(t *testing.T) {
	ds := newDirStore(t)
	srv := httptest.NewServer(devtools.DirHandler(ds.dir, devtools.Options{}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/live", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	evs := readSSE(resp.Body)
	next := func(typ string) map[string]any {
		t.Helper()
		select {
		case ev := <-evs:
			var m map[string]any
			if ev.Type != typ || json.Unmarshal([]byte(ev.Data), &m) != nil {
				t.Fatalf("want a %s event, got %+v", typ, ev)
			}
			return m
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s event within 10s", typ)
		}
		return nil
	}
	if c := next("commit"); c["head"] != "e5" || fmt.Sprint(c["tables"]) != "[todos uiState]" {
		t.Fatalf("first commit event %v", c)
	}
	if s := next("sync"); s["pendingCount"] != 2.0 {
		t.Fatalf("first sync event %v", s)
	}
	if err := ds.store.Commit(t.Context(), ds.created.New(dirTodo{ID: "t5", Text: "todo 5"})); err != nil {
		t.Fatal(err)
	}
	if c := next("commit"); c["head"] != "e6" {
		t.Fatalf("commit event %v", c)
	}
	if s := next("sync"); s["pendingCount"] != 3.0 {
		t.Fatalf("sync event %v", s)
	}
}

// TestDirNotAStore answers every request with the reason.
func TestDirNotAStore(t *testing.T) {
	srv := httptest.NewServer(devtools.DirHandler(t.TempDir(), devtools.Options{}))
	t.Cleanup(srv.Close)
	var e struct {
		Error string `json:"error"`
	}
	getJSON(t, srv.URL+"/api/info", 500, &e)
	if !strings.Contains(e.Error, "not a store directory") {
		t.Fatalf("error %q", e.Error)
	}
}
