// Command todo is a small todo list kept in a livestore store: every change
// is an event, the list is state materialized from them.
//
//	go run ./examples/todo add "Buy milk"
//	go run ./examples/todo done <id>
//	go run ./examples/todo list
//	go run ./examples/todo log
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
)

type todoCreated struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

type todoCompleted struct {
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

var (
	todos = livestore.NewTable("todos",
		livestore.Text("id").PrimaryKey(),
		livestore.Text("text").Default(""),
		livestore.Boolean("completed").Default(false),
		livestore.DateTime("deletedAt").Nullable())
	created   = livestore.Synced[todoCreated]("v1.TodoCreated")
	completed = livestore.Synced[todoCompleted]("v1.TodoCompleted")
	deleted   = livestore.Synced[todoDeleted]("v1.TodoDeleted")
)

func schema() (*livestore.Schema, error) {
	return livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{todos},
		Events: []livestore.Definition{created, completed, deleted},
		Materializers: []livestore.Materializer{
			livestore.Materialize(created, func(_ *livestore.MaterializeContext, e todoCreated) ([]livestore.Statement, error) {
				return []livestore.Statement{todos.Insert(livestore.Values{"id": e.ID, "text": e.Text})}, nil
			}),
			livestore.Materialize(completed, func(_ *livestore.MaterializeContext, e todoCompleted) ([]livestore.Statement, error) {
				return []livestore.Statement{todos.Update(livestore.Values{"completed": true}).Where(livestore.Eq("id", e.ID))}, nil
			}),
			livestore.Materialize(deleted, func(_ *livestore.MaterializeContext, e todoDeleted) ([]livestore.Statement, error) {
				return []livestore.Statement{todos.Update(livestore.Values{"deletedAt": e.DeletedAt}).Where(livestore.Eq("id", e.ID))}, nil
			}),
		},
	})
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "todo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("todo", flag.ContinueOnError)
	dir := fs.String("dir", "todo-data", "store directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sch, err := schema()
	if err != nil {
		return err
	}
	store, err := livestore.Open(ctx, sch, livestore.Options{Dir: *dir, StoreID: "todos"})
	if err != nil {
		return err
	}
	defer store.Close()

	cmd := fs.Args()
	if len(cmd) == 0 {
		cmd = []string{"list"}
	}
	switch cmd[0] {
	case "add":
		if len(cmd) != 2 {
			return errors.New("usage: todo add <text>")
		}
		id := newID()
		if err := store.Commit(ctx, created.New(todoCreated{ID: id, Text: cmd[1]})); err != nil {
			return err
		}
		fmt.Fprintln(out, "added", id)
	case "done", "delete":
		if len(cmd) != 2 {
			return fmt.Errorf("usage: todo %s <id>", cmd[0])
		}
		if _, found, err := livestore.First(ctx, store, todos.Where(livestore.Eq("id", cmd[1])), todo{}); err != nil || !found {
			return fmt.Errorf("no todo %q", cmd[1])
		}
		ev := completed.New(todoCompleted{ID: cmd[1]})
		if cmd[0] == "delete" {
			ev = deleted.New(todoDeleted{ID: cmd[1], DeletedAt: time.Now()})
		}
		if err := store.Commit(ctx, ev); err != nil {
			return err
		}
	case "list":
		rows, err := livestore.Query[todo](ctx, store, todos.Where(livestore.IsNull("deletedAt")).OrderBy("text"))
		if err != nil {
			return err
		}
		for _, t := range rows {
			mark := " "
			if t.Completed {
				mark = "x"
			}
			fmt.Fprintf(out, "[%s] %s  %s\n", mark, t.ID, t.Text)
		}
	case "log":
		for ev, err := range store.Events(ctx, eventlog.Root) {
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%-6s %-18s %s\n", ev.SeqNum, ev.Name, ev.Args)
		}
	default:
		return fmt.Errorf("unknown command %q (add, done, delete, list, log)", cmd[0])
	}
	return nil
}

func newID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}
