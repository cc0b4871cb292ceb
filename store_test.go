package livestore_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
)

func TestCommitAndQuery(t *testing.T) {
	for _, mode := range []string{"memory", "dir"} {
		t.Run(mode, func(t *testing.T) {
			a := newTodoApp(t)
			dir := ""
			if mode == "dir" {
				dir = t.TempDir()
			}
			s := openStore(t, a.schema, dir)
			ctx := context.Background()
			mustCommit(t, s, a.created.New(todoCreated{ID: "a", Text: "Buy milk"}), a.created.New(todoCreated{ID: "b", Text: "Walk"}))
			mustCommit(t, s, a.completed.New(todoID{ID: "a"}))
			rows, err := livestore.Query[todo](ctx, s, a.todos.Select().OrderBy("id"))
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 || rows[0].ID != "a" || !rows[0].Completed || rows[1].Completed || rows[1].Text != "Walk" {
				t.Fatalf("rows = %+v", rows)
			}
			open, err := livestore.Query[todo](ctx, s, a.todos.Where(livestore.Eq("completed", false)))
			if err != nil || len(open) != 1 || open[0].ID != "b" {
				t.Fatalf("open = %+v, %v", open, err)
			}
			head, _ := s.Head(ctx)
			if head.String() != "e3" {
				t.Fatalf("head = %s, want e3", head)
			}
		})
	}
}

func TestSequenceNumbers(t *testing.T) {
	a := newTodoApp(t)
	s := openStore(t, a.schema, "")
	ctx := context.Background()
	mustCommit(t, s, a.created.New(todoCreated{ID: "a", Text: "x"}))
	mustCommit(t, s, a.renamed.New(todoCreated{ID: "a", Text: "y"}), a.renamed.New(todoCreated{ID: "a", Text: "z"}))
	mustCommit(t, s, a.completed.New(todoID{ID: "a"}))
	mustCommit(t, s, a.ui.Set("main", map[string]any{"filter": "done"}))
	var got []string
	var parents []string
	for ev, err := range s.Events(ctx, eventlog.Root) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.SeqNum.String())
		parents = append(parents, ev.ParentSeqNum.String())
		if ev.ClientID != s.ClientID() || ev.SessionID != s.SessionID() {
			t.Errorf("event %s: client %q session %q", ev.SeqNum, ev.ClientID, ev.SessionID)
		}
	}
	want := []string{"e1", "e1.1", "e1.2", "e2", "e2.1"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("seqNums = %v, want %v", got, want)
	}
	if strings.Join(parents, ",") != "e0,e1,e1.1,e1.2,e2" {
		t.Fatalf("parents = %v", parents)
	}
	rows, _ := livestore.Query[todo](ctx, s, a.todos.Select())
	if rows[0].Text != "xyz" || !rows[0].Completed {
		t.Fatalf("row = %+v", rows[0])
	}
	// Iterating from a position skips what came before.
	var after []string
	for ev, err := range s.Events(ctx, eventlog.SeqNum{Global: 1, Client: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		after = append(after, ev.SeqNum.String())
	}
	if strings.Join(after, ",") != "e1.2,e2,e2.1" {
		t.Fatalf("after e1.1: %v", after)
	}
}

func TestClientDocument(t *testing.T) {
	a := newTodoApp(t)
	s := openStore(t, a.schema, "")
	ctx := context.Background()
	v, err := a.ui.Get(ctx, s, "main")
	if err != nil || v != (uiState{Filter: "all"}) {
		t.Fatalf("default = %+v, %v", v, err)
	}
	mustCommit(t, s, a.ui.Set("main", map[string]any{"newText": "hello"}))
	mustCommit(t, s, a.ui.Set("main", struct {
		Filter string `json:"filter"`
	}{"completed"}))
	v, err = a.ui.Get(ctx, s, "main")
	if err != nil || v != (uiState{Filter: "completed", NewText: "hello"}) {
		t.Fatalf("merged = %+v, %v", v, err)
	}
	other, _ := a.ui.Get(ctx, s, "other")
	if other != (uiState{Filter: "all"}) {
		t.Fatalf("other = %+v", other)
	}
	if a.ui.SetEvent() != "uiStateSet" {
		t.Fatalf("set event = %s", a.ui.SetEvent())
	}
}

func TestBadInputLeavesStoreUnchanged(t *testing.T) {
	a := newTodoApp(t)
	dir := t.TempDir()
	s := openStore(t, a.schema, dir)
	ctx := context.Background()
	mustCommit(t, s, a.created.New(todoCreated{ID: "a", Text: "keep"}))
	before := dump(t, s)
	headBefore, _ := s.Head(ctx)

	cases := []struct {
		name  string
		evs   []livestore.Event
		check func(error) bool
	}{
		{"unknown event", []livestore.Event{{Name: "v9.Nope", Args: json.RawMessage(`{}`)}},
			func(err error) bool {
				var u *livestore.UnknownEventError
				return errors.As(err, &u) && u.Name == "v9.Nope"
			}},
		{"args of wrong type", []livestore.Event{{Name: "v1.TodoCreated", Args: json.RawMessage(`{"id":5}`)}},
			func(err error) bool { return strings.Contains(err.Error(), "v1.TodoCreated") }},
		{"args not JSON", []livestore.Event{{Name: "v1.TodoCreated", Args: json.RawMessage(`{"id":`)}},
			func(err error) bool { return strings.Contains(err.Error(), "not valid JSON") }},
		{"materializer error after a good event", []livestore.Event{a.created.New(todoCreated{ID: "b"}), a.failing.New(todoID{ID: "boom"})},
			func(err error) bool {
				var m *livestore.MaterializerError
				return errors.As(err, &m) && errors.Is(err, errBoom)
			}},
		{"SQL error", []livestore.Event{a.created.New(todoCreated{ID: "c"}), a.failing.New(todoID{ID: "badsql"})},
			func(err error) bool { return strings.Contains(err.Error(), "no such table") }},
		{"materializer panic", []livestore.Event{a.failing.New(todoID{ID: "panic"})},
			func(err error) bool { return strings.Contains(err.Error(), "panicked") }},
		{"constraint violation", []livestore.Event{a.created.New(todoCreated{ID: "a"})},
			func(err error) bool { return strings.Contains(err.Error(), "UNIQUE") }},
	}
	for _, c := range cases {
		err := s.Commit(ctx, c.evs...)
		if err == nil || !c.check(err) {
			t.Errorf("%s: err = %v", c.name, err)
		}
		if d := dump(t, s); d != before {
			t.Errorf("%s: state changed:\n%s", c.name, d)
		}
		if h, _ := s.Head(ctx); h != headBefore {
			t.Errorf("%s: head moved to %s", c.name, h)
		}
	}
	// Still usable, and the failed commits left no trace after a reopen.
	mustCommit(t, s, a.created.New(todoCreated{ID: "b", Text: "ok"}))
	s.Close()
	s2 := openStore(t, a.schema, dir)
	n := 0
	for _, err := range s2.Events(ctx, eventlog.Root) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("events after reopen = %d, want 2", n)
	}
}

func TestClosedStore(t *testing.T) {
	a := newTodoApp(t)
	s := openStore(t, a.schema, t.TempDir())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Commit(ctx, a.created.New(todoCreated{ID: "x"})); !errors.Is(err, livestore.ErrStoreClosed) {
		t.Fatalf("commit err = %v", err)
	}
	if _, err := livestore.Query[todo](ctx, s, a.todos.Select()); !errors.Is(err, livestore.ErrStoreClosed) {
		t.Fatalf("query err = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestDirectoryLock(t *testing.T) {
	a := newTodoApp(t)
	dir := t.TempDir()
	s := openStore(t, a.schema, dir)
	_, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: dir})
	var le *livestore.LockedError
	if !errors.Is(err, livestore.ErrLocked) || !errors.As(err, &le) || !strings.Contains(le.Holder, "pid ") {
		t.Fatalf("second open err = %v", err)
	}
	s.Close()
	s2, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: dir})
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	s2.Close()
}

func TestForeignAndCorruptFiles(t *testing.T) {
	a := newTodoApp(t)
	ctx := context.Background()

	garbage := t.TempDir()
	os.WriteFile(filepath.Join(garbage, livestore.DBFileName), []byte(strings.Repeat("not a database ", 100)), 0o644)
	if _, err := livestore.Open(ctx, a.schema, livestore.Options{Dir: garbage}); !errors.Is(err, livestore.ErrNotAStore) {
		t.Fatalf("garbage: err = %v", err)
	}

	foreign := t.TempDir()
	other := newTodoApp(t)
	_ = other
	// A SQLite database of some other program.
	writeForeignDB(t, filepath.Join(foreign, livestore.DBFileName))
	if _, err := livestore.Open(ctx, a.schema, livestore.Options{Dir: foreign}); !errors.Is(err, livestore.ErrNotAStore) {
		t.Fatalf("foreign: err = %v", err)
	}
}

func TestClientIDPersists(t *testing.T) {
	a := newTodoApp(t)
	dir := t.TempDir()
	s := openStore(t, a.schema, dir)
	id, sess := s.ClientID(), s.SessionID()
	if len(id) != 6 || len(sess) != 6 {
		t.Fatalf("ids %q %q", id, sess)
	}
	s.Close()
	s2 := openStore(t, a.schema, dir)
	if s2.ClientID() != id {
		t.Fatalf("client id %q → %q", id, s2.ClientID())
	}
	if s2.SessionID() == sess {
		t.Fatal("session id reused")
	}
}

func TestRematerializeOnTableChange(t *testing.T) {
	a := newTodoApp(t)
	dir := t.TempDir()
	s := openStore(t, a.schema, dir)
	for i := 0; i < 50; i++ {
		id := string(rune('a'+i%26)) + string(rune('a'+i/26))
		mustCommit(t, s, a.created.New(todoCreated{ID: id, Text: "t" + id}))
		if i%3 == 0 {
			mustCommit(t, s, a.completed.New(todoID{ID: id}))
		}
		if i%7 == 0 {
			mustCommit(t, s, a.deleted.New(todoDeleted{ID: id, DeletedAt: time.Date(2024, 1, 2, 3, 4, 5, 6e6, time.UTC)}))
		}
	}
	mustCommit(t, s, a.ui.Set("main", map[string]any{"filter": "active"}))
	before := dump(t, s)
	s.Close()

	// The same schema plus a column: state is rebuilt on Open.
	b := newTodoApp(t, livestore.Integer("priority").Default(0))
	var calls, lastDone, lastTotal int64
	s2, err := livestore.Open(context.Background(), b.schema, livestore.Options{Dir: dir, OnRematerialize: func(done, total int64) {
		calls++
		lastDone, lastTotal = done, total
	}})
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || lastDone != lastTotal || lastTotal == 0 {
		t.Fatalf("progress: calls=%d done=%d total=%d", calls, lastDone, lastTotal)
	}
	after := dump(t, s2)
	if after == before {
		t.Fatal("dump did not change with the new column")
	}
	s2.Close()

	// Back to the old schema: the rebuilt state equals the original byte for byte.
	s3, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if got := dump(t, s3); got != before {
		t.Fatalf("state after rebuild differs:\n--- before\n%s\n--- after\n%s", before, got)
	}
	// An explicit rematerialization is a no-op on equal state.
	if err := s3.Rematerialize(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, s3); got != before {
		t.Fatal("Rematerialize changed state")
	}
}

func TestUnknownEventPolicyOnReplay(t *testing.T) {
	a := newTodoApp(t)
	dir := t.TempDir()
	s := openStore(t, a.schema, dir)
	mustCommit(t, s, a.created.New(todoCreated{ID: "a", Text: "x"}), a.failing.New(todoID{ID: "z"}))
	s.Close()

	// A schema without v1.Failing, as an older client would have.
	todos := livestore.NewTable("todos", livestore.Text("id").PrimaryKey(), livestore.Text("text").Default(""))
	created := livestore.Synced[todoCreated]("v1.TodoCreated")
	mat := livestore.Materialize(created, func(_ *livestore.MaterializeContext, e todoCreated) ([]livestore.Statement, error) {
		return []livestore.Statement{todos.Insert(livestore.Values{"id": e.ID, "text": e.Text})}, nil
	})
	for _, c := range []struct {
		name    string
		policy  livestore.UnknownEventHandling
		wantErr bool
	}{
		{"warn", livestore.UnknownEventHandling{}, false},
		{"ignore", livestore.UnknownEventHandling{Strategy: livestore.UnknownEventIgnore}, false},
		{"fail", livestore.UnknownEventHandling{Strategy: livestore.UnknownEventFail}, true},
	} {
		schema, err := livestore.NewSchema(livestore.SchemaDef{
			Tables: []*livestore.Table{todos}, Events: []livestore.Definition{created},
			Materializers: []livestore.Materializer{mat}, UnknownEvents: c.policy,
		})
		if err != nil {
			t.Fatal(err)
		}
		s, err := livestore.Open(context.Background(), schema, livestore.Options{Dir: dir})
		if err == nil {
			err = s.Rematerialize(context.Background())
		}
		if c.wantErr {
			var u *livestore.UnknownEventError
			if !errors.As(err, &u) || u.Name != "v1.Failing" {
				t.Fatalf("%s: err = %v", c.name, err)
			}
			if s != nil {
				s.Close()
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		rows, _ := livestore.Query[todo](context.Background(), s, livestore.SQL("SELECT id, text FROM todos"))
		s.Close()
		if len(rows) != 1 || rows[0].ID != "a" {
			t.Fatalf("%s: rows = %+v", c.name, rows)
		}
	}
	var seen []string
	schema, _ := livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{livestore.NewTable("todos2", livestore.Text("id").PrimaryKey())}, Events: []livestore.Definition{created},
		Materializers: []livestore.Materializer{livestore.Materialize(created, func(*livestore.MaterializeContext, todoCreated) ([]livestore.Statement, error) { return nil, nil })},
		UnknownEvents: livestore.UnknownEventHandling{Strategy: livestore.UnknownEventCallback, OnUnknownEvent: func(ev eventlog.Event, _ error) {
			seen = append(seen, ev.Name+"@"+ev.SeqNum.String())
		}},
	})
	s2, err := livestore.Open(context.Background(), schema, livestore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if strings.Join(seen, ",") != "v1.Failing@e2" {
		t.Fatalf("callback saw %v", seen)
	}
}

func TestSchemaValidation(t *testing.T) {
	ev := livestore.Synced[todoID]("v1.X")
	noop := livestore.Materialize(ev, func(*livestore.MaterializeContext, todoID) ([]livestore.Statement, error) { return nil, nil })
	cases := map[string]livestore.SchemaDef{
		"no primary key":    {Tables: []*livestore.Table{livestore.NewTable("t", livestore.Text("a"))}},
		"duplicate column":  {Tables: []*livestore.Table{livestore.NewTable("t", livestore.Text("a").PrimaryKey(), livestore.Text("a"))}},
		"reserved name":     {Tables: []*livestore.Table{livestore.NewTable("__livestore_x", livestore.Text("a").PrimaryKey())}},
		"bad default":       {Tables: []*livestore.Table{livestore.NewTable("t", livestore.Text("a").PrimaryKey(), livestore.Integer("n").Default("x"))}},
		"index on unknown":  {Tables: []*livestore.Table{livestore.NewTable("t", livestore.Text("a").PrimaryKey()).WithIndex("i", "b")}},
		"duplicate event":   {Events: []livestore.Definition{ev, livestore.Synced[todoID]("v1.X")}},
		"materializer only": {Materializers: []livestore.Materializer{noop}},
		"two materializers": {Events: []livestore.Definition{ev}, Materializers: []livestore.Materializer{noop, noop}},
		"callback missing":  {UnknownEvents: livestore.UnknownEventHandling{Strategy: livestore.UnknownEventCallback}},
	}
	for name, def := range cases {
		if _, err := livestore.NewSchema(def); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
