package inspect_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/inspect"
	"github.com/livestore-go/livestore/memsync"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type todoCreated struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

type filterSet struct {
	Filter string `json:"filter"`
}

type app struct {
	schema  *livestore.Schema
	created *livestore.EventDef[todoCreated]
	filter  *livestore.EventDef[filterSet]
}

func newApp(t *testing.T) app {
	t.Helper()
	todos := livestore.NewTable("todos", livestore.Text("id").PrimaryKey(), livestore.Text("text"))
	ui := livestore.NewTable("ui_state", livestore.Text("id").PrimaryKey(), livestore.Text("filter"))
	created := livestore.Synced[todoCreated]("v1.TodoCreated")
	filter := livestore.ClientOnly[filterSet]("v1.FilterSet")
	schema, err := livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{todos, ui},
		Events: []livestore.Definition{created, filter},
		Materializers: []livestore.Materializer{
			livestore.Materialize(created, func(_ *livestore.MaterializeContext, e todoCreated) ([]livestore.Statement, error) {
				return []livestore.Statement{todos.Insert(livestore.Values{"id": e.ID, "text": e.Text})}, nil
			}),
			livestore.Materialize(filter, func(_ *livestore.MaterializeContext, e filterSet) ([]livestore.Statement, error) {
				return []livestore.Statement{ui.Insert(livestore.Values{"id": "ui", "filter": e.Filter}).OnConflict("id").Replace()}, nil
			}),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return app{schema, created, filter}
}

// openStore opens a store in dir and commits n todos and one client-only
// event after the first; the store stays open (owned) for the test.
func openStore(t *testing.T, a app, dir string, sync *livestore.SyncOptions, n int) *livestore.Store {
	t.Helper()
	ctx := context.Background()
	s, err := livestore.Open(ctx, a.schema, livestore.Options{Dir: dir, StoreID: "inspected", Sync: sync})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for i := range n {
		if err := s.Commit(ctx, a.created.New(todoCreated{ID: fmt.Sprintf("t%02d", i), Text: "todo " + fmt.Sprint(i)})); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := s.Commit(ctx, a.filter.New(filterSet{Filter: "all"})); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

func openDir(t *testing.T, dir string) *inspect.Dir {
	t.Helper()
	d, err := inspect.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func TestSummaryOfOwnedStore(t *testing.T) {
	a := newApp(t)
	dir := t.TempDir()
	s := openStore(t, a, dir, nil, 5)
	d := openDir(t, dir)
	sum, err := d.Summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != 6 || sum.Pending != 5 || sum.ClientOnly != 1 || sum.SyncHead != 0 || sum.BackendID != "" {
		t.Fatalf("summary = %+v", sum)
	}
	if got := sum.Head.String(); got != "e5" {
		t.Fatalf("head %s, want e5", got)
	}
	want := []inspect.TableInfo{{Name: "todos", Rows: 5}, {Name: "ui_state", Rows: 1}}
	if fmt.Sprint(sum.Tables) != fmt.Sprint(want) {
		t.Fatalf("tables %v, want %v", sum.Tables, want)
	}
	// The owner keeps committing; the next summary sees it.
	if err := s.Commit(context.Background(), a.created.New(todoCreated{ID: "late", Text: "x"})); err != nil {
		t.Fatal(err)
	}
	sum, err = d.Summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != 7 || sum.Tables[0].Rows != 6 {
		t.Fatalf("after another commit: %+v", sum)
	}
}

func TestSummaryOfSyncedStore(t *testing.T) {
	a := newApp(t)
	dir := t.TempDir()
	srv := memsync.NewServer()
	s := openStore(t, a, dir, &livestore.SyncOptions{Backend: srv.NewLink()}, 3)
	ctx := context.Background()
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
	sum, err := openDir(t, dir).Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.SyncHead != 3 || sum.Pending != 0 || sum.BackendID == "" || sum.Events != 4 {
		t.Fatalf("summary = %+v", sum)
	}
}

func TestScanEvents(t *testing.T) {
	a := newApp(t)
	dir := t.TempDir()
	openStore(t, a, dir, nil, 4)
	d := openDir(t, dir)
	ctx := context.Background()
	var got []string
	err := d.ScanEvents(ctx, eventlog.SeqNum{}, 0, func(e eventlog.Event) error {
		got = append(got, e.SeqNum.String()+" "+e.Name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "e1 v1.TodoCreated,e1.1 v1.FilterSet,e2 v1.TodoCreated,e3 v1.TodoCreated,e4 v1.TodoCreated"
	if strings.Join(got, ",") != want {
		t.Fatalf("events %s\nwant   %s", strings.Join(got, ","), want)
	}
	// After a client-only seqNum, and stopped by the callback.
	got = got[:0]
	err = d.ScanEvents(ctx, eventlog.SeqNum{Global: 1, Client: 1}, 0, func(e eventlog.Event) error {
		got = append(got, e.SeqNum.String())
		if len(got) == 2 {
			return inspect.ErrStop
		}
		return nil
	})
	if err != nil || strings.Join(got, ",") != "e2,e3" {
		t.Fatalf("after e1.1, stopped after two: %v, %v", got, err)
	}
}

func TestQuery(t *testing.T) {
	a := newApp(t)
	dir := t.TempDir()
	openStore(t, a, dir, nil, 3)
	d := openDir(t, dir)
	ctx := context.Background()

	res, err := d.Query(ctx, "SELECT id, text, length(text) AS n FROM todos ORDER BY id", inspect.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Columns) != "[id text n]" || fmt.Sprint(res.Rows) != "[[t00 todo 0 6] [t01 todo 1 6] [t02 todo 2 6]]" || res.Truncated {
		t.Fatalf("result %+v", res)
	}
	res, err = d.Query(ctx, "SELECT id FROM todos ORDER BY id", inspect.Limits{MaxRows: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 2 || !res.Truncated || res.TruncatedBy != inspect.LimitRows {
		t.Fatalf("limited result %+v", res)
	}
	res, err = d.Query(ctx, "SELECT id FROM todos WHERE id = 'none'", inspect.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Columns) != "[id]" || len(res.Rows) != 0 {
		t.Fatalf("empty result %+v", res)
	}
	res, err = d.Query(ctx, "PRAGMA table_info(todos)", inspect.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 2 {
		t.Fatalf("table_info %+v", res)
	}

	for _, bad := range []string{
		"INSERT INTO todos (id, text) VALUES ('x', 'y')",
		"DELETE FROM todos",
		"UPDATE todos SET text = ''",
		"DROP TABLE todos",
		"CREATE TABLE x (id TEXT PRIMARY KEY)",
		"ATTACH DATABASE ':memory:' AS other",
		"PRAGMA journal_mode = DELETE",
		"BEGIN",
		"SELECT 1; DELETE FROM todos",
		"",
		"SELEKT 1",
		"VACUUM",
		"VACUUM INTO '/nonexistent/copy.db'",
	} {
		if _, err := d.Query(ctx, bad, inspect.Limits{}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	res, err = d.Query(ctx, "SELECT count(*) FROM todos", inspect.Limits{})
	if err != nil || fmt.Sprint(res.Rows) != "[[3]]" {
		t.Fatalf("after refused statements: %+v, %v", res, err)
	}
}

func TestOpenRejectsNonStores(t *testing.T) {
	ctx := context.Background()
	if _, err := inspect.Open(ctx, t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a store directory") {
		t.Fatalf("empty dir: %v", err)
	}
}
