package livestore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/livestore-go/livestore"
)

// The registry tests run in synctest bubbles, where disposal timers fire
// only when the test advances the bubble's clock.

// advance moves the bubble's clock forward by d and waits until every
// goroutine of the bubble is blocked, so disposals due by then are done.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// assertClosed fails unless s was closed by a disposal.
func assertClosed(t *testing.T, s *livestore.Store) {
	t.Helper()
	if _, err := s.Head(context.Background()); !errors.Is(err, livestore.ErrStoreClosed) {
		t.Fatalf("store not closed: Head err = %v", err)
	}
}

func TestRegistrySharesAndDisposes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newTodoApp(t)
		reg := livestore.NewRegistry(livestore.RegistryOptions{Schema: a.schema, BaseDir: t.TempDir(), UnusedCacheTime: time.Minute})
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
		advance(30 * time.Second)
		again, rel, err := reg.Get(ctx, livestore.StoreOptions{StoreID: "ws-1"})
		if err != nil || again != stores[0] {
			t.Fatalf("Get within cache time: %v (same store: %v)", err, again == stores[0])
		}
		rel()
		advance(59 * time.Second)
		if _, err := again.Head(ctx); err != nil {
			t.Fatalf("closed before its cache time: %v", err)
		}
		advance(time.Second)
		assertClosed(t, again)
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
	})
}

func TestRegistryRetainAndFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newTodoApp(t)
		base := t.TempDir()
		reg := livestore.NewRegistry(livestore.RegistryOptions{Schema: a.schema, BaseDir: base})
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
		advance(time.Hour)
		if _, err := s.Head(ctx); err != nil {
			t.Fatalf("retained store closed: %v", err)
		}
		release()
		advance(time.Hour)
		assertClosed(t, s)

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
	})
}

// TestRegistryFirstCallerOptionsWin asks for a store again while its
// previous instance is still closing, first with one schema, then with
// another: the new instance is opened with the options of the call that
// started it.
func TestRegistryFirstCallerOptionsWin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		first := newTodoApp(t)
		second := newTodoApp(t, livestore.Text("extra").Default(""))
		r := livestore.NewRegistry(livestore.RegistryOptions{Schema: first.schema, UnusedCacheTime: time.Second})
		defer r.Close(ctx)

		// The old instance's Close waits for a subscriber callback in
		// progress: hold one until both new callers have asked for the store.
		old, release, err := r.Get(ctx, livestore.StoreOptions{StoreID: "s"})
		if err != nil {
			t.Fatal(err)
		}
		entered, gate := make(chan struct{}), make(chan struct{})
		var once sync.Once
		unsub, err := livestore.Subscribe(ctx, old, livestore.QueryDB[todo](first.todos.Select()), func([]todo) {
			once.Do(func() { close(entered); <-gate })
		})
		if err != nil {
			t.Fatal(err)
		}
		defer unsub()
		<-entered
		release()
		advance(time.Second) // disposal starts; its Close waits for the callback

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
	})
}
