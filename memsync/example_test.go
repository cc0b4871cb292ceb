package memsync_test

import (
	"context"
	"fmt"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/memsync"
)

type noteAdded struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// Two stores sync through an in-process server: what one commits, the other
// sees.
func Example() {
	ctx := context.Background()
	notes := livestore.NewTable("notes", livestore.Text("id").PrimaryKey(), livestore.Text("text"))
	added := livestore.Synced[noteAdded]("v1.NoteAdded")
	schema, _ := livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{notes},
		Events: []livestore.Definition{added},
		Materializers: []livestore.Materializer{
			livestore.Materialize(added, func(_ *livestore.MaterializeContext, e noteAdded) ([]livestore.Statement, error) {
				return []livestore.Statement{notes.Insert(livestore.Values{"id": e.ID, "text": e.Text})}, nil
			}),
		},
	})
	srv := memsync.NewServer()
	open := func() *livestore.Store {
		s, err := livestore.Open(ctx, schema, livestore.Options{StoreID: "notes",
			Sync: &livestore.SyncOptions{Backend: srv.NewLink(), MinBackoff: time.Millisecond}})
		if err != nil {
			panic(err)
		}
		return s
	}
	alice, bob := open(), open()
	defer alice.Close()
	defer bob.Close()

	alice.Commit(ctx, added.New(noteAdded{ID: "1", Text: "hello from alice"}))

	count := livestore.QueryDBFirst(notes.Count(), struct{ Count int }{})
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for v, err := range livestore.Watch(wctx, bob, count) {
		if err == nil && v.Count == 1 {
			break
		}
	}
	rows, _ := livestore.Query[noteAdded](ctx, bob, notes.Select())
	fmt.Println(rows[0].Text)
	// Output: hello from alice
}
