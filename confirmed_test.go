package livestore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/memsync"
)

// streamItem is one element of a ConfirmedEvents stream.
type streamItem struct {
	ev  eventlog.Event
	err error
}

// startStream runs ConfirmedEvents on its own goroutine until ctx ends; the
// returned channel closes when the iteration has returned.
func startStream(ctx context.Context, s *livestore.Store, opts livestore.ConfirmedEventsOptions) <-chan streamItem {
	ch := make(chan streamItem, 1024)
	go func() {
		defer close(ch)
		for ev, err := range s.ConfirmedEvents(ctx, opts) {
			ch <- streamItem{ev, err}
		}
	}()
	return ch
}

// next receives one event from a stream, failing on an error or a stall.
func next(t *testing.T, ch <-chan streamItem) eventlog.Event {
	t.Helper()
	select {
	case it, ok := <-ch:
		if !ok {
			t.Fatal("stream ended")
		}
		if it.err != nil {
			t.Fatalf("stream error: %v", it.err)
		}
		return it.ev
	case <-time.After(30 * time.Second):
		t.Fatal("no confirmed event within 30s")
	}
	return eventlog.Event{}
}

// takeConfirmed reads n events of a stream, then stops it.
func takeConfirmed(t *testing.T, s *livestore.Store, opts livestore.ConfirmedEventsOptions, n int) []eventlog.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []eventlog.Event
	if n == 0 {
		return out
	}
	for ev, err := range s.ConfirmedEvents(ctx, opts) {
		if err != nil {
			t.Fatalf("after %d events: %v", len(out), err)
		}
		out = append(out, ev)
		if len(out) == n {
			break
		}
	}
	return out
}

func seqNames(evs []eventlog.Event) string {
	s := ""
	for _, ev := range evs {
		s += fmt.Sprintf("%s:%s ", ev.SeqNum, ev.Name)
	}
	return s
}

func globalNames(evs []eventlog.Event) string {
	s := ""
	for _, ev := range evs {
		s += fmt.Sprintf("%d:%s:%s ", ev.SeqNum.Global, ev.Name, ev.Args)
	}
	return s
}

func TestConfirmedEventsOrderFilterAndCursor(t *testing.T) {
	a := newTodoApp(t)
	srv := memsync.NewServer()
	s1 := openSynced(t, a.schema, t.TempDir(), syncOpts(srv.NewLink()))
	s2 := openSynced(t, a.schema, t.TempDir(), syncOpts(srv.NewLink()))
	mustCommit(t, s1, a.created.New(todoCreated{ID: "1", Text: "a"}))
	mustCommit(t, s1, a.renamed.New(todoCreated{ID: "1", Text: "+local"}), a.ui.Set("main", map[string]any{"filter": "x"}))
	mustCommit(t, s2, a.created.New(todoCreated{ID: "2", Text: "b"}))
	mustCommit(t, s1, a.completed.New(todoID{ID: "1"}), a.created.New(todoCreated{ID: "3", Text: "c"}))
	waitConvergedState(t, srv, false, s1, s2)

	all := takeConfirmed(t, s1, livestore.ConfirmedEventsOptions{}, 4)
	for i, ev := range all {
		if ev.SeqNum.Global != int64(i+1) || ev.SeqNum.Client != 0 {
			t.Fatalf("event %d is %s: %s", i, ev.SeqNum, seqNames(all))
		}
	}
	server := srv.Events("shared")
	for i, ev := range all {
		if ev.Name != server[i].Name || ev.ClientID != server[i].ClientID {
			t.Fatalf("event %d %s/%s, server has %s/%s", i, ev.Name, ev.ClientID, server[i].Name, server[i].ClientID)
		}
	}
	// The other client sees the same stream (rebase generations are local).
	if got, want := globalNames(takeConfirmed(t, s2, livestore.ConfirmedEventsOptions{}, 4)), globalNames(all); got != want {
		t.Fatalf("s2 stream %s, s1 stream %s", got, want)
	}
	// After a cursor.
	if got, want := seqNames(takeConfirmed(t, s1, livestore.ConfirmedEventsOptions{After: 2}, 2)), seqNames(all[2:]); got != want {
		t.Fatalf("after 2: %s, want %s", got, want)
	}
	// Only some names; the cursor passes over the others.
	only := takeConfirmed(t, s1, livestore.ConfirmedEventsOptions{Names: []string{"v1.TodoCompleted"}}, 1)
	var completedAt int64
	for _, ev := range all {
		if ev.Name == "v1.TodoCompleted" {
			completedAt = ev.SeqNum.Global
		}
	}
	if len(only) != 1 || only[0].Name != "v1.TodoCompleted" || only[0].SeqNum.Global != completedAt {
		t.Fatalf("filtered: %s", seqNames(only))
	}
	// Nothing after the last one: the stream waits, and a new confirmation
	// of the filtered name wakes it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := startStream(ctx, s1, livestore.ConfirmedEventsOptions{After: 4, Names: []string{"v1.TodoCompleted"}})
	mustCommit(t, s2, a.created.New(todoCreated{ID: "4", Text: "d"}), a.completed.New(todoID{ID: "4"}))
	if ev := next(t, ch); ev.SeqNum.Global != 6 || ev.Name != "v1.TodoCompleted" {
		t.Fatalf("woken with %s:%s", ev.SeqNum, ev.Name)
	}
}

// Pending events are not yielded; after a rebase puts another client's
// events first, they come in their confirmed order, each once.
func TestConfirmedEventsWaitsThroughRebase(t *testing.T) {
	a := newTodoApp(t)
	srv := memsync.NewServer()
	l1 := srv.NewLink()
	s1 := openSynced(t, a.schema, t.TempDir(), syncOpts(l1))
	s2 := openSynced(t, a.schema, t.TempDir(), syncOpts(srv.NewLink()))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := startStream(ctx, s1, livestore.ConfirmedEventsOptions{})

	mustCommit(t, s2, a.created.New(todoCreated{ID: "base", Text: "b"}))
	if ev := next(t, ch); ev.SeqNum.Global != 1 || ev.Name != "v1.TodoCreated" {
		t.Fatalf("first event %s", ev.SeqNum)
	}
	l1.SetOnline(false)
	mustCommit(t, s1, a.created.New(todoCreated{ID: "pending", Text: "p"}))
	mustCommit(t, s1, a.renamed.New(todoCreated{ID: "pending", Text: "+local"}))
	mustCommit(t, s2, a.created.New(todoCreated{ID: "up1", Text: "u"}), a.created.New(todoCreated{ID: "up2", Text: "u"}))
	waitConverged(t, srv, s2)
	l1.SetOnline(true)
	waitConvergedState(t, srv, false, s1, s2)
	var got []eventlog.Event
	for range 3 {
		got = append(got, next(t, ch))
	}
	if s := seqNames(got); s != "e2:v1.TodoCreated e3:v1.TodoCreated e4r1:v1.TodoCreated " {
		t.Fatalf("after rebase: %s", s)
	}
	server := srv.Events("shared")
	for i, ev := range got {
		if string(ev.Args) != string(server[i+1].Args) {
			t.Fatalf("event %s args %s, server %s", ev.SeqNum, ev.Args, server[i+1].Args)
		}
	}
	cancel()
	it, ok := <-ch
	if !ok || !errors.Is(it.err, context.Canceled) {
		t.Fatalf("after cancel: %+v %v (pending or duplicate events yielded?)", it, ok)
	}
	if _, ok := <-ch; ok {
		t.Fatal("stream went on after yielding ctx's error")
	}
}

// A store without sync confirms nothing: the stream waits until ctx ends.
func TestConfirmedEventsWithoutSyncWaits(t *testing.T) {
	a := newTodoApp(t)
	for _, dir := range []string{t.TempDir(), ""} {
		s, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		mustCommit(t, s, a.created.New(todoCreated{ID: "1", Text: "a"}))
		ctx, cancel := context.WithCancel(context.Background())
		ch := startStream(ctx, s, livestore.ConfirmedEventsOptions{})
		// Commits wake the stream, which finds nothing confirmed.
		for i := range 3 {
			mustCommit(t, s, a.created.New(todoCreated{ID: fmt.Sprint("more", i), Text: "b"}))
		}
		select {
		case it := <-ch:
			t.Fatalf("dir %q: stream yielded %+v before ctx ended", dir, it)
		case <-time.After(100 * time.Millisecond):
		}
		cancel()
		var items []streamItem
		for it := range ch {
			items = append(items, it)
		}
		if len(items) != 1 || !errors.Is(items[0].err, context.Canceled) {
			t.Fatalf("dir %q: got %+v, want only ctx's error", dir, items)
		}
	}
}

func TestConfirmedEventsStoreClose(t *testing.T) {
	a := newTodoApp(t)
	srv := memsync.NewServer()
	s, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: t.TempDir(), StoreID: "shared", Sync: syncOpts(srv.NewLink())})
	if err != nil {
		t.Fatal(err)
	}
	mustCommit(t, s, a.created.New(todoCreated{ID: "1", Text: "a"}))
	ch := startStream(context.Background(), s, livestore.ConfirmedEventsOptions{})
	if ev := next(t, ch); ev.SeqNum.Global != 1 {
		t.Fatalf("first %s", ev.SeqNum)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	it, ok := <-ch
	if !ok || !errors.Is(it.err, livestore.ErrStoreClosed) {
		t.Fatalf("after close: %+v %v", it, ok)
	}
	if _, ok := <-ch; ok {
		t.Fatal("stream went on after ErrStoreClosed")
	}
	for _, err := range s.ConfirmedEvents(context.Background(), livestore.ConfirmedEventsOptions{}) {
		if !errors.Is(err, livestore.ErrStoreClosed) {
			t.Fatalf("on a closed store: %v", err)
		}
	}
}

// Three clients commit synced and client-only events while going on and off
// line; a consumer of one of them, stopping and resuming from its cursor at
// random, sees every server event exactly once, in order.
func TestConfirmedEventsRandomizedNoDuplicates(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	a := newTodoApp(t)
	srv := memsync.NewServer()
	var links []*memsync.Link
	var stores []*livestore.Store
	for range 3 {
		l := srv.NewLink()
		links = append(links, l)
		stores = append(stores, openSynced(t, a.schema, t.TempDir(), syncOpts(l)))
	}
	type consumed struct {
		evs    []eventlog.Event
		cursor int64
	}
	results := make(chan consumed, 1)
	stopRun := make(chan struct{})
	go func() {
		var c consumed
		defer func() { results <- c }()
		for {
			// Each run handles a random number of events, then resumes
			// from its cursor as a restarted consumer would.
			budget := 1 + rng.Intn(8)
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-stopRun:
					cancel()
				case <-ctx.Done():
				}
			}()
			for ev, err := range stores[0].ConfirmedEvents(ctx, livestore.ConfirmedEventsOptions{After: c.cursor}) {
				if err != nil {
					break
				}
				c.evs = append(c.evs, ev)
				c.cursor = ev.SeqNum.Global
				budget--
				if budget == 0 {
					break
				}
			}
			stopped := ctx.Err() != nil
			cancel()
			if stopped {
				return
			}
		}
	}()
	wrng := rand.New(rand.NewSource(seed + 1))
	online := []bool{true, true, true}
	for i := range 60 {
		k := wrng.Intn(3)
		switch wrng.Intn(6) {
		case 0:
			online[k] = !online[k]
			links[k].SetOnline(online[k])
		case 1:
			mustCommit(t, stores[k], a.renamed.New(todoCreated{ID: "x", Text: fmt.Sprint(i)}))
		default:
			mustCommit(t, stores[k], a.created.New(todoCreated{ID: fmt.Sprint(k, "-", i), Text: "t"}))
		}
	}
	for _, l := range links {
		l.SetOnline(true)
	}
	waitConvergedState(t, srv, false, stores...)
	server := srv.Events("shared")
	// Wait for the consumer to reach the server's head, then stop it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := stores[0].SyncStatus(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.UpstreamHead == int64(len(server)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("store 0 did not catch up")
		}
		time.Sleep(2 * time.Millisecond)
	}
	final := takeConfirmed(t, stores[0], livestore.ConfirmedEventsOptions{}, len(server))
	close(stopRun)
	c := <-results
	// The consumer may have been stopped before handling the last ones;
	// what it handled must be a prefix of the server's log, and resuming
	// from its cursor yields the rest.
	rest := takeConfirmed(t, stores[0], livestore.ConfirmedEventsOptions{After: c.cursor}, len(server)-len(c.evs))
	got := append(c.evs, rest...)
	if len(got) != len(server) || len(final) != len(server) {
		t.Fatalf("consumer handled %d events, one pass %d, server has %d", len(got), len(final), len(server))
	}
	for i, ev := range got {
		sv := server[i]
		if ev.SeqNum.Global != sv.SeqNum || ev.SeqNum.Client != 0 || ev.Name != sv.Name || string(ev.Args) != string(sv.Args) {
			t.Fatalf("event %d: %s %s %s, server %d %s %s", i, ev.SeqNum, ev.Name, ev.Args, sv.SeqNum, sv.Name, sv.Args)
		}
		if final[i].SeqNum != ev.SeqNum {
			t.Fatalf("event %d: one pass %s, consumer %s", i, final[i].SeqNum, ev.SeqNum)
		}
	}
}

// BenchmarkConfirmedEventsCatchUp reads 5000 confirmed events from the start.
func BenchmarkConfirmedEventsCatchUp(b *testing.B) {
	a := newTodoApp(b)
	srv := memsync.NewServer()
	s := openSynced(b, a.schema, b.TempDir(), syncOpts(srv.NewLink()))
	const n = 5000
	for i := 0; i < n; i += 100 {
		var evs []livestore.Event
		for j := range 100 {
			evs = append(evs, a.created.New(todoCreated{ID: fmt.Sprint(i + j), Text: "t"}))
		}
		mustCommit(b, s, evs...)
	}
	waitConvergedState(b, srv, false, s)
	b.ResetTimer()
	for range b.N {
		ctx, cancel := context.WithCancel(context.Background())
		got := 0
		for _, err := range s.ConfirmedEvents(ctx, livestore.ConfirmedEventsOptions{}) {
			if err != nil {
				b.Fatal(err)
			}
			if got++; got == n {
				break
			}
		}
		cancel()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
}
