package devtools_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/devtools"
	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// The schema of a live store's page tests: todos, renamed through an event
// the page's Edit declares, and a client document of UI state.
type (
	todo struct {
		ID        string `db:"id" json:"id"`
		Text      string `db:"text" json:"text"`
		Completed bool   `db:"completed" json:"completed"`
	}
	todoCreated struct {
		ID   string `json:"id"`
		Text string `json:"text"`
	}
	todoRenamed struct {
		ID   string `json:"id"`
		Text string `json:"text"`
	}
	uiState struct {
		Filter string `json:"filter"`
	}
)

type todoSchema struct {
	schema  *livestore.Schema
	todos   *livestore.Table
	ui      *livestore.ClientDocumentTable[uiState]
	created *livestore.EventDef[todoCreated]
	renamed *livestore.EventDef[todoRenamed]
}

func newTodoSchema(t testing.TB) *todoSchema {
	t.Helper()
	a := &todoSchema{
		todos: livestore.NewTable("todos", livestore.Text("id").PrimaryKey(), livestore.Text("text"),
			livestore.Boolean("completed").Default(false)),
		ui:      livestore.ClientDocument("uiState", uiState{Filter: "all"}),
		created: livestore.Synced[todoCreated]("v1.TodoCreated"),
		renamed: livestore.Synced[todoRenamed]("v1.TodoRenamed"),
	}
	var err error
	a.schema, err = livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{a.todos, a.ui.Table},
		Events: []livestore.Definition{a.created, a.renamed},
		Materializers: []livestore.Materializer{
			livestore.Materialize(a.created, func(_ *livestore.MaterializeContext, e todoCreated) ([]livestore.Statement, error) {
				return []livestore.Statement{a.todos.Insert(livestore.Values{"id": e.ID, "text": e.Text})}, nil
			}),
			livestore.Materialize(a.renamed, func(_ *livestore.MaterializeContext, e todoRenamed) ([]livestore.Statement, error) {
				return []livestore.Statement{a.todos.Update(livestore.Values{"text": e.Text}).Where(livestore.Eq("id", e.ID))}, nil
			}),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// edit is the Options.Edit of the tests: the text of a todo is renamed,
// nothing else can be edited.
func (a *todoSchema) edit(table string, key map[string]any, column string, value json.RawMessage) (livestore.Event, error) {
	if table != "todos" || column != "text" {
		return livestore.Event{}, fmt.Errorf("only the text of a todo can be edited, not %s.%s", table, column)
	}
	var text string
	if err := json.Unmarshal(value, &text); err != nil {
		return livestore.Event{}, errors.New("the text is a string")
	}
	return a.renamed.New(todoRenamed{ID: key["id"].(string), Text: text}), nil
}

// startSyncServer serves the real sync server on loopback with its SQLite
// storage and returns its ws:// URL.
func startSyncServer(t testing.TB) string {
	t.Helper()
	storage, err := sqlitestore.Open(filepath.Join(t.TempDir(), "server.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := syncserver.New(syncserver.Options{Storage: storage})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.CloseClientConnections()
		srv.Close()
		hs.Close()
		storage.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

// openStore opens a store in a new directory, syncing with url when url is
// not empty.
func openStore(t testing.TB, a *todoSchema, url string) *livestore.Store {
	t.Helper()
	opts := livestore.Options{Dir: t.TempDir(), StoreID: "devtools-store"}
	if url != "" {
		opts.Sync = &livestore.SyncOptions{Backend: syncclient.WebSocketBackend(url, syncclient.Options{}),
			MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	}
	s, err := livestore.Open(context.Background(), a.schema, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// servePage serves the page of s on loopback and returns its base URL
// (ending in /).
func servePage(t testing.TB, s *livestore.Store, opts devtools.Options) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/_devtools/", http.StripPrefix("/_devtools", devtools.Handler(s, opts)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/_devtools/"
}

// call sends a request with an optional JSON body and decodes the JSON
// answer into v (when not nil), failing unless the status is want.
func call(t testing.TB, method, url string, body any, want int, v any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, resp.StatusCode, raw, want)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, raw)
		}
	}
}

// apiError is the answer to bad input.
type apiError struct {
	Error string `json:"error"`
}

func commitTodos(t testing.TB, a *todoSchema, s *livestore.Store, from, n int) {
	t.Helper()
	evs := make([]livestore.Event, n)
	for i := range evs {
		id := from + i
		evs[i] = a.created.New(todoCreated{ID: fmt.Sprintf("t%03d", id), Text: fmt.Sprintf("todo %03d", id)})
	}
	if err := s.Commit(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
}

// waitFor watches q in s until ok accepts its value or 10 seconds pass.
func waitFor[T any](t testing.TB, s *livestore.Store, q livestore.Queryable[T], ok func(T) bool) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last T
	for v, err := range livestore.Watch(ctx, s, q) {
		if err != nil {
			t.Fatal(err)
		}
		if last = v; ok(v) {
			return v
		}
	}
	t.Fatalf("gave up waiting; last value %+v", last)
	return last
}

// waitSynced waits until s is connected with nothing pending.
func waitSynced(t testing.TB, s *livestore.Store) {
	t.Helper()
	waitFor(t, s, s.SyncStatusSignal(), func(st livestore.SyncStatus) bool { return st.IsSynced })
}
