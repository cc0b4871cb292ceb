// Command confirmed is a server-side client that reacts to every event the
// sync server has confirmed exactly once, across restarts and crashes.
//
//	go run ./cmd/livestore serve &
//	go run ./examples/confirmed -url ws://127.0.0.1:8787 -store todos -out handled.jsonl
//
// It joins the store through the sync server with a store of its own (-dir)
// and follows Store.ConfirmedEvents, which never yields pending events (a
// rebase could still renumber or drop those) nor client-only ones. Its
// reaction is to append the event to a journal (-out) and fsync it. The
// journal is also the cursor: on start the last complete line gives the
// global seqNum handled last, and a line half-written by a crash is cut off.
// Because handling an event and advancing the cursor are one write, a kill at
// any moment neither repeats nor skips an event. A reaction with effects
// elsewhere (a mail, an HTTP call) gets the same guarantee by recording the
// seqNum in the same transaction as its effect, or by being idempotent with
// the seqNum as key. The example stands alone: it uses only the module's
// public packages and shares no code with the other examples.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

type todoID struct {
	ID string `json:"id"`
}

// app is the schema the consumer shares with the apps of the store.
type app struct {
	schema    *livestore.Schema
	todos     *livestore.Table
	created   *livestore.EventDef[todoCreated]
	completed *livestore.EventDef[todoID]
	// renamed is client-only: it never reaches the server, so never the
	// consumer.
	renamed *livestore.EventDef[todoCreated]
}

func newApp() (app, error) {
	a := app{
		todos: livestore.NewTable("todos",
			livestore.Text("id").PrimaryKey(),
			livestore.Text("text").Default(""),
			livestore.Boolean("completed").Default(false)),
		created:   livestore.Synced[todoCreated]("v1.TodoCreated"),
		completed: livestore.Synced[todoID]("v1.TodoCompleted"),
		renamed:   livestore.ClientOnly[todoCreated]("v1.TodoRenamedLocally"),
	}
	var err error
	a.schema, err = livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{a.todos},
		Events: []livestore.Definition{a.created, a.completed, a.renamed},
		Materializers: []livestore.Materializer{
			livestore.Materialize(a.created, func(_ *livestore.MaterializeContext, e todoCreated) ([]livestore.Statement, error) {
				return []livestore.Statement{a.todos.Insert(livestore.Values{"id": e.ID, "text": e.Text}).OnConflict("id").Ignore()}, nil
			}),
			livestore.Materialize(a.completed, func(_ *livestore.MaterializeContext, e todoID) ([]livestore.Statement, error) {
				return []livestore.Statement{a.todos.Update(livestore.Values{"completed": true}).Where(livestore.Eq("id", e.ID))}, nil
			}),
			livestore.Materialize(a.renamed, func(_ *livestore.MaterializeContext, e todoCreated) ([]livestore.Statement, error) {
				return []livestore.Statement{a.todos.Update(livestore.Values{"text": e.Text}).Where(livestore.Eq("id", e.ID))}, nil
			}),
		},
	})
	return a, err
}

// handled is one journal line: an event the consumer reacted to.
type handled struct {
	SeqNum   int64           `json:"seqNum"`
	Name     string          `json:"name"`
	Args     json.RawMessage `json:"args"`
	ClientID string          `json:"clientId"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "confirmed:", err)
		os.Exit(1)
	}
}

// run handles confirmed events until ctx ends, printing "handled <seqNum>"
// to out after each.
func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("confirmed", flag.ContinueOnError)
	url := fs.String("url", "ws://127.0.0.1:8787", "the sync server")
	storeID := fs.String("store", "todos", "the store to join")
	dir := fs.String("dir", "confirmed-data", "the consumer's own store directory")
	journal := fs.String("out", "handled.jsonl", "the journal of handled events, which is also the cursor")
	names := fs.String("names", "", "comma-separated event names to handle (default: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cursor, err := recoverJournal(*journal)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*journal, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	defer f.Close()
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
		return fmt.Errorf("open store: %w", err)
	}
	defer store.Close()

	opts := livestore.ConfirmedEventsOptions{After: cursor}
	if *names != "" {
		opts.Names = strings.Split(*names, ",")
	}
	for ev, err := range store.ConfirmedEvents(ctx, opts) {
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("follow confirmed events after %d: %w", cursor, err)
		}
		line, err := json.Marshal(handled{SeqNum: ev.SeqNum.Global, Name: ev.Name, Args: ev.Args, ClientID: ev.ClientID})
		if err != nil {
			return fmt.Errorf("encode event %d: %w", ev.SeqNum.Global, err)
		}
		// One write holds the reaction and the new cursor; after Sync both
		// survive a crash, before it neither does.
		if _, err := f.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("journal event %d: %w", ev.SeqNum.Global, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync journal after event %d: %w", ev.SeqNum.Global, err)
		}
		cursor = ev.SeqNum.Global
		fmt.Fprintf(out, "handled %d\n", cursor)
	}
	return nil
}

// recoverJournal cuts off a line a crash left incomplete and returns the
// seqNum of the last handled event (0 for a new journal).
func recoverJournal(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read journal: %w", err)
	}
	end := bytes.LastIndexByte(data, '\n') + 1
	if end < len(data) {
		if err := os.Truncate(path, int64(end)); err != nil {
			return 0, fmt.Errorf("cut incomplete journal line: %w", err)
		}
	}
	data = data[:end]
	if len(data) == 0 {
		return 0, nil
	}
	last := data[bytes.LastIndexByte(data[:len(data)-1], '\n')+1:]
	var h handled
	if err := json.Unmarshal(last, &h); err != nil {
		return 0, fmt.Errorf("read journal's last line %q: %w", last, err)
	}
	return h.SeqNum, nil
}
