package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livestore-go/livestore"
)

// The schema of js/schema.mjs, for livestore-go.

type todoArgs struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

type itemArgs struct {
	ID    string `json:"id"`
	Value int64  `json:"value"`
}

type todoRow struct {
	ID        string `db:"id"`
	Text      string `db:"text"`
	Completed bool   `db:"completed"`
}

type itemRow struct {
	ID    string `db:"id"`
	Value int64  `db:"value"`
}

type countRow struct {
	Count int `db:"count"`
}

type benchApp struct {
	schema      *livestore.Schema
	todos       *livestore.Table
	items       *livestore.Table
	todoCreated *livestore.EventDef[todoArgs]
	todoRenamed *livestore.EventDef[todoArgs]
	itemCreated *livestore.EventDef[itemArgs]
	itemSet     *livestore.EventDef[itemArgs]
}

func newBenchApp() (*benchApp, error) {
	a := &benchApp{
		todos: livestore.NewTable("todos",
			livestore.Text("id").PrimaryKey(),
			livestore.Text("text").Default(""),
			livestore.Boolean("completed").Default(false)),
		items: livestore.NewTable("items",
			livestore.Text("id").PrimaryKey(),
			livestore.Integer("value").Default(0)),
		todoCreated: livestore.Synced[todoArgs]("v1.TodoCreated"),
		todoRenamed: livestore.Synced[todoArgs]("v1.TodoRenamed"),
		itemCreated: livestore.Synced[itemArgs]("v1.ItemCreated"),
		itemSet:     livestore.Synced[itemArgs]("v1.ItemSet"),
	}
	var err error
	a.schema, err = livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{a.todos, a.items},
		Events: []livestore.Definition{a.todoCreated, a.todoRenamed, a.itemCreated, a.itemSet},
		Materializers: []livestore.Materializer{
			livestore.Materialize(a.todoCreated, func(_ *livestore.MaterializeContext, e todoArgs) ([]livestore.Statement, error) {
				return []livestore.Statement{a.todos.Insert(livestore.Values{"id": e.ID, "text": e.Text, "completed": false})}, nil
			}),
			livestore.Materialize(a.todoRenamed, func(_ *livestore.MaterializeContext, e todoArgs) ([]livestore.Statement, error) {
				return []livestore.Statement{a.todos.Update(livestore.Values{"text": e.Text}).Where(livestore.Eq("id", e.ID))}, nil
			}),
			livestore.Materialize(a.itemCreated, func(_ *livestore.MaterializeContext, e itemArgs) ([]livestore.Statement, error) {
				return []livestore.Statement{a.items.Insert(livestore.Values{"id": e.ID, "value": e.Value})}, nil
			}),
			livestore.Materialize(a.itemSet, func(_ *livestore.MaterializeContext, e itemArgs) ([]livestore.Statement, error) {
				return []livestore.Statement{a.items.Update(livestore.Values{"value": e.Value}).Where(livestore.Eq("id", e.ID))}, nil
			}),
		},
	})
	return a, err
}

func (a *benchApp) count(ctx context.Context, s *livestore.Store) (int, error) {
	rows, err := livestore.Query[countRow](ctx, s, a.todos.Count())
	if err != nil || len(rows) != 1 {
		return 0, fmt.Errorf("count todos: %v (%d rows)", err, len(rows))
	}
	return rows[0].Count, nil
}

func (a *benchApp) seedTodos(ctx context.Context, s *livestore.Store, n, batch int) error {
	evs := make([]livestore.Event, 0, batch)
	for i := 0; i < n; i++ {
		evs = append(evs, a.todoCreated.New(todoArgs{ID: todoID(i), Text: todoText}))
		if len(evs) == batch || i == n-1 {
			if err := s.Commit(ctx, evs...); err != nil {
				return err
			}
			evs = evs[:0]
		}
	}
	return nil
}

func checkCount(got, want int) string {
	if got != want {
		return fmt.Sprintf("expected %d rows, got %d", want, got)
	}
	return ""
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func total(ds []time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// runGo runs one workload on livestore-go.
func runGo(ctx context.Context, a childArgs) (result, error) {
	app, err := newBenchApp()
	if err != nil {
		return result{}, err
	}
	opts := livestore.Options{Dir: a.dir, StoreID: "bench"}
	if a.impl == implGoProcess {
		opts.Durability = livestore.DurabilityProcess
	}
	open := func() (*livestore.Store, error) { return livestore.Open(ctx, app.schema, opts) }
	switch a.workload {
	case wCommitSingle:
		s, err := open()
		if err != nil {
			return result{}, err
		}
		defer s.Close()
		t0 := a.begin()
		for i := 0; i < a.n; i++ {
			if err := s.Commit(ctx, app.todoCreated.New(todoArgs{ID: todoID(i), Text: todoText})); err != nil {
				return result{}, err
			}
		}
		d := a.end(t0)
		n, err := app.count(ctx, s)
		return result{MS: ms(d), Check: checkCount(n, a.n)}, err

	case wConcurrent:
		s, err := open()
		if err != nil {
			return result{}, err
		}
		defer s.Close()
		return goConcurrent(ctx, app, s, a)

	case wCommitBatch:
		s, err := open()
		if err != nil {
			return result{}, err
		}
		defer s.Close()
		t0 := a.begin()
		if err := app.seedTodos(ctx, s, a.n, a.batch); err != nil {
			return result{}, err
		}
		d := a.end(t0)
		n, err := app.count(ctx, s)
		return result{MS: ms(d), Check: checkCount(n, a.n)}, err

	case wBoot:
		if a.phase == "prepare" {
			s, err := open()
			if err != nil {
				return result{}, err
			}
			if err := app.seedTodos(ctx, s, a.n, a.batch); err != nil {
				s.Close()
				return result{}, err
			}
			return result{}, s.Close()
		}
		t0 := a.begin()
		s, err := open()
		if err != nil {
			return result{}, err
		}
		defer s.Close()
		n, err := app.count(ctx, s)
		d := a.end(t0)
		return result{MS: ms(d), Check: checkCount(n, a.n)}, err

	case wLiveQuery:
		return goLiveQuery(ctx, app, open, a)
	case wFanout:
		return goFanout(ctx, app, open, a)
	case wSync:
		return goSync(ctx, app, a)
	}
	return result{}, fmt.Errorf("unknown workload %q", a.workload)
}

// goLiveQuery: one subscription to all rows; each commit renames one row and
// waits until the subscriber received a result showing the new text.
func goLiveQuery(ctx context.Context, app *benchApp, open func() (*livestore.Store, error), a childArgs) (result, error) {
	s, err := open()
	if err != nil {
		return result{}, err
	}
	defer s.Close()
	if err := app.seedTodos(ctx, s, a.rows, 1000); err != nil {
		return result{}, err
	}
	type want struct {
		idx  int
		text string
		seen chan struct{}
	}
	var cur atomic.Pointer[want]
	initial := make(chan struct{}, 1)
	q := livestore.QueryDB[todoRow](app.todos.Select().OrderBy("id"), "all todos")
	unsub, err := livestore.Subscribe(ctx, s, q, func(rows []todoRow) {
		w := cur.Load()
		if w == nil {
			if len(rows) == a.rows {
				select {
				case initial <- struct{}{}:
				default:
				}
			}
			return
		}
		if len(rows) == a.rows && rows[w.idx].Text == w.text && cur.CompareAndSwap(w, nil) {
			close(w.seen)
		}
	})
	if err != nil {
		return result{}, err
	}
	defer unsub()
	select {
	case <-initial:
	case <-time.After(time.Minute):
		return result{}, errors.New("no initial result")
	}
	lat := make([]time.Duration, 0, a.commits)
	t0 := a.begin()
	for i := 0; i < a.commits; i++ {
		w := &want{idx: renameIndex(i, a.rows), text: fmt.Sprintf("rev %d", i), seen: make(chan struct{})}
		s0 := time.Now()
		cur.Store(w)
		if err := s.Commit(ctx, app.todoRenamed.New(todoArgs{ID: todoID(w.idx), Text: w.text})); err != nil {
			return result{}, err
		}
		select {
		case <-w.seen:
		case <-time.After(time.Minute):
			return result{}, fmt.Errorf("commit %d: subscriber never saw %q", i, w.text)
		}
		lat = append(lat, time.Since(s0))
	}
	a.end(t0)
	return result{MS: ms(total(lat)), P50US: float64(median(lat)) / float64(time.Microsecond)}, nil
}

// goFanout: one point query per item, all subscribed; each commit changes
// one item and waits until that item's subscriber ran with the new value.
func goFanout(ctx context.Context, app *benchApp, open func() (*livestore.Store, error), a childArgs) (result, error) {
	s, err := open()
	if err != nil {
		return result{}, err
	}
	defer s.Close()
	evs := make([]livestore.Event, a.queries)
	for k := range evs {
		evs[k] = app.itemCreated.New(itemArgs{ID: itemID(k), Value: 0})
	}
	if err := s.Commit(ctx, evs...); err != nil {
		return result{}, err
	}
	var (
		want      atomic.Int64
		seen      = make(chan struct{}, 1)
		calls     atomic.Int64
		initialWG sync.WaitGroup
	)
	want.Store(-1)
	initialWG.Add(a.queries)
	for k := 0; k < a.queries; k++ {
		q := livestore.QueryDBFirst(app.items.Where(livestore.Eq("id", itemID(k))), itemRow{}, "item "+itemID(k))
		first := true
		unsub, err := livestore.Subscribe(ctx, s, q, func(r itemRow) {
			if first {
				first = false
				initialWG.Done()
				return
			}
			calls.Add(1)
			if r.Value == want.Load() && want.CompareAndSwap(r.Value, -1) {
				seen <- struct{}{}
			}
		})
		if err != nil {
			return result{}, err
		}
		defer unsub()
	}
	initialWG.Wait()
	lat := make([]time.Duration, 0, a.commits)
	t0 := a.begin()
	for i := 0; i < a.commits; i++ {
		k := renameIndex(i, a.queries)
		v := int64(i + 1)
		s0 := time.Now()
		want.Store(v)
		if err := s.Commit(ctx, app.itemSet.New(itemArgs{ID: itemID(k), Value: v})); err != nil {
			return result{}, err
		}
		select {
		case <-seen:
		case <-time.After(time.Minute):
			return result{}, fmt.Errorf("commit %d: subscriber of %s never ran", i, itemID(k))
		}
		lat = append(lat, time.Since(s0))
	}
	a.end(t0)
	return result{MS: ms(total(lat)), P50US: float64(median(lat)) / float64(time.Microsecond), Callbacks: int(calls.Load())}, nil
}
