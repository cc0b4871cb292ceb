package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type todoCreated struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

type draftSaved struct {
	Text string `json:"text"`
}

// testSchema defines todos (synced event v1.TodoCreated) and drafts
// (client-only event v1.DraftSaved).
func testSchema(t *testing.T) (*livestore.Schema, *livestore.EventDef[todoCreated], *livestore.EventDef[draftSaved]) {
	t.Helper()
	todos := livestore.NewTable("todos",
		livestore.Text("id").PrimaryKey(),
		livestore.Text("text"),
		livestore.Boolean("completed").Default(false))
	drafts := livestore.NewTable("drafts", livestore.Text("text").PrimaryKey())
	created := livestore.Synced[todoCreated]("v1.TodoCreated")
	saved := livestore.ClientOnly[draftSaved]("v1.DraftSaved")
	schema, err := livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{todos, drafts},
		Events: []livestore.Definition{created, saved},
		Materializers: []livestore.Materializer{
			livestore.Materialize(created, func(_ *livestore.MaterializeContext, e todoCreated) ([]livestore.Statement, error) {
				return []livestore.Statement{todos.Insert(livestore.Values{"id": e.ID, "text": e.Text})}, nil
			}),
			livestore.Materialize(saved, func(_ *livestore.MaterializeContext, e draftSaved) ([]livestore.Statement, error) {
				return []livestore.Statement{drafts.Insert(livestore.Values{"text": e.Text})}, nil
			}),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return schema, created, saved
}

// newClientStore creates a client store directory with the events
// e1, e2, e3 (synced), e3.1 (client-only) and e4 (synced), none of them
// pushed, and returns its path.
func newClientStore(t *testing.T) string {
	t.Helper()
	schema, created, saved := testSchema(t)
	dir := filepath.Join(t.TempDir(), "client")
	ctx := t.Context()
	store, err := livestore.Open(ctx, schema, livestore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, ev := range []livestore.Event{
		created.New(todoCreated{ID: "1", Text: "milk"}),
		created.New(todoCreated{ID: "2", Text: "eggs"}),
		created.New(todoCreated{ID: "3", Text: "bread"}),
		saved.New(draftSaved{Text: "butt"}),
		created.New(todoCreated{ID: "4", Text: "butter"}),
	} {
		if err := store.Commit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newStorage returns a sync storage holding store "alpha" with 5 events and
// store "beta" with 2.
func newStorage(t *testing.T) *sqlitestore.Store {
	t.Helper()
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	at := time.Date(2026, 11, 25, 10, 0, 0, 123e6, time.UTC)
	for id, n := range map[string]int{"alpha": 5, "beta": 2} {
		batch := make([]syncproto.Event, n)
		for i := range batch {
			batch[i] = syncproto.Event{
				Name:         "v1.TodoCreated",
				Args:         json.RawMessage(fmt.Sprintf(`{"id":"%d","text":"todo %d"}`, i+1, i+1)),
				SeqNum:       int64(i + 1),
				ParentSeqNum: int64(i),
				ClientID:     "client-" + id,
				SessionID:    "session-1",
			}
		}
		if err := st.Append(t.Context(), id, batch, at); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// connect serves opts to a client over in-memory transports.
func connect(t *testing.T, opts Options) *sdkmcp.ClientSession {
	t.Helper()
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	serverEnd, clientEnd := sdkmcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, serverEnd, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := sdkmcp.NewClient(&sdkmcp.Implementation{Name: "test", Version: "v0"}, nil)
	cs, err := client.Connect(ctx, clientEnd, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs.Close()
		ss.Wait()
	})
	return cs
}

// call calls a tool that must succeed and decodes its structured output
// into out.
func call(t *testing.T, cs *sdkmcp.ClientSession, tool string, args map[string]any, out any) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &sdkmcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s %v: %v", tool, args, err)
	}
	if res.IsError {
		t.Fatalf("%s %v: tool error: %s", tool, args, text(res))
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: decode %s: %v", tool, b, err)
	}
}

// callFail calls a tool that must fail with a tool error and returns the
// error's text.
func callFail(t *testing.T, cs *sdkmcp.ClientSession, tool string, args map[string]any) string {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &sdkmcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s %v: protocol error %v; want a tool error", tool, args, err)
	}
	if !res.IsError {
		t.Fatalf("%s %v: succeeded; want a tool error", tool, args)
	}
	t.Logf("%s %v: %s", tool, args, text(res))
	return text(res)
}

func text(res *sdkmcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*sdkmcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

func toolNames(t *testing.T, cs *sdkmcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		if tool.Annotations == nil || !tool.Annotations.ReadOnlyHint {
			t.Errorf("tool %s is not annotated read-only", tool.Name)
		}
		if tool.Description == "" {
			t.Errorf("tool %s has no description", tool.Name)
		}
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

func TestTools(t *testing.T) {
	st := newStorage(t)
	dir := newClientStore(t)
	storageTools := []string{"list_stores", "read_events"}
	dirTools := []string{"client_store_events", "client_store_query", "client_store_summary", "sync_status"}
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"both", Options{Storage: st, StoreDirs: []string{dir}}, slices.Sorted(slices.Values(append(slices.Clone(storageTools), dirTools...)))},
		{"storage only", Options{Storage: st}, storageTools},
		{"dirs only", Options{StoreDirs: []string{dir}}, dirTools},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := connect(t, tt.opts)
			if got := toolNames(t, cs); !slices.Equal(got, tt.want) {
				t.Errorf("tools %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := NewServer(Options{}); !errors.Is(err, ErrNothingToServe) {
		t.Errorf("NewServer without data: %v", err)
	}
	if _, err := NewServer(Options{StoreDirs: []string{""}}); err == nil {
		t.Error("NewServer with an empty dir succeeded")
	}
}

func TestServerInfo(t *testing.T) {
	for _, tt := range []struct{ version, want string }{{"", "dev"}, {"v1.2.3", "v1.2.3"}} {
		cs := connect(t, Options{Storage: newStorage(t), Version: tt.version})
		info := cs.InitializeResult()
		if info.ServerInfo.Name != "livestore" || info.ServerInfo.Version != tt.want {
			t.Errorf("server info %+v, want livestore %s", info.ServerInfo, tt.want)
		}
		if !strings.Contains(info.Instructions, "read_events") {
			t.Errorf("instructions %q do not mention the tools", info.Instructions)
		}
	}
}

func TestListStores(t *testing.T) {
	cs := connect(t, Options{Storage: newStorage(t)})
	var out listStoresOutput
	call(t, cs, "list_stores", nil, &out)
	if len(out.Stores) != 2 {
		t.Fatalf("stores %+v, want alpha and beta", out.Stores)
	}
	for i, want := range []struct {
		id   string
		head int64
	}{{"alpha", 5}, {"beta", 2}} {
		s := out.Stores[i]
		if s.StoreID != want.id || s.Head != want.head || s.BackendID == "" {
			t.Errorf("store %d: %+v, want %s with head %d and a backend id", i, s, want.id, want.head)
		}
		if _, err := time.Parse(time.RFC3339, s.CreatedAt); err != nil {
			t.Errorf("createdAt %q: %v", s.CreatedAt, err)
		}
	}

	empty := connect(t, Options{Storage: func() *sqlitestore.Store {
		st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}()})
	out = listStoresOutput{}
	call(t, empty, "list_stores", map[string]any{}, &out)
	if len(out.Stores) != 0 {
		t.Errorf("empty storage lists %+v", out.Stores)
	}
}

func TestReadEvents(t *testing.T) {
	cs := connect(t, Options{Storage: newStorage(t)})

	// Page through alpha two events at a time.
	var seen []int64
	after := int64(0)
	for page := 0; ; page++ {
		var out readEventsOutput
		call(t, cs, "read_events", map[string]any{"storeId": "alpha", "after": after, "limit": 2}, &out)
		if out.StoreID != "alpha" || out.Head != 5 {
			t.Fatalf("page %d: storeId %q head %d", page, out.StoreID, out.Head)
		}
		for _, e := range out.Events {
			seen = append(seen, e.SeqNum)
			if e.ParentSeqNum != e.SeqNum-1 || e.Name != "v1.TodoCreated" || e.ClientID != "client-alpha" || e.SessionID != "session-1" {
				t.Errorf("event %+v", e)
			}
			if e.CreatedAt != "2026-11-25T10:00:00.123Z" {
				t.Errorf("createdAt %q", e.CreatedAt)
			}
			args, _ := e.Args.(map[string]any)
			if args["id"] != fmt.Sprint(e.SeqNum) {
				t.Errorf("event %d: args %v", e.SeqNum, e.Args)
			}
		}
		if out.More != (page < 2) {
			t.Errorf("page %d: more = %v", page, out.More)
		}
		if !out.More {
			if out.NextAfter != 5 {
				t.Errorf("last page: nextAfter %d, want 5", out.NextAfter)
			}
			break
		}
		if out.NextAfter != after+2 {
			t.Fatalf("page %d: nextAfter %d, want %d", page, out.NextAfter, after+2)
		}
		after = out.NextAfter
	}
	if !slices.Equal(seen, []int64{1, 2, 3, 4, 5}) {
		t.Errorf("read %v, want 1..5", seen)
	}

	// The defaults read everything; reading past the head reads nothing.
	var out readEventsOutput
	call(t, cs, "read_events", map[string]any{"storeId": "beta"}, &out)
	if len(out.Events) != 2 || out.More || out.NextAfter != 2 {
		t.Errorf("beta: %+v", out)
	}
	out = readEventsOutput{}
	call(t, cs, "read_events", map[string]any{"storeId": "beta", "after": 7}, &out)
	if len(out.Events) != 0 || out.More || out.NextAfter != 7 {
		t.Errorf("beta after 7: %+v", out)
	}

	for _, tt := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"storeId": "gamma"}, `unknown store "gamma"; the stores are "alpha", "beta"`},
		{map[string]any{"storeId": ""}, "storeId is required"},
		{map[string]any{}, "storeId"},
		{map[string]any{"storeId": "alpha", "after": -1}, "after -1"},
		{map[string]any{"storeId": "alpha", "limit": 1001}, "limit"},
		{map[string]any{"storeId": "alpha", "limit": 0}, "limit"},
		{map[string]any{"storeId": "alpha", "bogus": 1}, "bogus"},
	} {
		if msg := callFail(t, cs, "read_events", tt.args); !strings.Contains(msg, tt.want) {
			t.Errorf("read_events %v: error %q, want it to contain %q", tt.args, msg, tt.want)
		}
	}
}

func TestClientStoreSummary(t *testing.T) {
	dir := newClientStore(t)
	cs := connect(t, Options{StoreDirs: []string{dir}})
	var out summaryOutput
	call(t, cs, "client_store_summary", map[string]any{"dir": dir}, &out)
	want := summaryOutput{
		Dir: dir, Head: "e4", Events: 5, Pending: 4, ClientOnly: 1, SyncHead: 0, BackendID: "",
		Tables: []tableInfo{{Name: "drafts", Rows: 1}, {Name: "todos", Rows: 4}},
	}
	if fmt.Sprintf("%+v", out) != fmt.Sprintf("%+v", want) {
		t.Errorf("summary\n%+v\nwant\n%+v", out, want)
	}
}

func TestClientStoreEvents(t *testing.T) {
	dir := newClientStore(t)
	cs := connect(t, Options{StoreDirs: []string{dir}})

	var seqs []string
	after := ""
	for page := 0; page < 10; page++ {
		var out clientEventsOutput
		call(t, cs, "client_store_events", map[string]any{"dir": dir, "after": after, "limit": 2}, &out)
		for _, e := range out.Events {
			seqs = append(seqs, e.SeqNum)
			if e.SyncMetadata != nil {
				t.Errorf("unsynced event %s has sync metadata %v", e.SeqNum, e.SyncMetadata)
			}
		}
		if !out.More {
			break
		}
		after = out.NextAfter
	}
	if want := []string{"e1", "e2", "e3", "e3.1", "e4"}; !slices.Equal(seqs, want) {
		t.Errorf("seqNums %v, want %v", seqs, want)
	}

	var out clientEventsOutput
	call(t, cs, "client_store_events", map[string]any{"dir": dir, "after": "e3"}, &out)
	if len(out.Events) != 2 || out.More || out.NextAfter != "e4" {
		t.Fatalf("after e3: %+v", out)
	}
	draft, todo := out.Events[0], out.Events[1]
	if draft.SeqNum != "e3.1" || draft.ParentSeqNum != "e3" || draft.Name != "v1.DraftSaved" {
		t.Errorf("client-only event %+v", draft)
	}
	if todo.SeqNum != "e4" || todo.ParentSeqNum != "e3.1" || todo.Name != "v1.TodoCreated" || todo.ClientID == "" || todo.SessionID == "" {
		t.Errorf("synced event %+v", todo)
	}
	if args, _ := todo.Args.(map[string]any); args["text"] != "butter" {
		t.Errorf("args %v", todo.Args)
	}

	msg := callFail(t, cs, "client_store_events", map[string]any{"dir": dir, "after": "5"})
	if !strings.Contains(msg, `"5"`) || !strings.Contains(msg, "e5") {
		t.Errorf("bad after: %q", msg)
	}
}

func TestClientStoreQuery(t *testing.T) {
	dir := newClientStore(t)
	cs := connect(t, Options{StoreDirs: []string{dir}})

	var out queryOutput
	call(t, cs, "client_store_query", map[string]any{"dir": dir, "sql": "SELECT id, text, completed FROM todos ORDER BY id"}, &out)
	if !slices.Equal(out.Columns, []string{"id", "text", "completed"}) || out.Truncated {
		t.Errorf("columns %v truncated %v", out.Columns, out.Truncated)
	}
	if got := fmt.Sprint(out.Rows); got != "[[1 milk 0] [2 eggs 0] [3 bread 0] [4 butter 0]]" {
		t.Errorf("rows %s", got)
	}

	out = queryOutput{}
	call(t, cs, "client_store_query", map[string]any{"dir": dir, "sql": "SELECT id FROM todos ORDER BY id", "limit": 3}, &out)
	if len(out.Rows) != 3 || !out.Truncated {
		t.Errorf("limit 3: %d rows, truncated %v", len(out.Rows), out.Truncated)
	}

	out = queryOutput{}
	call(t, cs, "client_store_query", map[string]any{"dir": dir, "sql": "SELECT id FROM todos WHERE 0"}, &out)
	if !slices.Equal(out.Columns, []string{"id"}) || out.Rows == nil || len(out.Rows) != 0 {
		t.Errorf("no rows: %+v", out)
	}

	for _, tt := range []struct{ sql, want string }{
		{"DELETE FROM todos", "only reading statements"},
		{"INSERT INTO todos (id, text) VALUES ('5', 'x')", "only reading statements"},
		{"DROP TABLE todos", "only reading statements"},
		{"SELECT 1; DELETE FROM todos", "one statement"},
		{"SELECT * FROM nope", "no such table"},
		{"", "sql is required"},
	} {
		if msg := callFail(t, cs, "client_store_query", map[string]any{"dir": dir, "sql": tt.sql}); !strings.Contains(msg, tt.want) {
			t.Errorf("%q: error %q, want it to contain %q", tt.sql, msg, tt.want)
		}
	}
	out = queryOutput{}
	call(t, cs, "client_store_query", map[string]any{"dir": dir, "sql": "SELECT count(*) AS n FROM todos"}, &out)
	if fmt.Sprint(out.Rows) != "[[4]]" {
		t.Errorf("after refused writes: %v rows", out.Rows)
	}
}

func TestClientStoreDirs(t *testing.T) {
	dir := newClientStore(t)
	notStore := t.TempDir()
	missing := filepath.Join(t.TempDir(), "missing")
	cs := connect(t, Options{StoreDirs: []string{dir, notStore, missing}})
	other := newClientStore(t)

	for _, tool := range []string{"client_store_summary", "client_store_events", "client_store_query"} {
		args := map[string]any{"dir": other}
		if tool == "client_store_query" {
			args["sql"] = "SELECT 1"
		}
		msg := callFail(t, cs, tool, args)
		if !strings.Contains(msg, fmt.Sprintf("dir %q is not served", other)) || !strings.Contains(msg, fmt.Sprintf("%q", dir)) {
			t.Errorf("%s of a dir not served: %q", tool, msg)
		}
		// The path must match exactly.
		args["dir"] = dir + string(os.PathSeparator)
		if msg := callFail(t, cs, tool, args); !strings.Contains(msg, "is not served") {
			t.Errorf("%s of %s: %q", tool, args["dir"], msg)
		}
		args["dir"] = notStore
		if msg := callFail(t, cs, tool, args); !strings.Contains(msg, "not a store directory") {
			t.Errorf("%s of a dir without a store: %q", tool, msg)
		}
		args["dir"] = missing
		if msg := callFail(t, cs, tool, args); !strings.Contains(msg, "not a store directory") {
			t.Errorf("%s of a missing dir: %q", tool, msg)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("reading a missing dir created it: %v", err)
	}
	// The server still serves after the failures.
	var out summaryOutput
	call(t, cs, "client_store_summary", map[string]any{"dir": dir}, &out)
	if out.Events != 5 {
		t.Errorf("summary after failures: %+v", out)
	}
}

// The tools read a store that a program has open and is committing to.
func TestClientStoreOpenByProgram(t *testing.T) {
	dir := newClientStore(t)
	schema, created, _ := testSchema(t)
	store, err := livestore.Open(t.Context(), schema, livestore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cs := connect(t, Options{StoreDirs: []string{dir}})
	if err := store.Commit(t.Context(), created.New(todoCreated{ID: "5", Text: "jam"})); err != nil {
		t.Fatal(err)
	}
	var out summaryOutput
	call(t, cs, "client_store_summary", map[string]any{"dir": dir}, &out)
	if out.Head != "e5" || out.Events != 6 {
		t.Errorf("summary of an open store: %+v", out)
	}
	if err := store.Commit(t.Context(), created.New(todoCreated{ID: "6", Text: "tea"})); err != nil {
		t.Errorf("commit after the tools read: %v", err)
	}
}
