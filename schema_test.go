package livestore_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
)

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
