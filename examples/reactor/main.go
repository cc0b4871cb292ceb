// Command reactor is a server-side client of a synced store: it joins the
// store through the sync server like any app, watches a live query for todos
// nobody has tagged yet, and commits a tag for each. Apps (Go or JavaScript)
// see the tags arrive as ordinary synced events.
//
//	go run ./cmd/livestore serve &
//	go run ./examples/reactor -url ws://127.0.0.1:8787 -store todos
//
// Several reactors may run at once: a todo tagged twice keeps one tag row,
// because the materializer replaces it, and every client converges on the
// same order of events. The example stands alone: it uses only the
// module's public packages and shares no code with the other examples.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/syncclient"
)

type todoCreated struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

type todoTagged struct {
	ID  string `json:"id"`
	Tag string `json:"tag"`
}

type todo struct {
	ID   string `db:"id"`
	Text string `db:"text"`
}

// app is the schema the reactor shares with the apps of the store.
type app struct {
	schema  *livestore.Schema
	todos   *livestore.Table
	tags    *livestore.Table
	created *livestore.EventDef[todoCreated]
	tagged  *livestore.EventDef[todoTagged]
}

func newApp() (app, error) {
	a := app{
		todos: livestore.NewTable("todos",
			livestore.Text("id").PrimaryKey(),
			livestore.Text("text").Default("")),
		tags: livestore.NewTable("tags",
			livestore.Text("todoId").PrimaryKey(),
			livestore.Text("tag")),
		created: livestore.Synced[todoCreated]("v1.TodoCreated"),
		tagged:  livestore.Synced[todoTagged]("v1.TodoTagged"),
	}
	var err error
	a.schema, err = livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{a.todos, a.tags},
		Events: []livestore.Definition{a.created, a.tagged},
		Materializers: []livestore.Materializer{
			livestore.Materialize(a.created, func(_ *livestore.MaterializeContext, e todoCreated) ([]livestore.Statement, error) {
				return []livestore.Statement{a.todos.Insert(livestore.Values{"id": e.ID, "text": e.Text}).OnConflict("id").Ignore()}, nil
			}),
			livestore.Materialize(a.tagged, func(_ *livestore.MaterializeContext, e todoTagged) ([]livestore.Statement, error) {
				return []livestore.Statement{a.tags.Insert(livestore.Values{"todoId": e.ID, "tag": e.Tag}).OnConflict("todoId").Replace()}, nil
			}),
		},
	})
	return a, err
}

// tagFor is the reactor's rule.
func tagFor(text string) string {
	t := strings.ToLower(text)
	switch {
	case strings.Contains(t, "urgent") || strings.HasSuffix(t, "!"):
		return "urgent"
	case strings.HasPrefix(t, "buy ") || strings.Contains(t, "groceries"):
		return "shopping"
	default:
		return "general"
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "reactor:", err)
		os.Exit(1)
	}
}

// run tags todos until ctx ends.
func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("reactor", flag.ContinueOnError)
	url := fs.String("url", "ws://127.0.0.1:8787", "the sync server")
	storeID := fs.String("store", "todos", "the store to join")
	dir := fs.String("dir", "reactor-data", "the reactor's own store directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := newApp()
	if err != nil {
		return err
	}
	store, err := livestore.Open(ctx, a.schema, livestore.Options{
		Dir:     *dir,
		StoreID: *storeID,
		Sync:    &livestore.SyncOptions{Backend: livestore.WebSocketBackend(*url, syncclient.Options{})},
	})
	if err != nil {
		return err
	}
	defer store.Close()

	untagged := livestore.QueryDB[todo](livestore.SQL(
		`SELECT id, text FROM todos WHERE id NOT IN (SELECT todoId FROM tags) ORDER BY id`))
	// Watch yields the current result, then every changed one. A result
	// computed before our last commit may still arrive: done skips what this
	// process already tagged.
	done := map[string]bool{}
	for rows, err := range livestore.Watch(ctx, store, untagged) {
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		var evs []livestore.Event
		for _, t := range rows {
			if !done[t.ID] {
				evs = append(evs, a.tagged.New(todoTagged{ID: t.ID, Tag: tagFor(t.Text)}))
				done[t.ID] = true
			}
		}
		if len(evs) == 0 {
			continue
		}
		if err := store.Commit(ctx, evs...); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		fmt.Fprintf(out, "tagged %d todos\n", len(evs))
	}
	return nil
}
