package devtools_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/devtools"
	"github.com/livestore-go/livestore/syncclient"
)

type tableInfo struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Columns []struct {
		Name       string `json:"name"`
		Type       string `json:"type"`
		PrimaryKey bool   `json:"primaryKey"`
		Nullable   bool   `json:"nullable"`
	} `json:"columns"`
	RowCount       int64  `json:"rowCount"`
	Editable       bool   `json:"editable"`
	ReadOnlyReason string `json:"readOnlyReason"`
}

func TestStoreInfoAndTables(t *testing.T) {
	a := newTodoSchema(t)
	s := openStore(t, a, "")
	commitTodos(t, a, s, 1, 3)
	base := servePage(t, s, devtools.Options{Edit: a.edit})
	var info struct {
		Mode        string            `json:"mode"`
		StoreID     string            `json:"storeId"`
		ClientID    string            `json:"clientId"`
		SessionID   string            `json:"sessionId"`
		ReadOnly    bool              `json:"readOnly"`
		Views       []string          `json:"views"`
		Unavailable map[string]string `json:"unavailable"`
	}
	call(t, "GET", base+"api/info", nil, 200, &info)
	if info.Mode != "store" || info.StoreID != "devtools-store" || info.ClientID != s.ClientID() || info.SessionID != s.SessionID() ||
		info.ReadOnly || len(info.Views) != 7 || len(info.Unavailable) != 0 {
		t.Fatalf("info = %+v", info)
	}
	var tables []tableInfo
	call(t, "GET", base+"api/tables", nil, 200, &tables)
	if len(tables) != 2 {
		t.Fatalf("tables = %+v", tables)
	}
	todos, ui := tables[0], tables[1]
	if todos.Name != "todos" || todos.Kind != "table" || todos.RowCount != 3 || !todos.Editable || len(todos.Columns) != 3 ||
		!todos.Columns[0].PrimaryKey || todos.Columns[2].Type != "boolean" || todos.Columns[1].PrimaryKey {
		t.Fatalf("todos = %+v", todos)
	}
	if ui.Name != "uiState" || ui.Kind != "clientDocument" || !ui.Editable || ui.RowCount != 0 {
		t.Fatalf("uiState = %+v", ui)
	}
	// Without an Edit, only client documents stay editable.
	call(t, "GET", servePage(t, s, devtools.Options{})+"api/tables", nil, 200, &tables)
	if tables[0].Editable || tables[0].ReadOnlyReason != "no edit event declared (devtools.Options.Edit)" || !tables[1].Editable {
		t.Fatalf("tables without Edit = %+v", tables)
	}
}

func TestStoreRows(t *testing.T) {
	a := newTodoSchema(t)
	s := openStore(t, a, "")
	commitTodos(t, a, s, 1, 25)
	base := servePage(t, s, devtools.Options{})
	var page struct {
		Columns   []struct{ Name string } `json:"columns"`
		Rows      [][]any                 `json:"rows"`
		Total     int64                   `json:"total"`
		Offset    int64                   `json:"offset"`
		Truncated bool                    `json:"truncated"`
	}
	call(t, "GET", base+"api/tables/todos/rows?offset=10&limit=5&sort=text&dir=desc", nil, 200, &page)
	if page.Total != 25 || page.Offset != 10 || len(page.Rows) != 5 || page.Truncated || len(page.Columns) != 3 {
		t.Fatalf("page = %+v", page)
	}
	// Descending by text: todo 025 … todo 001; offset 10 starts at todo 015.
	if got := page.Rows[0]; got[0] != "t015" || got[1] != "todo 015" || got[2] != false {
		t.Fatalf("first row = %v", got)
	}
	call(t, "GET", base+"api/tables/todos/rows", nil, 200, &page)
	if len(page.Rows) != 25 || page.Rows[0][0] != "t001" {
		t.Fatalf("default page: %d rows, first %v", len(page.Rows), page.Rows[0])
	}
	var e apiError
	for _, bad := range []string{"sort=nope", "dir=sideways&sort=text", "limit=1001", "limit=0", "offset=-1", "offset=x"} {
		call(t, "GET", base+"api/tables/todos/rows?"+bad, nil, 400, &e)
		if e.Error == "" {
			t.Fatalf("%s: no error text", bad)
		}
	}
	call(t, "GET", base+"api/tables/nope/rows", nil, 404, &e)

	// A page larger than the answer limit is cut and says where to go on.
	big := newTodoSchema(t)
	s2 := openStore(t, big, "")
	long := strings.Repeat("x", 3000)
	var evs []livestore.Event
	for i := range 40 {
		evs = append(evs, big.created.New(todoCreated{ID: fmt.Sprintf("b%02d", i), Text: long}))
	}
	// A row larger than a whole answer comes with its large value replaced.
	evs = append(evs, big.created.New(todoCreated{ID: "a-huge", Text: strings.Repeat("y", 100_000)}))
	if err := s2.Commit(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
	var cut struct {
		Rows       [][]any `json:"rows"`
		Truncated  bool    `json:"truncated"`
		NextOffset int64   `json:"nextOffset"`
	}
	call(t, "GET", servePage(t, s2, devtools.Options{MaxAnswerBytes: devtools.MinAnswerBytes})+"api/tables/todos/rows", nil, 200, &cut)
	if !cut.Truncated || len(cut.Rows) < 2 || len(cut.Rows) >= 40 || cut.NextOffset != int64(len(cut.Rows)) || cut.Rows[0][0] != "a-huge" ||
		!strings.HasPrefix(cut.Rows[0][1].(string), "(100002 bytes as JSON: too large") {
		t.Fatalf("cut page: %d rows, truncated %v, next %d", len(cut.Rows), cut.Truncated, cut.NextOffset)
	}
	call(t, "GET", servePage(t, s2, devtools.Options{MaxAnswerBytes: devtools.MinAnswerBytes})+"api/tables/todos/rows?offset=1", nil, 200, &cut)
	if !cut.Truncated || len(cut.Rows) < 2 || len(cut.Rows) >= 40 || cut.NextOffset != 1+int64(len(cut.Rows)) || cut.Rows[0][0] != "b00" {
		t.Fatalf("cut page after the large row: %d rows, truncated %v, next %d", len(cut.Rows), cut.Truncated, cut.NextOffset)
	}
}

type editAnswer struct {
	Event struct {
		Name string `json:"name"`
		Seq  string `json:"seq"`
	} `json:"event"`
}

// TestStoreEditReachesOtherClient edits a row through the page of one
// client: the edit is an event, committed and synced to a second client.
func TestStoreEditReachesOtherClient(t *testing.T) {
	url := startSyncServer(t)
	a := newTodoSchema(t)
	s1, s2 := openStore(t, a, url), openStore(t, a, url)
	commitTodos(t, a, s1, 1, 3)
	all := livestore.QueryDB[todo](a.todos.Select())
	waitFor(t, s2, all, func(rows []todo) bool { return len(rows) == 3 })
	base := servePage(t, s1, devtools.Options{Edit: a.edit})

	var ans editAnswer
	call(t, "POST", base+"api/tables/todos/edit", map[string]any{"key": map[string]any{"id": "t002"}, "column": "text", "value": "renamed"}, 200, &ans)
	if ans.Event.Name != "v1.TodoRenamed" || ans.Event.Seq != "e4" {
		t.Fatalf("edit answer = %+v", ans)
	}
	waitFor(t, s2, all, func(rows []todo) bool { return len(rows) == 3 && rows[1].Text == "renamed" })

	// A client document is set through its own event, which stays local.
	call(t, "POST", base+"api/tables/uiState/edit", map[string]any{"key": map[string]any{"id": "main"}, "column": "value", "value": map[string]any{"filter": "done"}}, 200, &ans)
	if ans.Event.Name != "uiStateSet" || ans.Event.Seq != "e4.1" {
		t.Fatalf("client document edit answer = %+v", ans)
	}
	got, err := a.ui.Get(context.Background(), s1, "main")
	if err != nil || got.Filter != "done" {
		t.Fatalf("uiState = %+v, %v", got, err)
	}
}

// TestStoreEditRefused sends edits that must be refused: each answers an
// error and leaves the eventlog and state as they were.
func TestStoreEditRefused(t *testing.T) {
	a := newTodoSchema(t)
	s := openStore(t, a, "")
	commitTodos(t, a, s, 1, 2)
	ctx := context.Background()
	dump, err := s.DumpState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	readOnly := servePage(t, s, devtools.Options{})
	editable := servePage(t, s, devtools.Options{Edit: a.edit})
	key := map[string]any{"id": "t001"}
	cases := []struct {
		name string
		base string
		body any
		code int
		want string
	}{
		{"no Edit declared", readOnly, map[string]any{"key": key, "column": "text", "value": "x"}, 403, "no edit event declared (devtools.Options.Edit)"},
		{"Edit refuses", editable, map[string]any{"key": key, "column": "completed", "value": true}, 422, "only the text of a todo can be edited"},
		{"event args invalid", editable, map[string]any{"key": key, "column": "text", "value": 5}, 422, "the text is a string"},
		{"missing row", editable, map[string]any{"key": map[string]any{"id": "nope"}, "column": "text", "value": "x"}, 404, "no row"},
		{"key not the primary key", editable, map[string]any{"key": map[string]any{"text": "todo 001"}, "column": "text", "value": "x"}, 400, "primary key"},
		{"unknown column", editable, map[string]any{"key": key, "column": "nope", "value": "x"}, 400, "no column"},
		{"no value", editable, map[string]any{"key": key, "column": "text"}, 400, "value"},
		{"client document id", editable, map[string]any{"key": map[string]any{"id": "m"}, "column": "id", "value": "x"}, 400, "cannot be changed"},
		{"not JSON", editable, "{", 400, "JSON"},
	}
	for _, c := range cases {
		table := "todos"
		if c.name == "client document id" {
			table = "uiState"
		}
		var e apiError
		call(t, "POST", c.base+"api/tables/"+table+"/edit", c.body, c.code, &e)
		if !strings.Contains(e.Error, c.want) {
			t.Errorf("%s: error %q, want it to say %q", c.name, e.Error, c.want)
		}
	}
	// A page of another origin may not edit.
	req, _ := http.NewRequest("POST", editable+"api/tables/todos/edit", strings.NewReader(`{"key":{"id":"t001"},"column":"text","value":"x"}`))
	req.Header.Set("Origin", "http://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("cross-origin edit: %d", resp.StatusCode)
	}
	if head, _ := s.Head(ctx); head.String() != "e2" {
		t.Fatalf("head %s after refused edits, want e2", head)
	}
	if after, _ := s.DumpState(ctx); after != dump {
		t.Fatalf("state changed by refused edits:\n%s\nwas\n%s", after, dump)
	}
}

type sqlAnswer struct {
	Columns     []string `json:"columns"`
	Rows        [][]any  `json:"rows"`
	Truncated   bool     `json:"truncated"`
	TruncatedBy string   `json:"truncatedBy"`
	Error       string   `json:"error"`
}

func TestStoreSQL(t *testing.T) {
	a := newTodoSchema(t)
	s := openStore(t, a, "")
	commitTodos(t, a, s, 1, 5)
	ctx := context.Background()
	dump, _ := s.DumpState(ctx)
	base := servePage(t, s, devtools.Options{QueryTimeout: 200 * time.Millisecond})
	var ans sqlAnswer
	call(t, "POST", base+"api/sql", map[string]string{"sql": "SELECT id, text FROM todos WHERE id > 't003' ORDER BY id"}, 200, &ans)
	if !reflect.DeepEqual(ans.Columns, []string{"id", "text"}) || len(ans.Rows) != 2 || ans.Rows[0][0] != "t004" || ans.Truncated || ans.Error != "" {
		t.Fatalf("answer = %+v", ans)
	}
	// The eventlog is there to query too.
	call(t, "POST", base+"api/sql", map[string]string{"sql": "SELECT count(*) FROM eventlog"}, 200, &ans)
	if ans.Rows[0][0] != float64(5) {
		t.Fatalf("eventlog count = %v", ans.Rows)
	}
	call(t, "POST", base+"api/sql", map[string]string{"sql": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 5000) SELECT i FROM n"}, 200, &ans)
	if len(ans.Rows) != devtools.MaxSQLRows || !ans.Truncated || ans.TruncatedBy != "rows" {
		t.Fatalf("row cap: %d rows, %v %q", len(ans.Rows), ans.Truncated, ans.TruncatedBy)
	}
	for _, write := range []string{
		"DELETE FROM todos",
		"UPDATE todos SET text = 'x'",
		"INSERT INTO eventlog SELECT * FROM eventlog",
		"DROP TABLE todos",
		"VACUUM",
		"PRAGMA user_version = 5",
		"ATTACH DATABASE 'x.db' AS x",
		"SELECT 1; DELETE FROM todos",
	} {
		var e sqlAnswer
		call(t, "POST", base+"api/sql", map[string]string{"sql": write}, 400, &e)
		if !strings.Contains(e.Error, "allowed") {
			t.Errorf("%s: error %q", write, e.Error)
		}
	}
	var e sqlAnswer
	call(t, "POST", base+"api/sql", map[string]string{"sql": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n) SELECT count(*) FROM n"}, 408, &e)
	if !strings.Contains(e.Error, "stopped after 200ms") {
		t.Fatalf("long query: %q", e.Error)
	}
	call(t, "POST", base+"api/sql", map[string]string{"sql": "SELECT nope FROM todos"}, 400, &e)
	if !strings.Contains(e.Error, "nope") {
		t.Fatalf("bad column: %q", e.Error)
	}
	call(t, "POST", base+"api/sql", map[string]string{"sql": " "}, 400, &e)
	if after, _ := s.DumpState(ctx); after != dump {
		t.Fatal("state changed by the SQL playground")
	}
	if head, _ := s.Head(ctx); head.String() != "e5" {
		t.Fatalf("head %s, want e5", head)
	}
}

type eventsAnswer struct {
	Events []struct {
		Seq    string `json:"seq"`
		SeqNum struct {
			Global, Client, RebaseGeneration int64
		} `json:"seqNum"`
		Parent     string          `json:"parent"`
		Name       string          `json:"name"`
		Args       json.RawMessage `json:"args"`
		ClientID   string          `json:"clientId"`
		SessionID  string          `json:"sessionId"`
		Synced     bool            `json:"synced"`
		ClientOnly bool            `json:"clientOnly"`
	} `json:"events"`
	More      bool   `json:"more"`
	Next      string `json:"next"`
	Truncated bool   `json:"truncated"`
}

func TestStoreEvents(t *testing.T) {
	url := startSyncServer(t)
	a := newTodoSchema(t)
	s := openStore(t, a, url)
	commitTodos(t, a, s, 1, 30)
	waitSynced(t, s)
	ctx := context.Background()
	if err := s.Commit(ctx, a.ui.Set("main", uiState{Filter: "done"})); err != nil {
		t.Fatal(err)
	}
	base := servePage(t, s, devtools.Options{})
	var page eventsAnswer
	call(t, "GET", base+"api/events?limit=10", nil, 200, &page)
	if len(page.Events) != 10 || !page.More || page.Next != "e10" || page.Events[0].Seq != "e1" || page.Events[0].Parent != "e0" ||
		!page.Events[0].Synced || page.Events[0].ClientID != s.ClientID() || string(page.Events[0].Args) != `{"id":"t001","text":"todo 001"}` {
		t.Fatalf("first page = %+v", page)
	}
	call(t, "GET", base+"api/events?limit=100&after="+page.Next, nil, 200, &page)
	if len(page.Events) != 21 || page.More || page.Events[0].Seq != "e11" || page.Next != "e30.1" {
		t.Fatalf("second page: %d events from %s, next %s", len(page.Events), page.Events[0].Seq, page.Next)
	}
	if last := page.Events[20]; last.Name != "uiStateSet" || !last.ClientOnly || last.Synced || last.SeqNum.Client != 1 {
		t.Fatalf("client-only event = %+v", last)
	}
	call(t, "GET", base+"api/events?from=e5&to=e7", nil, 200, &page)
	if len(page.Events) != 3 || page.Events[0].Seq != "e5" || page.Events[2].Seq != "e7" {
		t.Fatalf("range page = %+v", page.Events)
	}
	call(t, "GET", base+"api/events?name=uiStateSet", nil, 200, &page)
	if len(page.Events) != 1 || page.Events[0].Seq != "e30.1" {
		t.Fatalf("by name = %+v", page.Events)
	}
	call(t, "GET", base+"api/events?status=synced", nil, 200, &page)
	if len(page.Events) != 30 {
		t.Fatalf("synced: %d events", len(page.Events))
	}
	// Pending: the events of a store that does not sync.
	local := openStore(t, a, "")
	commitTodos(t, a, local, 1, 4)
	lbase := servePage(t, local, devtools.Options{})
	call(t, "GET", lbase+"api/events?status=pending", nil, 200, &page)
	if len(page.Events) != 4 || page.Events[0].Synced {
		t.Fatalf("pending = %+v", page.Events)
	}
	call(t, "GET", base+"api/events?status=pending", nil, 200, &page)
	if len(page.Events) != 0 || page.Next != "e0" {
		t.Fatalf("pending of a synced store = %+v", page)
	}
	var e apiError
	for _, bad := range []string{"after=5", "from=x", "to=e", "status=maybe", "limit=0", "limit=1001"} {
		call(t, "GET", base+"api/events?"+bad, nil, 400, &e)
	}
}

func TestStoreSyncStatus(t *testing.T) {
	url := startSyncServer(t)
	a := newTodoSchema(t)
	s := openStore(t, a, url)
	commitTodos(t, a, s, 1, 2)
	waitSynced(t, s)
	var st struct {
		LocalHead    struct{ Global int64 } `json:"localHead"`
		LocalHeadSeq string                 `json:"localHeadSeq"`
		UpstreamHead int64                  `json:"upstreamHead"`
		PendingCount int                    `json:"pendingCount"`
		Connected    bool                   `json:"connected"`
		IsSynced     bool                   `json:"isSynced"`
		BackendID    string                 `json:"backendId"`
		Enabled      bool                   `json:"enabled"`
		NextRetryAt  *string                `json:"nextRetryAt"`
	}
	call(t, "GET", servePage(t, s, devtools.Options{})+"api/sync", nil, 200, &st)
	if !st.Enabled || !st.Connected || !st.IsSynced || st.UpstreamHead != 2 || st.LocalHeadSeq != "e2" || st.BackendID == "" || st.PendingCount != 0 {
		t.Fatalf("sync = %+v", st)
	}
	local := openStore(t, a, "")
	commitTodos(t, a, local, 1, 3)
	st.Enabled = true
	call(t, "GET", servePage(t, local, devtools.Options{})+"api/sync", nil, 200, &st)
	if st.Enabled || st.Connected || st.PendingCount != 3 {
		t.Fatalf("sync of a local store = %+v", st)
	}
}

// TestStoreSyncRetryAt points a store at a port nobody listens on: its
// status says when it tries again, and that time moves on with each try.
func TestStoreSyncRetryAt(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "ws://" + ln.Addr().String()
	ln.Close() // connections are refused from now on
	a := newTodoSchema(t)
	s, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: t.TempDir(), StoreID: "retry",
		Sync: &livestore.SyncOptions{Backend: syncclient.WebSocketBackend(url, syncclient.Options{}),
			MinBackoff: 2 * time.Second, MaxBackoff: 4 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	page := servePage(t, s, devtools.Options{})
	var st struct {
		Connected   bool    `json:"connected"`
		Error       string  `json:"error"`
		NextRetryAt *string `json:"nextRetryAt"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		call(t, "GET", page+"api/sync", nil, 200, &st)
		if st.NextRetryAt != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.NextRetryAt == nil || st.Connected || st.Error == "" {
		t.Fatalf("status of a store that cannot connect: %+v", st)
	}
	at, err := time.Parse(time.RFC3339Nano, *st.NextRetryAt)
	if err != nil {
		t.Fatal(err)
	}
	// The first delay is drawn from [MinBackoff/2, 1.5 MinBackoff).
	if left := time.Until(at); left <= 0 || left > 3*time.Second {
		t.Fatalf("next retry in %v, want within the first backoff", left)
	}
}
