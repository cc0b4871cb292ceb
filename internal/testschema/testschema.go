// Package testschema is the todo schema that the tests of several packages
// share: the Go twin of interop/js/schema.mjs, with the same event names and
// argument shapes (the wire contract), tables and materializers, so that a
// Go store and a JS client build the same state from the same eventlog.
//
// It is for tests only. Tests of package livestore itself cannot import it
// (it imports livestore); they keep their own todo schema.
package testschema

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
)

// TodoCreated is the argument of v1.TodoCreated.
type TodoCreated struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// TodoID is the argument of v1.TodoCompleted.
type TodoID struct {
	ID string `json:"id"`
}

// TodoDeleted is the argument of v1.TodoDeleted. DeletedAt marshals with
// Go's RFC 3339 nanoseconds; the JS schema (Schema.Date) reads any ISO-8601
// string, and both sides store the column as ISO-8601 in UTC with
// milliseconds.
type TodoDeleted struct {
	ID        string    `json:"id"`
	DeletedAt time.Time `json:"deletedAt"`
}

// TodoAnnotated is the argument of v1.TodoAnnotated: free-form JSON.
type TodoAnnotated struct {
	ID   string          `json:"id"`
	Note json.RawMessage `json:"note"`
}

// App is the schema and its parts.
type App struct {
	// Todos has the columns id (primary key), text, completed and deletedAt.
	Todos *livestore.Table
	// Annotations has the columns id (primary key) and note (JSON).
	Annotations *livestore.Table

	// Created inserts a todo.
	Created *livestore.EventDef[TodoCreated]
	// Completed marks a todo completed.
	Completed *livestore.EventDef[TodoID]
	// Deleted sets a todo's deletedAt.
	Deleted *livestore.EventDef[TodoDeleted]
	// Annotated sets (replaces) a todo's annotation.
	Annotated *livestore.EventDef[TodoAnnotated]

	// Schema holds the tables and events above.
	Schema *livestore.Schema
}

// New builds the schema, failing tb if livestore rejects it.
func New(tb testing.TB) *App {
	tb.Helper()
	a := &App{
		Todos: livestore.NewTable("todos",
			livestore.Text("id").PrimaryKey(),
			livestore.Text("text").Default(""),
			livestore.Boolean("completed").Default(false),
			livestore.DateTime("deletedAt").Nullable()),
		Annotations: livestore.NewTable("annotations",
			livestore.Text("id").PrimaryKey(),
			livestore.JSON("note")),
		Created:   livestore.Synced[TodoCreated]("v1.TodoCreated"),
		Completed: livestore.Synced[TodoID]("v1.TodoCompleted"),
		Deleted:   livestore.Synced[TodoDeleted]("v1.TodoDeleted"),
		Annotated: livestore.Synced[TodoAnnotated]("v1.TodoAnnotated"),
	}
	var err error
	a.Schema, err = livestore.NewSchema(livestore.SchemaDef{
		Tables:        []*livestore.Table{a.Todos, a.Annotations},
		Events:        []livestore.Definition{a.Created, a.Completed, a.Deleted, a.Annotated},
		Materializers: a.materializers(),
	})
	if err != nil {
		tb.Fatalf("testschema: %v", err)
	}
	return a
}

func (a *App) materializers() []livestore.Materializer {
	return []livestore.Materializer{
		livestore.Materialize(a.Created, func(_ *livestore.MaterializeContext, e TodoCreated) ([]livestore.Statement, error) {
			return []livestore.Statement{a.Todos.Insert(livestore.Values{"id": e.ID, "text": e.Text, "completed": false})}, nil
		}),
		livestore.Materialize(a.Completed, func(_ *livestore.MaterializeContext, e TodoID) ([]livestore.Statement, error) {
			return []livestore.Statement{a.Todos.Update(livestore.Values{"completed": true}).Where(livestore.Eq("id", e.ID))}, nil
		}),
		livestore.Materialize(a.Deleted, func(_ *livestore.MaterializeContext, e TodoDeleted) ([]livestore.Statement, error) {
			return []livestore.Statement{a.Todos.Update(livestore.Values{"deletedAt": e.DeletedAt}).Where(livestore.Eq("id", e.ID))}, nil
		}),
		livestore.Materialize(a.Annotated, func(_ *livestore.MaterializeContext, e TodoAnnotated) ([]livestore.Statement, error) {
			return []livestore.Statement{a.Annotations.Insert(livestore.Values{"id": e.ID, "note": e.Note}).OnConflict("id").Replace()}, nil
		}),
	}
}
