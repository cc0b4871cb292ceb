package livestore_test

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
)

// fakeClock fires timers only when the test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Duration
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Duration
	f       func()
	stopped bool
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) livestore.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now + d, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now += d
	var due []*fakeTimer
	var keep []*fakeTimer
	for _, t := range c.timers {
		if !t.stopped && t.at <= c.now {
			t.stopped = true
			due = append(due, t)
		} else if !t.stopped {
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at < due[j].at })
	for _, t := range due {
		t.f()
	}
}

// waitClosed polls until s reports closed; disposal runs on a registry
// goroutine after the timer fires.
func waitClosed(t *testing.T, s *livestore.Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := s.Head(context.Background()); errors.Is(err, livestore.ErrStoreClosed) {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("store was not closed")
}

func TestRegistrySharesAndDisposes(t *testing.T) {
	a := newTodoApp(t)
	clock := &fakeClock{}
	reg := livestore.NewRegistry(livestore.RegistryOptions{Schema: a.schema, BaseDir: t.TempDir(), UnusedCacheTime: time.Minute, Clock: clock})
	defer reg.Close(context.Background())
	ctx := context.Background()

	var wg sync.WaitGroup
	stores := make([]*livestore.Store, 8)
	releases := make([]func(), 8)
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, rel, err := reg.Get(ctx, livestore.StoreOptions{StoreID: "ws-1"})
			if err != nil {
				t.Error(err)
				return
			}
			stores[i], releases[i] = s, rel
		}()
	}
	wg.Wait()
	for _, s := range stores[1:] {
		if s != stores[0] {
			t.Fatal("concurrent Gets returned different stores")
		}
	}
	other, relOther, err := reg.Get(ctx, livestore.StoreOptions{StoreID: "ws-2"})
	if err != nil || other == stores[0] {
		t.Fatalf("second id: %v", err)
	}
	mustCommit(t, stores[0], a.created.New(todoCreated{ID: "x", Text: "y"}))
	for _, rel := range releases {
		rel()
		rel() // idempotent
	}
	// Unused, but within its cache time: a new Get cancels the disposal.
	clock.Advance(30 * time.Second)
	again, rel, err := reg.Get(ctx, livestore.StoreOptions{StoreID: "ws-1"})
	if err != nil || again != stores[0] {
		t.Fatalf("Get within cache time: %v (same store: %v)", err, again == stores[0])
	}
	rel()
	clock.Advance(59 * time.Second)
	if _, err := again.Head(ctx); err != nil {
		t.Fatalf("closed before its cache time: %v", err)
	}
	clock.Advance(time.Second)
	waitClosed(t, again)
	// ws-2 is still held and open.
	if _, err := other.Head(ctx); err != nil {
		t.Fatalf("held store closed: %v", err)
	}
	relOther()
	// Reopened from disk after disposal, with its data.
	fresh, rel, err := reg.Get(ctx, livestore.StoreOptions{StoreID: "ws-1"})
	if err != nil || fresh == again {
		t.Fatalf("Get after disposal: %v", err)
	}
	defer rel()
	rows, _ := livestore.Query[todo](ctx, fresh, a.todos.Select())
	if len(rows) != 1 {
		t.Fatalf("rows after reopen = %d", len(rows))
	}
}

func TestRegistryRetainAndFailures(t *testing.T) {
	a := newTodoApp(t)
	clock := &fakeClock{}
	base := t.TempDir()
	reg := livestore.NewRegistry(livestore.RegistryOptions{Schema: a.schema, BaseDir: base, Clock: clock})
	ctx := context.Background()

	// A failed open (the directory is held by someone else) reaches the
	// caller and is not cached.
	blocker, err := livestore.Open(ctx, a.schema, livestore.Options{Dir: base + "/busy"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Get(ctx, livestore.StoreOptions{StoreID: "busy"}); !errors.Is(err, livestore.ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
	blocker.Close()
	s, rel, err := reg.Get(ctx, livestore.StoreOptions{StoreID: "busy"})
	if err != nil {
		t.Fatalf("retry after failure: %v", err)
	}
	rel()

	// Retain keeps a store past its cache time.
	release := reg.Retain(livestore.StoreOptions{StoreID: "busy"})
	clock.Advance(time.Hour)
	if _, err := s.Head(ctx); err != nil {
		t.Fatalf("retained store closed: %v", err)
	}
	release()
	clock.Advance(time.Hour)
	waitClosed(t, s)

	if _, _, err := reg.Get(ctx, livestore.StoreOptions{StoreID: "../evil"}); err == nil {
		t.Fatal("path-like store id accepted")
	}
	// Preload never reports an error.
	reg.Preload(ctx, livestore.StoreOptions{StoreID: "pre"})
	if err := reg.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Get(ctx, livestore.StoreOptions{StoreID: "pre"}); !errors.Is(err, livestore.ErrRegistryClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestRegistryFirstCallerOptionsWin asks for a store again while its
// previous instance is still closing, first with one schema, then with
// another: the new instance is opened with the options of the call that
// started it.
func TestRegistryFirstCallerOptionsWin(t *testing.T) {
	ctx := context.Background()
	first := newTodoApp(t)
	second := newTodoApp(t, livestore.Text("extra").Default(""))
	clock := &fakeClock{}
	r := livestore.NewRegistry(livestore.RegistryOptions{Schema: first.schema, Clock: clock, UnusedCacheTime: time.Second})
	defer r.Close(ctx)

	// The old instance's Close waits for a subscriber callback in
	// progress: hold one until both new callers have asked for the store.
	old, release, err := r.Get(ctx, livestore.StoreOptions{StoreID: "s"})
	if err != nil {
		t.Fatal(err)
	}
	entered, gate := make(chan struct{}), make(chan struct{})
	var once sync.Once
	unsub, err := livestore.Subscribe(old, livestore.QueryDB[todo](first.todos.Select()), func([]todo) {
		once.Do(func() { close(entered); <-gate })
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	<-entered
	release()
	clock.Advance(time.Second) // disposal starts; its Close waits for the callback

	// Retain creates the new entry at once; its open waits for the old
	// instance to close.
	releaseFirst := r.Retain(livestore.StoreOptions{StoreID: "s", Schema: first.schema})
	defer releaseFirst()
	releaseSecond := r.Retain(livestore.StoreOptions{StoreID: "s", Schema: second.schema})
	defer releaseSecond()
	close(gate)

	s, rel, err := r.Get(ctx, livestore.StoreOptions{StoreID: "s", Schema: second.schema})
	if err != nil {
		t.Fatal(err)
	}
	defer rel()
	if s == old {
		t.Fatal("got the disposed instance")
	}
	if s.Schema() != first.schema {
		t.Fatal("the store was opened with the schema of a later caller, not of the call that started its open")
	}
}
