package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/clientdb"
	"github.com/livestore-go/livestore/internal/sqlite"
)

// The floor: what the workloads cost in SQLite alone, through the driver
// livestore-go uses (zombiezen.com/go/sqlite, via internal/sqlite, so with
// the same WAL mode, synchronous=FULL and statement cache). Per commit one
// transaction holding, per event, one INSERT into an events table shaped like
// the LiveStore eventlog and the state write of its materializer. Reads are
// plain queries scanned into structs; "reactivity" is re-running the one
// query whose result the workload waits for after each commit.

// floorDDL is the state tables; the eventlog is the client's own
// (internal/clientdb), written with the same statement a commit runs.
const floorDDL = `
CREATE TABLE IF NOT EXISTS todos (id TEXT NOT NULL, text TEXT NOT NULL DEFAULT '', completed INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (id));
CREATE TABLE IF NOT EXISTS items (id TEXT NOT NULL, value INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (id));
`

type floorDB struct {
	c    *sqlite.Conn
	db   clientdb.DB
	head int64
}

func openFloor(dir string) (*floorDB, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c, err := sqlite.Open(filepath.Join(dir, "floor.db"), sqlite.OpenOptions{})
	if err != nil {
		return nil, err
	}
	db := clientdb.On(c)
	if err := db.Create(); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.Exec(floorDDL); err != nil {
		c.Close()
		return nil, err
	}
	head, err := db.Head()
	if err != nil {
		c.Close()
		return nil, err
	}
	return &floorDB{c: c, db: db, head: head.Global}, nil
}

// floorEvent is one event and its materializer's write.
type floorEvent struct {
	name  string
	args  any
	write string
	wargs []any
}

func todoCreatedEvent(id, text string) floorEvent {
	return floorEvent{"v1.TodoCreated", todoArgs{id, text}, "INSERT INTO todos (id, text, completed) VALUES (?, ?, 0)", []any{id, text}}
}

// commit writes events in one durable transaction.
func (f *floorDB) commit(evs ...floorEvent) (err error) {
	if err := f.c.Begin(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.c.Rollback()
		}
	}()
	head := f.head
	for _, e := range evs {
		if err := f.write(e, head); err != nil {
			return err
		}
		head++
	}
	if err := f.c.Commit(); err != nil {
		return err
	}
	f.head = head
	return nil
}

// write appends e after head to the eventlog and runs its state write,
// inside the caller's transaction.
func (f *floorDB) write(e floorEvent, head int64) error {
	args, err := json.Marshal(e.args)
	if err != nil {
		return err
	}
	ev := eventlog.Event{SeqNum: eventlog.SeqNum{Global: head + 1}, ParentSeqNum: eventlog.SeqNum{Global: head},
		Name: e.name, Args: args, ClientID: "floor1", SessionID: "s1", SchemaHash: 1}
	if err := f.db.Append(&ev); err != nil {
		return err
	}
	return f.c.Exec(e.write, e.wargs...)
}

func (f *floorDB) seedTodos(n, batch int) error {
	evs := make([]floorEvent, 0, batch)
	for i := 0; i < n; i++ {
		evs = append(evs, todoCreatedEvent(todoID(i), todoText))
		if len(evs) == batch || i == n-1 {
			if err := f.commit(evs...); err != nil {
				return err
			}
			evs = evs[:0]
		}
	}
	return nil
}

func (f *floorDB) count() (int, error) {
	n, _, err := f.c.QueryInt64("SELECT count(*) FROM todos")
	return int(n), err
}

func (f *floorDB) allTodos() ([]todoRow, error) {
	var rows []todoRow
	err := f.c.Query("SELECT id, text, completed FROM todos ORDER BY id", nil, func(r *sqlite.Row) error {
		rows = append(rows, todoRow{ID: r.Text(0), Text: r.Text(1), Completed: r.Int64(2) != 0})
		return nil
	})
	return rows, err
}

func (f *floorDB) item(id string) (itemRow, error) {
	var it itemRow
	err := f.c.Query("SELECT id, value FROM items WHERE id = ?", []any{id}, func(r *sqlite.Row) error {
		it = itemRow{ID: r.Text(0), Value: r.Int64(1)}
		return nil
	})
	return it, err
}

// runFloor runs one workload on the floor implementation.
func runFloor(_ context.Context, a childArgs) (result, error) {
	if a.workload == wBoot && a.phase != "prepare" {
		return floorBoot(a)
	}
	f, err := openFloor(a.dir)
	if err != nil {
		return result{}, err
	}
	defer f.c.Close()
	switch a.workload {
	case wCommitSingle:
		return f.commitSingle(a)
	case wCommitBatch, wBoot:
		return f.commitBatch(a)
	case wLiveQuery:
		return f.liveQuery(a)
	case wFanout:
		return f.fanout(a)
	case wConcurrent:
		return f.concurrent(a)
	}
	return result{}, fmt.Errorf("unknown workload %q", a.workload)
}

// floorBoot times opening the prepared database and counting its rows.
func floorBoot(a childArgs) (result, error) {
	t0 := a.begin()
	f, err := openFloor(a.dir)
	if err != nil {
		return result{}, err
	}
	defer f.c.Close()
	n, err := f.count()
	d := a.end(t0)
	return result{MS: ms(d), Check: checkCount(n, a.n)}, err
}

// commitSingle commits the todos one transaction each.
func (f *floorDB) commitSingle(a childArgs) (result, error) {
	t0 := a.begin()
	for i := 0; i < a.n; i++ {
		if err := f.commit(todoCreatedEvent(todoID(i), todoText)); err != nil {
			return result{}, err
		}
	}
	d := a.end(t0)
	n, err := f.count()
	return result{MS: ms(d), Check: checkCount(n, a.n)}, err
}

// commitBatch commits the todos in batches (also the boot workload's
// preparation).
func (f *floorDB) commitBatch(a childArgs) (result, error) {
	t0 := a.begin()
	if err := f.seedTodos(a.n, a.batch); err != nil {
		return result{}, err
	}
	d := a.end(t0)
	n, err := f.count()
	return result{MS: ms(d), Check: checkCount(n, a.n)}, err
}

// liveQuery renames a todo per commit and re-reads all todos after each.
func (f *floorDB) liveQuery(a childArgs) (result, error) {
	if err := f.seedTodos(a.rows, 1000); err != nil {
		return result{}, err
	}
	lat := make([]time.Duration, 0, a.commits)
	t0 := a.begin()
	for i := 0; i < a.commits; i++ {
		idx := renameIndex(i, a.rows)
		text := fmt.Sprintf("rev %d", i)
		s0 := time.Now()
		id := todoID(idx)
		err := f.commit(floorEvent{"v1.TodoRenamed", todoArgs{id, text}, "UPDATE todos SET text = ? WHERE id = ?", []any{text, id}})
		if err != nil {
			return result{}, err
		}
		rows, err := f.allTodos()
		if err != nil {
			return result{}, err
		}
		if len(rows) != a.rows || rows[idx].Text != text {
			return result{}, fmt.Errorf("commit %d: row %d not renamed", i, idx)
		}
		lat = append(lat, time.Since(s0))
	}
	a.end(t0)
	return result{MS: ms(total(lat)), P50US: float64(median(lat)) / float64(time.Microsecond)}, nil
}

// fanout sets one item per commit and re-reads that item after each.
func (f *floorDB) fanout(a childArgs) (result, error) {
	evs := make([]floorEvent, a.queries)
	for k := range evs {
		id := itemID(k)
		evs[k] = floorEvent{"v1.ItemCreated", itemArgs{id, 0}, "INSERT INTO items (id, value) VALUES (?, ?)", []any{id, 0}}
	}
	if err := f.commit(evs...); err != nil {
		return result{}, err
	}
	lat := make([]time.Duration, 0, a.commits)
	t0 := a.begin()
	for i := 0; i < a.commits; i++ {
		id := itemID(renameIndex(i, a.queries))
		v := int64(i + 1)
		s0 := time.Now()
		err := f.commit(floorEvent{"v1.ItemSet", itemArgs{id, v}, "UPDATE items SET value = ? WHERE id = ?", []any{v, id}})
		if err != nil {
			return result{}, err
		}
		it, err := f.item(id)
		if err != nil {
			return result{}, err
		}
		if it.Value != v {
			return result{}, fmt.Errorf("commit %d: item %s = %d, want %d", i, id, it.Value, v)
		}
		lat = append(lat, time.Since(s0))
	}
	a.end(t0)
	return result{MS: ms(total(lat)), P50US: float64(median(lat)) / float64(time.Microsecond)}, nil
}
