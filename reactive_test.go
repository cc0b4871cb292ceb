package livestore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
)

// twoTables is a schema with independent tables a and b.
type twoTables struct {
	a, b   *livestore.Table
	setA   *livestore.EventDef[kv]
	setB   *livestore.EventDef[kv]
	schema *livestore.Schema
}

type kv struct {
	K string `json:"k" db:"k"`
	V int    `json:"v" db:"v"`
}

func newTwoTables(t testing.TB) *twoTables {
	t.Helper()
	x := &twoTables{
		a:    livestore.NewTable("a", livestore.Text("k").PrimaryKey(), livestore.Integer("v")),
		b:    livestore.NewTable("b", livestore.Text("k").PrimaryKey(), livestore.Integer("v")),
		setA: livestore.Synced[kv]("v1.SetA"),
		setB: livestore.Synced[kv]("v1.SetB"),
	}
	upsert := func(tab *livestore.Table) func(*livestore.MaterializeContext, kv) ([]livestore.Statement, error) {
		return func(_ *livestore.MaterializeContext, e kv) ([]livestore.Statement, error) {
			return []livestore.Statement{tab.Insert(livestore.Values{"k": e.K, "v": e.V}).OnConflict("k").Replace()}, nil
		}
	}
	var err error
	x.schema, err = livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{x.a, x.b},
		Events: []livestore.Definition{x.setA, x.setB},
		Materializers: []livestore.Materializer{
			livestore.Materialize(x.setA, upsert(x.a)),
			livestore.Materialize(x.setB, upsert(x.b)),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// recorder collects subscription calls.
type recorder[T any] struct {
	mu    sync.Mutex
	vals  []T
	calls chan struct{}
}

func newRecorder[T any]() *recorder[T] { return &recorder[T]{calls: make(chan struct{}, 1000)} }

func (r *recorder[T]) fn(v T) {
	r.mu.Lock()
	r.vals = append(r.vals, v)
	r.mu.Unlock()
	r.calls <- struct{}{}
}

func (r *recorder[T]) wait(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-r.calls:
		case <-time.After(10 * time.Second):
			t.Fatalf("waited for call %d of %d", i+1, n)
		}
	}
}

func (r *recorder[T]) values() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.vals...)
}

// settle waits until the store's reactive graph has processed everything
// committed so far: a Get of a live node runs any pending refresh pass.
func settle[T any](t *testing.T, s *livestore.Store, q livestore.Queryable[T]) {
	t.Helper()
	if _, err := livestore.Get(context.Background(), s, q); err != nil {
		t.Fatal(err)
	}
}

func nodeRuns(s *livestore.Store, sql string) int64 {
	for _, n := range s.ReactiveNodes() {
		if n.SQL == sql {
			return n.RunCount
		}
	}
	return -1
}

func TestInvalidationPrecision(t *testing.T) {
	for _, dir := range []string{"", "dir"} {
		t.Run("dir="+dir, func(t *testing.T) {
			x := newTwoTables(t)
			if dir != "" {
				dir = t.TempDir()
			}
			s := openStore(t, x.schema, dir)
			qa := livestore.QueryDB[kv](x.a.Select().OrderBy("k"), "a rows")
			qb := livestore.QueryDB[kv](x.b.Select().OrderBy("k"), "b rows")
			ra, rb := newRecorder[[]kv](), newRecorder[[]kv]()
			unA, err := livestore.Subscribe(context.Background(), s, qa, ra.fn)
			if err != nil {
				t.Fatal(err)
			}
			defer unA()
			unB, _ := livestore.Subscribe(context.Background(), s, qb, rb.fn)
			defer unB()
			ra.wait(t, 1)
			rb.wait(t, 1)
			runsB := nodeRuns(s, qb.SQL())
			for i := 0; i < 20; i++ {
				mustCommit(t, s, x.setA.New(kv{K: fmt.Sprint(i), V: i}))
			}
			settle(t, s, qa)
			ra.wait(t, 1) // at least one call with the new rows
			if got := nodeRuns(s, qb.SQL()); got != runsB {
				t.Fatalf("query on b re-ran %d times after writes to a", got-runsB)
			}
			if n := len(rb.values()); n != 1 {
				t.Fatalf("subscriber of b called %d times", n)
			}
			last := ra.values()[len(ra.values())-1]
			for len(last) != 20 {
				ra.wait(t, 1)
				last = ra.values()[len(ra.values())-1]
			}
		})
	}
}

func TestNoSpuriousNotifications(t *testing.T) {
	x := newTwoTables(t)
	s := openStore(t, x.schema, t.TempDir())
	mustCommit(t, s, x.setA.New(kv{K: "k", V: 1}))
	q := livestore.QueryDB[kv](x.a.Select())
	r := newRecorder[[]kv]()
	un, _ := livestore.Subscribe(context.Background(), s, q, r.fn)
	defer un()
	r.wait(t, 1)
	runs := nodeRuns(s, q.SQL())
	// Same value again: the table is written, the query re-runs, the result
	// is equal, nobody is called.
	mustCommit(t, s, x.setA.New(kv{K: "k", V: 1}))
	settle(t, s, q)
	if nodeRuns(s, q.SQL()) <= runs {
		t.Fatal("query did not re-run after a write to its table")
	}
	// A real change is delivered, and it is the only further call.
	mustCommit(t, s, x.setA.New(kv{K: "k", V: 2}))
	r.wait(t, 1)
	vals := r.values()
	if len(vals) != 2 || vals[1][0].V != 2 {
		t.Fatalf("calls = %+v", vals)
	}
}

func TestBatchNotifiesOnce(t *testing.T) {
	x := newTwoTables(t)
	s := openStore(t, x.schema, t.TempDir())
	q := livestore.QueryDB[kv](x.a.Select())
	r := newRecorder[[]kv]()
	un, _ := livestore.Subscribe(context.Background(), s, q, r.fn)
	defer un()
	r.wait(t, 1)
	var batch []livestore.Event
	for i := 0; i < 50; i++ {
		batch = append(batch, x.setA.New(kv{K: fmt.Sprint(i), V: i}))
	}
	mustCommit(t, s, batch...)
	r.wait(t, 1)
	settle(t, s, q)
	if vals := r.values(); len(vals) != 2 || len(vals[1]) != 50 {
		t.Fatalf("calls: %d, last has %d rows", len(vals), len(vals[len(vals)-1]))
	}
}

func TestComputedGlitchFree(t *testing.T) {
	x := newTwoTables(t)
	s := openStore(t, x.schema, t.TempDir())
	countA := livestore.QueryDBFirst[int](livestore.SQL("SELECT count(*) FROM a"), 0)
	countB := livestore.QueryDBFirst[int](livestore.SQL("SELECT count(*) FROM b"), 0)
	var violations atomic.Int64
	var runs atomic.Int64
	// Every commit adds two rows to a and one to b, so at every commit
	// boundary count(a) == 2*count(b). A computed that saw one new and one
	// old input would break that.
	ratio := livestore.NewComputed(func(g *livestore.Getter) ([2]int, error) {
		runs.Add(1)
		a, err := livestore.Use(g, countA)
		if err != nil {
			return [2]int{}, err
		}
		b, err := livestore.Use(g, countB)
		if err != nil {
			return [2]int{}, err
		}
		if a != 2*b {
			violations.Add(1)
		}
		return [2]int{a, b}, nil
	}, "ratio")
	r := newRecorder[[2]int]()
	un, _ := livestore.Subscribe(context.Background(), s, ratio, r.fn)
	defer un()
	r.wait(t, 1)
	for i := 0; i < 100; i++ {
		mustCommit(t, s,
			x.setA.New(kv{K: fmt.Sprint("x", i)}), x.setB.New(kv{K: fmt.Sprint(i)}), x.setA.New(kv{K: fmt.Sprint("y", i)}))
	}
	v, err := livestore.Get(context.Background(), s, ratio)
	if err != nil || v != [2]int{200, 100} {
		t.Fatalf("final = %v, %v", v, err)
	}
	if violations.Load() != 0 {
		t.Fatalf("%d glitches", violations.Load())
	}
	for _, got := range r.values() {
		if got[0] != 2*got[1] {
			t.Fatalf("subscriber saw %v", got)
		}
	}
	// Inputs unchanged ⇒ the computed does not re-run: a write that leaves
	// both counts equal re-runs the counts only.
	before := runs.Load()
	mustCommit(t, s, x.setA.New(kv{K: "x1", V: 7}))
	settle(t, s, ratio)
	if runs.Load() != before {
		t.Fatalf("computed re-ran %d times with unchanged inputs", runs.Load()-before)
	}
}

func TestSignalAndComputed(t *testing.T) {
	x := newTwoTables(t)
	s := openStore(t, x.schema, "")
	mustCommit(t, s, x.setA.New(kv{K: "a", V: 1}), x.setA.New(kv{K: "b", V: 5}), x.setA.New(kv{K: "c", V: 9}))
	minV := livestore.NewSignal(0, "min")
	rows := livestore.QueryDB[kv](x.a.Select().OrderBy("k"))
	filtered := livestore.NewComputed(func(g *livestore.Getter) ([]string, error) {
		m, _ := livestore.Use(g, minV)
		all, err := livestore.Use(g, rows)
		var out []string
		for _, r := range all {
			if r.V >= m {
				out = append(out, r.K)
			}
		}
		return out, err
	})
	r := newRecorder[[]string]()
	un, _ := livestore.Subscribe(context.Background(), s, filtered, r.fn)
	defer un()
	r.wait(t, 1)
	if err := livestore.SetSignal(s, minV, 5); err != nil {
		t.Fatal(err)
	}
	r.wait(t, 1)
	got := r.values()
	if fmt.Sprint(got) != "[[a b c] [b c]]" {
		t.Fatalf("values = %v", got)
	}
	v, _ := livestore.Get(context.Background(), s, minV)
	if v != 5 {
		t.Fatalf("signal = %d", v)
	}
}

func TestUnsubscribeStopsCalls(t *testing.T) {
	x := newTwoTables(t)
	s := openStore(t, x.schema, t.TempDir())
	q := livestore.QueryDB[kv](x.a.Select())
	r := newRecorder[[]kv]()
	un, _ := livestore.Subscribe(context.Background(), s, q, r.fn)
	r.wait(t, 1)
	un()
	un() // idempotent
	mustCommit(t, s, x.setA.New(kv{K: "k", V: 1}))
	// A second subscriber proves the commit was processed.
	r2 := newRecorder[[]kv]()
	un2, _ := livestore.Subscribe(context.Background(), s, q, r2.fn)
	defer un2()
	r2.wait(t, 1)
	mustCommit(t, s, x.setA.New(kv{K: "k", V: 2}))
	r2.wait(t, 1)
	if n := len(r.values()); n != 1 {
		t.Fatalf("unsubscribed callback called %d times", n)
	}
}

func TestSlowSubscriberDoesNotBlockCommits(t *testing.T) {
	x := newTwoTables(t)
	s := openStore(t, x.schema, t.TempDir())
	q := livestore.QueryDB[kv](x.a.Select())
	release := make(chan struct{})
	var calls atomic.Int64
	var last atomic.Int64
	un, _ := livestore.Subscribe(context.Background(), s, q, func(rows []kv) {
		calls.Add(1)
		if len(rows) > 0 {
			last.Store(int64(rows[0].V))
		}
		<-release
	})
	defer un()
	for i := 1; i <= 30; i++ {
		mustCommit(t, s, x.setA.New(kv{K: "k", V: i}))
	}
	settle(t, s, q)
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for last.Load() != 30 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if last.Load() != 30 {
		t.Fatalf("latest value not delivered: %d", last.Load())
	}
	if c := calls.Load(); c > 3 {
		t.Fatalf("%d calls: values were queued instead of coalesced", c)
	}
}

func TestSharedNodesAndGetAfterCommit(t *testing.T) {
	x := newTwoTables(t)
	s := openStore(t, x.schema, t.TempDir())
	q1 := livestore.QueryDB[kv](x.a.Where(livestore.Eq("k", "z")))
	q2 := livestore.QueryDB[kv](x.a.Where(livestore.Eq("k", "z")))
	un1, _ := livestore.Subscribe(context.Background(), s, q1, func([]kv) {})
	un2, _ := livestore.Subscribe(context.Background(), s, q2, func([]kv) {})
	if n := len(s.ReactiveNodes()); n != 1 {
		t.Fatalf("%d nodes for identical queries", n)
	}
	mustCommit(t, s, x.setA.New(kv{K: "z", V: 3}))
	got, err := livestore.Get(context.Background(), s, q2)
	if err != nil || len(got) != 1 || got[0].V != 3 {
		t.Fatalf("Get after commit = %+v, %v", got, err)
	}
	un1()
	un2()
	if n := len(s.ReactiveNodes()); n != 0 {
		t.Fatalf("%d nodes left after unsubscribing", n)
	}
}

func TestWatch(t *testing.T) {
	x := newTwoTables(t)
	s := openStore(t, x.schema, t.TempDir())
	q := livestore.QueryDBFirst(x.a.Count(), struct{ Count int }{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var seen []int
	go func() {
		for i := 0; i < 3; i++ {
			mustCommit(t, s, x.setA.New(kv{K: fmt.Sprint(i)}))
		}
	}()
	for v, err := range livestore.Watch(ctx, s, q) {
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, v.Count)
		if v.Count == 3 {
			break
		}
	}
	if seen[0] > 3 || seen[len(seen)-1] != 3 {
		t.Fatalf("seen %v", seen)
	}
}

func TestBadQueryReportsError(t *testing.T) {
	x := newTwoTables(t)
	s := openStore(t, x.schema, "")
	q := livestore.QueryDB[kv](livestore.SQL("SELECT * FROM missing"))
	if _, err := livestore.Get(context.Background(), s, q); err == nil {
		t.Fatal("no error for a query on a missing table")
	}
	q2 := livestore.QueryDB[kv](x.a.Where(livestore.Eq("nope", 1)))
	if _, err := livestore.Get(context.Background(), s, q2); err == nil {
		t.Fatal("no error for an unknown column")
	}
}
