package mcp

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/livestore-go/livestore"
)

// connectStore serves store with NewStoreServer over a pair of OS pipes, as
// stdio would carry it, and returns the client's session.
func connectStore(t *testing.T, store *livestore.Store, opts StoreOptions) *sdkmcp.ClientSession {
	t.Helper()
	srv, err := NewStoreServer(store, opts)
	if err != nil {
		t.Fatal(err)
	}
	toServerR, toServerW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	toClientR, toClientW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ss, err := srv.Connect(ctx, &sdkmcp.IOTransport{Reader: toServerR, Writer: toClientW}, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := sdkmcp.NewClient(&sdkmcp.Implementation{Name: "test", Version: "v0"}, nil)
	cs, err := client.Connect(ctx, &sdkmcp.IOTransport{Reader: toClientR, Writer: toServerW}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs.Close()
		ss.Wait()
	})
	return cs
}

func openTestStore(t *testing.T) (*livestore.Store, *livestore.EventDef[todoCreated]) {
	t.Helper()
	schema, created, _ := testSchema(t)
	store, err := livestore.Open(t.Context(), schema, livestore.Options{Dir: filepath.Join(t.TempDir(), "app")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store, created
}

func listedTools(t *testing.T, cs *sdkmcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		readOnly := tool.Annotations != nil && tool.Annotations.ReadOnlyHint
		if readOnly == (tool.Name == "commit") {
			t.Errorf("tool %s: read-only hint %v", tool.Name, readOnly)
		}
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

func TestStoreServerCommitThenQuery(t *testing.T) {
	store, _ := openTestStore(t)
	cs := connectStore(t, store, StoreOptions{AllowCommit: true})
	if got, want := listedTools(t, cs), []string{"commit", "events", "query", "status"}; !slices.Equal(got, want) {
		t.Fatalf("tools %v, want %v", got, want)
	}
	var c commitOutput
	call(t, cs, "commit", map[string]any{"name": "v1.TodoCreated", "args": map[string]any{"id": "7", "text": "call mum"}}, &c)
	if c.Head != "e1" {
		t.Errorf("commit head %q, want e1", c.Head)
	}
	var q queryOutput
	call(t, cs, "query", map[string]any{"sql": "SELECT id, text FROM todos"}, &q)
	if len(q.Rows) != 1 || q.Rows[0][0] != "7" || q.Rows[0][1] != "call mum" {
		t.Fatalf("rows %v, want [[7 call mum]]", q.Rows)
	}
	// The application sees the assistant's commit.
	var text string
	if _, err := store.QueryReadOnly(t.Context(), "SELECT text FROM todos WHERE id = '7'", nil, func(row []any) error {
		text = row[0].(string)
		return nil
	}); err != nil || text != "call mum" {
		t.Fatalf("store reads %q, %v", text, err)
	}
	var st statusOutput
	call(t, cs, "status", nil, &st)
	if st.LocalHead != "e1" || st.Pending != 1 || st.StoreID != store.StoreID() {
		t.Errorf("status %+v, want head e1, 1 pending, store %s", st, store.StoreID())
	}
	var ev storeEventsOutput
	call(t, cs, "events", nil, &ev)
	if len(ev.Events) != 1 || ev.Events[0].Name != "v1.TodoCreated" || ev.Events[0].SeqNum != "e1" || ev.More {
		t.Fatalf("events %+v", ev)
	}
}

func TestStoreServerRefusals(t *testing.T) {
	store, _ := openTestStore(t)
	cs := connectStore(t, store, StoreOptions{AllowCommit: true})
	for _, tc := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"commit", map[string]any{"name": "v1.Nope", "args": map[string]any{}}, `unknown event "v1.Nope"; the store's events are "v1.DraftSaved", "v1.TodoCreated"`},
		{"commit", map[string]any{"name": "v1.TodoCreated", "args": map[string]any{"id": 5}}, "commit v1.TodoCreated: event v1.TodoCreated: args do not match"},
		{"commit", map[string]any{"name": "v1.TodoCreated", "args": "x"}, `args of v1.TodoCreated must be a JSON object, not "x"`},
		{"commit", map[string]any{"name": "v1.TodoCreated"}, "args is required"},
		{"commit", map[string]any{"name": 3, "args": map[string]any{}}, "name must be a string, not 3"},
		{"commit", nil, "name is required"},
		{"query", nil, "sql is required"},
		{"query", map[string]any{"sql": "DELETE FROM todos"}, "query:"},
		{"query", map[string]any{"sql": "SELECT 1", "limit": "many"}, "limit must be a whole number"},
		{"query", map[string]any{"sql": "SELECT 1", "bogus": 1}, `unknown argument "bogus"`},
		{"events", map[string]any{"after": "x5"}, "after:"},
	} {
		if got := callFail(t, cs, tc.tool, tc.args); !strings.Contains(got, tc.want) {
			t.Errorf("%s %v: %q, want it to contain %q", tc.tool, tc.args, got, tc.want)
		}
	}
	var ev storeEventsOutput
	call(t, cs, "events", nil, &ev)
	if len(ev.Events) != 0 {
		t.Fatalf("refused commits left events %+v", ev.Events)
	}
}

func TestStoreServerReadOnlyByDefault(t *testing.T) {
	store, _ := openTestStore(t)
	cs := connectStore(t, store, StoreOptions{})
	if got, want := listedTools(t, cs), []string{"events", "query", "status"}; !slices.Equal(got, want) {
		t.Fatalf("tools %v, want %v", got, want)
	}
	res, err := cs.CallTool(t.Context(), &sdkmcp.CallToolParams{Name: "commit", Arguments: map[string]any{"name": "v1.TodoCreated", "args": map[string]any{"id": "1"}}})
	if err == nil && !res.IsError {
		t.Fatal("commit succeeded on a read-only server")
	}
	if err != nil && !strings.Contains(err.Error(), "commit") {
		t.Errorf("error %v does not name the tool", err)
	}
	if h, err := store.Head(t.Context()); err != nil || h.String() != "e0" {
		t.Fatalf("head %v, %v; want e0", h, err)
	}
}

func TestStoreServerPaging(t *testing.T) {
	store, created := openTestStore(t)
	for i := range 5 {
		if err := store.Commit(t.Context(), created.New(todoCreated{ID: string(rune('a' + i)), Text: "t"})); err != nil {
			t.Fatal(err)
		}
	}
	cs := connectStore(t, store, StoreOptions{})
	var ev storeEventsOutput
	call(t, cs, "events", map[string]any{"limit": 2, "after": "e1"}, &ev)
	if len(ev.Events) != 2 || ev.Events[0].SeqNum != "e2" || ev.NextAfter != "e3" || !ev.More {
		t.Fatalf("page %+v", ev)
	}
	var q queryOutput
	call(t, cs, "query", map[string]any{"sql": "SELECT id FROM todos ORDER BY id", "limit": 3}, &q)
	if len(q.Rows) != 3 || !q.Truncated || q.TruncatedBy != "rows" {
		t.Fatalf("query %+v", q)
	}
}
