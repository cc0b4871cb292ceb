package testschema_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/internal/testschema"
)

type todoRow struct {
	ID        string     `db:"id"`
	Text      string     `db:"text"`
	Completed bool       `db:"completed"`
	DeletedAt *time.Time `db:"deletedAt"`
}

type annotationRow struct {
	ID   string `db:"id"`
	Note string `db:"note"`
}

func TestEventsMaterialize(t *testing.T) {
	app := testschema.New(t)
	ctx := context.Background()
	s, err := livestore.Open(ctx, app.Schema, livestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deleted := time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.FixedZone("IST", 5*3600+1800))
	err = s.Commit(ctx,
		app.Created.New(testschema.TodoCreated{ID: "a", Text: "milk"}),
		app.Created.New(testschema.TodoCreated{ID: "b", Text: "eggs"}),
		app.Completed.New(testschema.TodoID{ID: "a"}),
		app.Deleted.New(testschema.TodoDeleted{ID: "b", DeletedAt: deleted}),
		app.Annotated.New(testschema.TodoAnnotated{ID: "a", Note: json.RawMessage(`{"n":1}`)}),
		app.Annotated.New(testschema.TodoAnnotated{ID: "a", Note: json.RawMessage(`[2]`)}),
	)
	if err != nil {
		t.Fatal(err)
	}
	todos, err := livestore.Query[todoRow](ctx, s, app.Todos.Select().OrderBy("id"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 3, 3, 23, 36, 7, 891e6, time.UTC) // stored to the millisecond
	want := []todoRow{{ID: "a", Text: "milk", Completed: true}, {ID: "b", Text: "eggs", DeletedAt: &at}}
	if !reflect.DeepEqual(todos, want) {
		t.Fatalf("todos = %+v, want %+v", todos, want)
	}
	notes, err := livestore.Query[annotationRow](ctx, s, app.Annotations.Select())
	if err != nil {
		t.Fatal(err)
	}
	if want := []annotationRow{{ID: "a", Note: "[2]"}}; !reflect.DeepEqual(notes, want) {
		t.Fatalf("annotations = %+v, want %+v", notes, want)
	}
}
