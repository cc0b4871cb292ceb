package livestore_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

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
