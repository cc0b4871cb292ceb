package livestore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/livestore-go/livestore/eventlog"
)

type groupPut struct {
	K string `json:"k"`
}

var errBoom = errors.New("boom")

// groupSchema is a schema whose one event inserts a row of kv, failing for
// the key "boom".
func groupSchema(t *testing.T) (*Schema, *EventDef[groupPut]) {
	t.Helper()
	kv := NewTable("kv", Text("k").PrimaryKey())
	put := Synced[groupPut]("v1.Put")
	schema, err := NewSchema(SchemaDef{
		Tables: []*Table{kv},
		Events: []Definition{put},
		Materializers: []Materializer{Materialize(put, func(_ *MaterializeContext, a groupPut) ([]Statement, error) {
			st := []Statement{kv.Insert(Values{"k": a.K})}
			if a.K == "boom" {
				return st, errBoom
			}
			return st, nil
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	return schema, put
}

// groupStore opens a directory store of groupSchema.
func groupStore(t *testing.T) (*Store, *EventDef[groupPut]) {
	t.Helper()
	schema, put := groupSchema(t)
	s, err := Open(context.Background(), schema, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, put
}

// queued waits until n Commit calls wait in s's queue and returns their
// keys in queue order.
func queued(s *Store, n int) []string {
	for {
		s.commits.mu.Lock()
		var keys []string
		for _, r := range s.commits.queue {
			keys = append(keys, string(r.batch[0].args))
		}
		s.commits.mu.Unlock()
		if len(keys) == n {
			return keys
		}
		runtime.Gosched()
	}
}

// TestGroupCommitFailingCallFailsAlone queues commits while the write lock
// is held, so that they form one group, one of them failing in its
// materializer: it alone fails, the others commit in queue order.
func TestGroupCommitFailingCallFailsAlone(t *testing.T) {
	s, put := groupStore(t)
	ctx := context.Background()
	s.wsem <- struct{}{} // hold the write lock: calls queue up
	groupsBefore := s.commits.groups
	keys := []string{"a", "b", "boom", "c", "d"}
	errs := make(map[string]error)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Commit(ctx, put.New(groupPut{K: k}))
			mu.Lock()
			errs[k] = err
			mu.Unlock()
		}()
	}
	order := queued(s, len(keys))
	<-s.wsem
	wg.Wait()
	if got := s.commits.groups - groupsBefore; got != 1 {
		t.Fatalf("%d groups, want 1", got)
	}
	var mat *MaterializerError
	for _, k := range keys {
		if k == "boom" {
			if !errors.As(errs[k], &mat) || !errors.Is(errs[k], errBoom) {
				t.Fatalf("commit of boom: %v, want a MaterializerError", errs[k])
			}
		} else if errs[k] != nil {
			t.Fatalf("commit of %s: %v", k, errs[k])
		}
	}
	// The log holds the others, numbered in queue order.
	var want []string
	for _, a := range order {
		if a != `{"k":"boom"}` {
			want = append(want, a)
		}
	}
	var got []string
	var seq []int64
	for ev, err := range s.Events(ctx, eventlog.Root) {
		if err != nil {
			t.Fatal(err)
		}
		got, seq = append(got, string(ev.Args)), append(seq, ev.SeqNum.Global)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(seq) != "[1 2 3 4]" {
		t.Fatalf("log %v %v, want %v in order 1..4", got, seq, want)
	}
	rows, err := Query[groupPut](ctx, s, SQL("SELECT k FROM kv ORDER BY k"))
	if err != nil || fmt.Sprint(rows) != "[{a} {b} {c} {d}]" {
		t.Fatalf("state %v, %v", rows, err)
	}
	if head, _ := s.Head(ctx); head.Global != 4 {
		t.Fatalf("head %s, want e4", head)
	}
}

// TestGroupCommitFailuresDurableAfterReopen queues one group whose first,
// middle and last calls fail in their materializers: those fail, the others
// succeed, and after the store is closed and opened again the log and the
// state hold exactly the calls that succeeded, numbered without gaps.
func TestGroupCommitFailuresDurableAfterReopen(t *testing.T) {
	schema, put := groupSchema(t)
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, schema, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s.wsem <- struct{}{} // hold the write lock: calls queue up
	keys := []string{"boom", "a", "b", "boom", "c", "boom"}
	errs := make(chan error, len(keys))
	for i, k := range keys {
		go func() { errs <- s.Commit(ctx, put.New(groupPut{K: k})) }()
		queued(s, i+1) // queue them in this order
	}
	<-s.wsem
	var failed int
	for range keys {
		err := <-errs
		switch {
		case errors.Is(err, errBoom):
			failed++
		case err != nil:
			t.Fatalf("commit: %v", err)
		}
	}
	if failed != 3 {
		t.Fatalf("%d commits failed, want the 3 booms", failed)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, schema, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []string
	for ev, err := range s.Events(ctx, eventlog.Root) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d:%s", ev.SeqNum.Global, ev.Args))
	}
	if want := `[1:{"k":"a"} 2:{"k":"b"} 3:{"k":"c"}]`; fmt.Sprint(got) != want {
		t.Fatalf("log after reopen %v, want %s", got, want)
	}
	rows, err := Query[groupPut](ctx, s, SQL("SELECT k FROM kv ORDER BY k"))
	if err != nil || fmt.Sprint(rows) != "[{a} {b} {c}]" {
		t.Fatalf("state after reopen %v, %v", rows, err)
	}
}

// TestGroupCommitGathersFailingCall queues calls while the group's first
// call runs: they join its transaction, and when one of them fails in its
// materializer the group runs again with savepoints, so that it alone
// fails and the rest commit in one group.
func TestGroupCommitGathersFailingCall(t *testing.T) {
	kv := NewTable("kv", Text("k").PrimaryKey())
	put := Synced[groupPut]("v1.Put")
	running, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	schema, err := NewSchema(SchemaDef{
		Tables: []*Table{kv},
		Events: []Definition{put},
		Materializers: []Materializer{Materialize(put, func(_ *MaterializeContext, a groupPut) ([]Statement, error) {
			if a.K == "first" {
				once.Do(func() { close(running); <-release })
			}
			if a.K == "boom" {
				return nil, errBoom
			}
			return []Statement{kv.Insert(Values{"k": a.K})}, nil
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), schema, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	groupsBefore := s.commits.groups
	errs := make(map[string]chan error)
	commit := func(k string) {
		errs[k] = make(chan error, 1)
		go func() { errs[k] <- s.Commit(ctx, put.New(groupPut{K: k})) }()
	}
	commit("first")
	<-running // the group of "first" runs its materializer
	for i, k := range []string{"a", "boom", "b"} {
		commit(k)
		queued(s, i+1)
	}
	close(release)
	for _, k := range []string{"first", "a", "boom", "b"} {
		err := <-errs[k]
		if k == "boom" {
			if !errors.Is(err, errBoom) {
				t.Fatalf("commit of boom: %v, want errBoom", err)
			}
		} else if err != nil {
			t.Fatalf("commit of %s: %v", k, err)
		}
	}
	if got := s.commits.groups - groupsBefore; got != 1 {
		t.Fatalf("%d groups, want 1", got)
	}
	rows, err := Query[groupPut](ctx, s, SQL("SELECT k FROM kv ORDER BY k"))
	if err != nil || fmt.Sprint(rows) != "[{a} {b} {first}]" {
		t.Fatalf("state %v, %v", rows, err)
	}
	if head, _ := s.Head(ctx); head.Global != 3 {
		t.Fatalf("head %s, want e3", head)
	}
}

// TestGroupCommitCancelledWhileQueued cancels a commit waiting in the
// queue: it fails with the context's error and commits nothing, while the
// group goes on without it.
func TestGroupCommitCancelledWhileQueued(t *testing.T) {
	s, put := groupStore(t)
	s.wsem <- struct{}{}
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan error)
	go func() { cancelled <- s.Commit(ctx, put.New(groupPut{K: "x"})) }()
	kept := make(chan error)
	go func() { kept <- s.Commit(context.Background(), put.New(groupPut{K: "y"})) }()
	queued(s, 2)
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled commit: %v", err)
	}
	<-s.wsem
	if err := <-kept; err != nil {
		t.Fatal(err)
	}
	rows, err := Query[groupPut](context.Background(), s, SQL("SELECT k FROM kv"))
	if err != nil || fmt.Sprint(rows) != "[{y}]" {
		t.Fatalf("state %v, %v", rows, err)
	}
}

// TestGroupCommitClosedWhileQueued closes the store under queued commits:
// each either commits or fails with ErrStoreClosed, and Close returns.
func TestGroupCommitClosedWhileQueued(t *testing.T) {
	s, put := groupStore(t)
	s.wsem <- struct{}{}
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() { errs <- s.Commit(context.Background(), put.New(groupPut{K: fmt.Sprint(i)})) }()
	}
	queued(s, 3)
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	<-s.wsem
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := <-errs; err != nil && !errors.Is(err, ErrStoreClosed) {
			t.Fatalf("commit queued at close: %v", err)
		}
	}
	if err := s.Commit(context.Background(), put.New(groupPut{K: "late"})); !errors.Is(err, ErrStoreClosed) {
		t.Fatalf("commit after close: %v", err)
	}
}

// GroupStats returns how many groups s committed and how many Commit calls
// they held. Call it while no commit runs.
func GroupStats(s *Store) (groups, calls int64) {
	return s.commits.groups, s.commits.calls
}
