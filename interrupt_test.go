package livestore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/memsync"
)

// slowCount counts to a billion: minutes of SQLite work unless interrupted.
var slowCount = livestore.SQL(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)
SELECT count(*) AS n FROM c`)

type countRow struct {
	N int `db:"n"`
}

// interruptBound is how long an interrupted evaluation may take to give up:
// generous, as the machine may be loaded; the query it cuts short takes far
// longer.
const interruptBound = 5 * time.Second

// eventually fails the test unless cond holds within a generous deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestGetInterruptsSlowQuery(t *testing.T) {
	for _, dir := range []string{"", "dir"} {
		t.Run("dir="+dir, func(t *testing.T) {
			a := newTodoApp(t)
			if dir != "" {
				dir = t.TempDir()
			}
			s := openStore(t, a.schema, dir)
			mustCommit(t, s, a.created.New(todoCreated{ID: "1", Text: "a"}))
			slow := livestore.QueryDBFirst(slowCount, countRow{}, "slow")

			ctx, cancel := context.WithCancel(context.Background())
			stop := time.AfterFunc(50*time.Millisecond, cancel)
			defer stop.Stop()
			start := time.Now()
			_, err := livestore.Get(ctx, s, slow)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Get = %v, want an error wrapping context.Canceled", err)
			}
			if d := time.Since(start); d > interruptBound {
				t.Fatalf("Get returned after %v", d)
			}

			dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer dcancel()
			if _, err := livestore.Get(dctx, s, slow); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Get = %v, want an error wrapping context.DeadlineExceeded", err)
			}

			// The store goes on: a fast query runs, and a commit shows.
			count := livestore.QueryDBFirst(a.todos.Count(), struct{ Count int }{})
			if v, err := livestore.Get(context.Background(), s, count); err != nil || v.Count != 1 {
				t.Fatalf("Get after interrupt = %v, %v", v, err)
			}
			mustCommit(t, s, a.created.New(todoCreated{ID: "2", Text: "b"}))
			if v, err := livestore.Get(context.Background(), s, count); err != nil || v.Count != 2 {
				t.Fatalf("Get after commit = %v, %v", v, err)
			}
			if n := len(s.ReactiveNodes()); n != 0 {
				t.Fatalf("%d nodes kept after Gets", n)
			}
		})
	}
}

func TestSubscribeFirstEvaluationInterrupted(t *testing.T) {
	a := newTodoApp(t)
	s := openStore(t, a.schema, t.TempDir())
	slow := livestore.QueryDBFirst(slowCount, countRow{}, "slow")
	total := livestore.NewComputed(func(g *livestore.Getter) (int, error) {
		c, err := livestore.Use(g, slow)
		return c.N, err
	}, "total")
	gctx, gcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer gcancel()
	if _, err := livestore.Get(gctx, s, total); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get of a computed = %v, want an error wrapping context.DeadlineExceeded", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	un, err := livestore.Subscribe(ctx, s, total, func(int) { t.Error("delivered a value") })
	if !errors.Is(err, context.DeadlineExceeded) || un != nil {
		t.Fatalf("Subscribe = %v, want an error wrapping context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > interruptBound {
		t.Fatalf("Subscribe returned after %v", d)
	}
	// Nothing of the cut evaluation stays in the graph.
	if nodes := s.ReactiveNodes(); len(nodes) != 0 {
		t.Fatalf("nodes kept: %+v", nodes)
	}
	// Watch's first evaluation is interrupted the same way.
	wctx, wcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer wcancel()
	for _, err := range livestore.Watch(wctx, s, slow) {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Watch yielded %v", err)
		}
		break
	}
}

func TestSubscribeStopsWhenContextEnds(t *testing.T) {
	a := newTodoApp(t)
	s := openStore(t, a.schema, t.TempDir())
	count := livestore.QueryDBFirst(a.todos.Count(), struct{ Count int }{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := newRecorder[struct{ Count int }]()
	un, err := livestore.Subscribe(ctx, s, count, r.fn)
	if err != nil {
		t.Fatal(err)
	}
	defer un()
	r.wait(t, 1)
	mustCommit(t, s, a.created.New(todoCreated{ID: "1"}))
	r.wait(t, 1)
	cancel()
	eventually(t, "the subscription to end", func() bool { return len(s.ReactiveNodes()) == 0 })
	calls := len(r.values())
	mustCommit(t, s, a.created.New(todoCreated{ID: "2"}))
	if v, err := livestore.Get(context.Background(), s, count); err != nil || v.Count != 2 {
		t.Fatalf("Get = %v, %v", v, err)
	}
	if got := r.values(); len(got) != calls {
		t.Fatalf("delivered after ctx ended: %v", got)
	}
	un() // unsubscribing after ctx ended is harmless
}

// TestWritersDoNotWaitForRefresh blocks the refresh goroutine in a Computed
// and shows that setting a signal, committing and syncing (push, pull and
// the sync status signal) all go on; once released, the subscriber gets the
// value of everything done meanwhile.
func TestWritersDoNotWaitForRefresh(t *testing.T) {
	a := newTodoApp(t)
	srv := memsync.NewServer()
	s := openSynced(t, a.schema, t.TempDir(), syncOpts(srv.NewLink()))
	other := openSynced(t, a.schema, t.TempDir(), syncOpts(srv.NewLink()))
	sig := livestore.NewSignal(1, "sig")
	count := livestore.QueryDBFirst(a.todos.Count(), struct{ Count int }{})
	entered, release := make(chan struct{}, 1), make(chan struct{})
	view := livestore.NewComputed(func(g *livestore.Getter) (string, error) {
		v, err := livestore.Use(g, sig)
		if err != nil {
			return "", err
		}
		if v == 2 {
			entered <- struct{}{}
			<-release
		}
		c, err := livestore.Use(g, count)
		return fmt.Sprintf("%d/%d", v, c.Count), err
	}, "view")
	r := newRecorder[string]()
	un, err := livestore.Subscribe(context.Background(), s, view, r.fn)
	if err != nil {
		t.Fatal(err)
	}
	defer un()
	r.wait(t, 1)
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()

	if err := livestore.SetSignal(s, sig, 2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the refresh did not start")
	}
	// The refresh goroutine is now blocked inside view.
	if err := livestore.SetSignal(s, sig, 3); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, s, a.created.New(todoCreated{ID: "mine"}))
	mustCommit(t, other, a.created.New(todoCreated{ID: "theirs"}))
	waitConverged(t, srv, s, other) // s pushed its todo, pulled the other's and published its status
	rows, err := livestore.Query[todo](context.Background(), s, a.todos.Select())
	if err != nil || len(rows) != 2 {
		t.Fatalf("rows = %v, %v", rows, err)
	}
	// Get of a query no subscription keeps live does not wait for the
	// refresh; Get of a live one waits only as long as its context allows.
	all, err := livestore.Get(context.Background(), s, livestore.QueryDB[todo](a.todos.Select()))
	if err != nil || len(all) != 2 {
		t.Fatalf("Get of an unsubscribed query = %v, %v", all, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := livestore.Get(ctx, s, count); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get while the refresh is blocked = %v", err)
	}

	close(release)
	released = true
	eventually(t, "the final value", func() bool {
		got := r.values()
		return got[len(got)-1] == "3/2"
	})
	if v, err := livestore.Get(context.Background(), s, view); err != nil || v != "3/2" {
		t.Fatalf("Get = %q, %v", v, err)
	}
}

func TestGetSeesSignalSetBefore(t *testing.T) {
	x := newTwoTables(t)
	s := openStore(t, x.schema, "")
	sig := livestore.NewSignal(1, "sig")
	double := livestore.NewComputed(func(g *livestore.Getter) (int, error) {
		v, err := livestore.Use(g, sig)
		return 2 * v, err
	}, "double")
	un, err := livestore.Subscribe(context.Background(), s, double, func(int) {})
	if err != nil {
		t.Fatal(err)
	}
	defer un()
	for i := 2; i < 50; i++ {
		if err := livestore.SetSignal(s, sig, i); err != nil {
			t.Fatal(err)
		}
		if v, err := livestore.Get(context.Background(), s, double); err != nil || v != 2*i {
			t.Fatalf("after SetSignal(%d): Get = %d, %v", i, v, err)
		}
		if v, err := livestore.Get(context.Background(), s, sig); err != nil || v != i {
			t.Fatalf("after SetSignal(%d): signal = %d, %v", i, v, err)
		}
	}
	s.Close()
	if err := livestore.SetSignal(s, sig, 0); !errors.Is(err, livestore.ErrStoreClosed) {
		t.Fatalf("SetSignal after Close = %v", err)
	}
}

func TestCloseInterruptsRefresh(t *testing.T) {
	a := newTodoApp(t)
	s := openStore(t, a.schema, t.TempDir())
	// Fast while todos is empty, a billion steps once it holds a row.
	q := livestore.QueryDBFirst(livestore.SQL(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c
WHERE x < (SELECT count(*) FROM todos) * 1000000000) SELECT count(*) AS n FROM c`), countRow{}, "slow once written")
	un, err := livestore.Subscribe(context.Background(), s, q, func(countRow) {})
	if err != nil {
		t.Fatal(err)
	}
	defer un()
	mustCommit(t, s, a.created.New(todoCreated{ID: "1"})) // returns: the refresh runs on its own goroutine
	eventually(t, "the refresh to start", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_, err := livestore.Get(ctx, s, q)
		return errors.Is(err, context.DeadlineExceeded)
	})
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > interruptBound {
		t.Fatalf("Close returned after %v", d)
	}
}
