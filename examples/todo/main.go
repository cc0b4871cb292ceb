// Command todo is a small todo list kept in a livestore store: every change
// is an event, the list is state materialized from them.
//
//	go run ./examples/todo add "Buy milk"
//	go run ./examples/todo done <id>
//	go run ./examples/todo list
//	go run ./examples/todo log
//
// With --sync the list is shared through a sync server. Start one with
// `make serve`, then in one terminal watch the list change live:
//
//	go run ./examples/todo --dir alice --sync ws://127.0.0.1:8787 watch
//
// and in another (each process needs its own directory) change it:
//
//	go run ./examples/todo --dir bob --sync ws://127.0.0.1:8787 add "Buy milk"
//
// A change made without a connection is pushed on the next run with --sync.
// The example stands alone: it uses only the module's public packages and
// shares no code with the other examples.
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
	"os/signal"
	"syscall"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/progress"
	"github.com/livestore-go/livestore/syncclient"
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "todo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("todo", flag.ContinueOnError)
	dir := fs.String("dir", "todo-data", "store directory (one process at a time)")
	syncURL := fs.String("sync", "", "sync server to share the list through, e.g. ws://127.0.0.1:8787")
	storeID := fs.String("store", "todos", "the store (the list) to use on the sync server")
	wait := fs.Duration("wait", 5*time.Second, "with --sync, how long a change waits to reach the server and a list to catch up")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sch, err := schema()
	if err != nil {
		return err
	}
	// A changed schema rebuilds state from the eventlog: show it.
	opts := livestore.Options{Dir: *dir, StoreID: *storeID, OnRematerialize: progress.Rematerialize(os.Stderr)}
	if *syncURL != "" {
		opts.Sync = &livestore.SyncOptions{Backend: syncclient.WebSocketBackend(*syncURL, syncclient.Options{})}
	}
	store, err := livestore.Open(ctx, sch, opts)
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
		return awaitSync(ctx, store, *wait, out)
	case "done", "delete":
		if len(cmd) != 2 {
			return fmt.Errorf("usage: todo %s <id>", cmd[0])
		}
		if err := awaitSync(ctx, store, *wait, out); err != nil {
			return err
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
		return awaitSync(ctx, store, *wait, out)
	case "list":
		if err := awaitSync(ctx, store, *wait, out); err != nil {
			return err
		}
		rows, err := livestore.Query[todo](ctx, store, visible)
		if err != nil {
			return err
		}
		printList(out, rows)
	case "watch":
		return watch(ctx, store, out)
	case "log":
		for ev, err := range store.Events(ctx, eventlog.Root) {
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%-6s %-18s %s\n", ev.SeqNum, ev.Name, ev.Args)
		}
	default:
		return fmt.Errorf("unknown command %q (add, done, delete, list, watch, log)", cmd[0])
	}
	return nil
}

// visible is the list as shown: todos not deleted, by text.
var visible = todos.Where(livestore.IsNull("deletedAt")).OrderBy("text")

func printList(out io.Writer, rows []todo) {
	for _, t := range rows {
		mark := " "
		if t.Completed {
			mark = "x"
		}
		fmt.Fprintf(out, "[%s] %s  %s\n", mark, t.ID, t.Text)
	}
}

// awaitSync waits, up to wait, until a synced store has pushed its changes
// and caught up with the server. Without a connection the changes stay in
// the store and are pushed by a later run with --sync.
func awaitSync(ctx context.Context, store *livestore.Store, wait time.Duration, out io.Writer) error {
	if store.SyncStatusSignal() == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := store.SyncStatus(ctx)
		if err != nil && ctx.Err() == nil {
			return err
		}
		switch {
		case err == nil && st.IsSynced:
			return nil
		case err == nil && st.Stopped:
			return fmt.Errorf("sync stopped: %s", st.Err)
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(out, "not synced yet (%d changes pending%s); they reach the server on a later run with --sync\n",
				st.PendingCount, errSuffix(st.Err))
			return nil
		case <-tick.C:
		}
	}
}

func errSuffix(err string) string {
	if err == "" {
		return ""
	}
	return ": " + err
}

// watch prints the list whenever it changes, and the connection state
// whenever that changes, until ctx ends.
func watch(ctx context.Context, store *livestore.Store, out io.Writer) error {
	lists := make(chan []todo, 1)
	unsub, err := livestore.Subscribe(ctx, store, livestore.QueryDB[todo](visible), func(rows []todo) {
		// Only the newest list matters; calls never overlap, so the send
		// after the drain cannot block.
		select {
		case <-lists:
		default:
		}
		lists <- rows
	})
	if err != nil {
		return err
	}
	defer unsub()
	states := make(chan livestore.SyncStatus, 1)
	if sig := store.SyncStatusSignal(); sig != nil {
		unsubStatus, err := livestore.Subscribe(ctx, store, sig, func(st livestore.SyncStatus) {
			select {
			case <-states:
			default:
			}
			states <- st
		})
		if err != nil {
			return err
		}
		defer unsubStatus()
	}
	last := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case rows := <-lists:
			fmt.Fprintf(out, "-- %d todos (%s)\n", len(rows), time.Now().Format("15:04:05.000"))
			printList(out, rows)
		case st := <-states:
			state := "offline"
			switch {
			case st.Stopped:
				state = "sync stopped: " + st.Err
			case st.Connected:
				state = "connected"
			}
			if state != last {
				fmt.Fprintf(out, "-- %s\n", state)
				last = state
			}
		}
	}
}

func newID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}
