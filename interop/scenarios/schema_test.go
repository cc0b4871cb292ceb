package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
)

// The Go twin of interop/js/schema.mjs: same event names and arg shapes (the
// wire contract), same tables and materializers (so that both sides build
// the same state from the same log).

type todoCreated struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

type todoID struct {
	ID string `json:"id"`
}

// todoDeleted's DeletedAt marshals with Go's RFC 3339 nanoseconds; the JS
// schema (Schema.Date) reads any ISO-8601 string, and both sides store the
// column as ISO-8601 in UTC with milliseconds.
type todoDeleted struct {
	ID        string    `json:"id"`
	DeletedAt time.Time `json:"deletedAt"`
}

type todoAnnotated struct {
	ID   string          `json:"id"`
	Note json.RawMessage `json:"note"`
}

type todoApp struct {
	todos       *livestore.Table
	annotations *livestore.Table
	created     *livestore.EventDef[todoCreated]
	completed   *livestore.EventDef[todoID]
	deleted     *livestore.EventDef[todoDeleted]
	annotated   *livestore.EventDef[todoAnnotated]
	schema      *livestore.Schema
}

func newTodoApp(t testing.TB) *todoApp {
	t.Helper()
	a := &todoApp{
		todos: livestore.NewTable("todos",
			livestore.Text("id").PrimaryKey(),
			livestore.Text("text").Default(""),
			livestore.Boolean("completed").Default(false),
			livestore.DateTime("deletedAt").Nullable()),
		annotations: livestore.NewTable("annotations",
			livestore.Text("id").PrimaryKey(),
			livestore.JSON("note")),
		created:   livestore.Synced[todoCreated]("v1.TodoCreated"),
		completed: livestore.Synced[todoID]("v1.TodoCompleted"),
		deleted:   livestore.Synced[todoDeleted]("v1.TodoDeleted"),
		annotated: livestore.Synced[todoAnnotated]("v1.TodoAnnotated"),
	}
	var err error
	a.schema, err = livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{a.todos, a.annotations},
		Events: []livestore.Definition{a.created, a.completed, a.deleted, a.annotated},
		Materializers: []livestore.Materializer{
			livestore.Materialize(a.created, func(_ *livestore.MaterializeContext, e todoCreated) ([]livestore.Statement, error) {
				return []livestore.Statement{a.todos.Insert(livestore.Values{"id": e.ID, "text": e.Text, "completed": false})}, nil
			}),
			livestore.Materialize(a.completed, func(_ *livestore.MaterializeContext, e todoID) ([]livestore.Statement, error) {
				return []livestore.Statement{a.todos.Update(livestore.Values{"completed": true}).Where(livestore.Eq("id", e.ID))}, nil
			}),
			livestore.Materialize(a.deleted, func(_ *livestore.MaterializeContext, e todoDeleted) ([]livestore.Statement, error) {
				return []livestore.Statement{a.todos.Update(livestore.Values{"deletedAt": e.DeletedAt}).Where(livestore.Eq("id", e.ID))}, nil
			}),
			livestore.Materialize(a.annotated, func(_ *livestore.MaterializeContext, e todoAnnotated) ([]livestore.Statement, error) {
				return []livestore.Statement{a.annotations.Insert(livestore.Values{"id": e.ID, "note": e.Note}).OnConflict("id").Replace()}, nil
			}),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// todoRow is a todos row as stored: deletedAt is the column's text, which
// must be exactly what the JS client prints (Date.toISOString()).
type todoRow struct {
	ID        string  `db:"id" json:"id"`
	Text      string  `db:"text" json:"text"`
	Completed bool    `db:"completed" json:"completed"`
	DeletedAt *string `db:"deletedAt" json:"deletedAt"`
}

type annotationRow struct {
	ID   string `db:"id"`
	Note string `db:"note"` // JSON text
}

// goState is a Go store's todos and annotations, sorted by id.
type goState struct {
	Todos       []todoRow
	Annotations []annotationRow
}

func (a *todoApp) state(ctx context.Context, s *livestore.Store) (goState, error) {
	todos, err := livestore.Query[todoRow](ctx, s, a.todos.Select().OrderBy("id"))
	if err != nil {
		return goState{}, err
	}
	notes, err := livestore.Query[annotationRow](ctx, s, a.annotations.Select().OrderBy("id"))
	if err != nil {
		return goState{}, err
	}
	return goState{Todos: todos, Annotations: notes}, nil
}

// goWork is what a Go store commits in these scenarios: n todos with ids
// <prefix>-000…, unicode texts, the first completed and deleted (at a time
// with nanoseconds and a non-UTC offset, which JS reads to the millisecond),
// and an annotation per todo with nested JSON, unicode and, if noteBytes > 0,
// a padding of that many bytes.
type goWork struct {
	prefix    string
	n         int
	complete  int
	delete    int
	annotate  bool
	noteBytes int
}

// goDeletedAt has nanoseconds and an offset on purpose; goDeletedAtISO is
// how both sides store it.
var (
	goDeletedAt    = time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.FixedZone("IST", 5*3600+1800))
	goDeletedAtISO = "2025-03-03T23:36:07.891Z"
)

func (a *todoApp) events(w goWork) []livestore.Event {
	var evs []livestore.Event
	for i := range w.n {
		id := fmt.Sprintf("%s-%03d", w.prefix, i)
		evs = append(evs, a.created.New(todoCreated{ID: id, Text: fmt.Sprintf("go todo %d «%s» ✓ 日本語 🎉 \"q\" \\ \n\u2028 <&>", i, w.prefix)}))
		if w.annotate {
			evs = append(evs, a.annotated.New(todoAnnotated{ID: id, Note: goNote(i, w.noteBytes)}))
		}
	}
	for i := range min(w.complete, w.n) {
		evs = append(evs, a.completed.New(todoID{ID: fmt.Sprintf("%s-%03d", w.prefix, i)}))
	}
	for i := range min(w.delete, w.n) {
		evs = append(evs, a.deleted.New(todoDeleted{ID: fmt.Sprintf("%s-%03d", w.prefix, i), DeletedAt: goDeletedAt}))
	}
	return evs
}

func goNote(i, padding int) json.RawMessage {
	note := map[string]any{
		"i":      i,
		"from":   "go",
		"text":   "unicode: ü ß 日本語 🎉 \"quotes\" \\ back\\slash \n newline \u2028 <&>",
		"nested": map[string]any{"list": []any{1, 2.5, -3, true, nil, map[string]any{"deep": []any{"x"}}}, "empty": map[string]any{}, "emptyList": []any{}},
		"big":    12345678901,
	}
	if padding > 0 {
		note["padding"] = strings.Repeat("ÿ", padding/2) // two bytes each
	}
	b, err := json.Marshal(note)
	if err != nil {
		panic(err)
	}
	return b
}
