package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/internal/testschema"
)

// todoApp is the Go twin of interop/js/schema.mjs (internal/testschema)
// with what the scenarios read and commit.
type todoApp struct{ *testschema.App }

func newTodoApp(t testing.TB) *todoApp {
	t.Helper()
	return &todoApp{testschema.New(t)}
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
	todos, err := livestore.Query[todoRow](ctx, s, a.Todos.Select().OrderBy("id"))
	if err != nil {
		return goState{}, err
	}
	notes, err := livestore.Query[annotationRow](ctx, s, a.Annotations.Select().OrderBy("id"))
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
		evs = append(evs, a.Created.New(testschema.TodoCreated{ID: id, Text: fmt.Sprintf("go todo %d «%s» ✓ 日本語 🎉 \"q\" \\ \n\u2028 <&>", i, w.prefix)}))
		if w.annotate {
			evs = append(evs, a.Annotated.New(testschema.TodoAnnotated{ID: id, Note: goNote(i, w.noteBytes)}))
		}
	}
	for i := range min(w.complete, w.n) {
		evs = append(evs, a.Completed.New(testschema.TodoID{ID: fmt.Sprintf("%s-%03d", w.prefix, i)}))
	}
	for i := range min(w.delete, w.n) {
		evs = append(evs, a.Deleted.New(testschema.TodoDeleted{ID: fmt.Sprintf("%s-%03d", w.prefix, i), DeletedAt: goDeletedAt}))
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
