package livestore_test

import (
	"context"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
)

type todoCreated struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

type todoID struct {
	ID string `json:"id"`
}

type todoDeleted struct {
	ID        string    `json:"id"`
	DeletedAt time.Time `json:"deletedAt"`
}

type todo struct {
	ID        string     `db:"id"`
	Text      string     `db:"text"`
	Completed bool       `db:"completed"`
	DeletedAt *time.Time `db:"deletedAt"`
}

type uiState struct {
	Filter  string `json:"filter"`
	NewText string `json:"newText"`
}

// todoApp is the schema most tests use.
type todoApp struct {
	todos     *livestore.Table
	ui        *livestore.ClientDocumentTable[uiState]
	created   *livestore.EventDef[todoCreated]
	completed *livestore.EventDef[todoID]
	deleted   *livestore.EventDef[todoDeleted]
	cleared   *livestore.EventDef[struct{}]
	renamed   *livestore.EventDef[todoCreated] // client-only
	failing   *livestore.EventDef[todoID]      // materializer errors for id "boom"
	schema    *livestore.Schema
}

func newTodoApp(t testing.TB, extraColumns ...livestore.Column) *todoApp {
	t.Helper()
	a := &todoApp{}
	cols := append([]livestore.Column{
		livestore.Text("id").PrimaryKey(),
		livestore.Text("text").Default(""),
		livestore.Boolean("completed").Default(false),
		livestore.DateTime("deletedAt").Nullable(),
	}, extraColumns...)
	a.todos = livestore.NewTable("todos", cols...).WithIndex("todos_completed", "completed")
	a.ui = livestore.ClientDocument("uiState", uiState{Filter: "all"})
	a.created = livestore.Synced[todoCreated]("v1.TodoCreated")
	a.completed = livestore.Synced[todoID]("v1.TodoCompleted")
	a.deleted = livestore.Synced[todoDeleted]("v1.TodoDeleted")
	a.cleared = livestore.Synced[struct{}]("v1.TodoClearedCompleted")
	a.renamed = livestore.ClientOnly[todoCreated]("v1.TodoRenamedLocally")
	a.failing = livestore.Synced[todoID]("v1.Failing")
	var err error
	a.schema, err = livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{a.todos, a.ui.Table},
		Events: []livestore.Definition{a.created, a.completed, a.deleted, a.cleared, a.renamed, a.failing},
		Materializers: []livestore.Materializer{
			livestore.Materialize(a.created, func(_ *livestore.MaterializeContext, e todoCreated) ([]livestore.Statement, error) {
				return []livestore.Statement{a.todos.Insert(livestore.Values{"id": e.ID, "text": e.Text})}, nil
			}),
			livestore.Materialize(a.completed, func(_ *livestore.MaterializeContext, e todoID) ([]livestore.Statement, error) {
				return []livestore.Statement{a.todos.Update(livestore.Values{"completed": true}).Where(livestore.Eq("id", e.ID))}, nil
			}),
			livestore.Materialize(a.deleted, func(_ *livestore.MaterializeContext, e todoDeleted) ([]livestore.Statement, error) {
				return []livestore.Statement{a.todos.Update(livestore.Values{"deletedAt": e.DeletedAt}).Where(livestore.Eq("id", e.ID))}, nil
			}),
			livestore.Materialize(a.cleared, func(_ *livestore.MaterializeContext, _ struct{}) ([]livestore.Statement, error) {
				return []livestore.Statement{a.todos.Delete().Where(livestore.Eq("completed", true))}, nil
			}),
			livestore.Materialize(a.renamed, func(mc *livestore.MaterializeContext, e todoCreated) ([]livestore.Statement, error) {
				// Reads current state: appends to the existing text.
				cur, _, err := livestore.First(context.Background(), mc, a.todos.Select("text").Where(livestore.Eq("id", e.ID)), "")
				if err != nil {
					return nil, err
				}
				return []livestore.Statement{livestore.SQL(`UPDATE todos SET text = ? WHERE id = ?`, cur+e.Text, e.ID)}, nil
			}),
			livestore.Materialize(a.failing, func(_ *livestore.MaterializeContext, e todoID) ([]livestore.Statement, error) {
				if e.ID == "boom" {
					return nil, errBoom
				}
				if e.ID == "badsql" {
					return []livestore.Statement{livestore.SQL("INSERT INTO nope VALUES (1)")}, nil
				}
				if e.ID == "panic" {
					panic("materializer bug")
				}
				return []livestore.Statement{a.todos.Insert(livestore.Values{"id": e.ID})}, nil
			}),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type boomError struct{}

func (boomError) Error() string { return "boom" }

var errBoom error = boomError{}

func openStore(t testing.TB, schema *livestore.Schema, dir string) *livestore.Store {
	t.Helper()
	s, err := livestore.Open(context.Background(), schema, livestore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustCommit(t testing.TB, s *livestore.Store, evs ...livestore.Event) {
	t.Helper()
	if err := s.Commit(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
}

func dump(t testing.TB, s *livestore.Store) string {
	t.Helper()
	d, err := s.DumpState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}
