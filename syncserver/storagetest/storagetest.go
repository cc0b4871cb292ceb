// Package storagetest is a conformance suite for implementations of
// syncserver.Storage. An implementation's tests call [Run] with a function
// that opens a fresh, empty storage, and [Shared] with two handles on one
// storage's data where it can have several (processes sharing a database,
// a read-only view beside a writer). [Grouped] checks appends a storage
// commits together, [AppendUntilKilled] and [CheckAfterCrash] that
// acknowledged appends survive a crash, and [BenchAppend] measures appends.
// It checks the Storage contract only: the protocol and the server's limits
// are tested in package syncserver.
package storagetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// Chain returns n chained events after seqNum after, with small JSON args.
func Chain(after int64, n int, clientID string) []syncproto.Event {
	out := make([]syncproto.Event, n)
	for i := range out {
		seq := after + int64(i) + 1
		out[i] = syncproto.Event{
			Name:         "v1.Test",
			Args:         json.RawMessage(fmt.Sprintf(`{"n":%d,"by":%q}`, seq, clientID)),
			SeqNum:       seq,
			ParentSeqNum: seq - 1,
			ClientID:     clientID,
			SessionID:    "session-" + clientID,
		}
	}
	return out
}

// Run runs the conformance tests; open must return a new, empty storage
// (and arrange for it to be closed when the test ends).
func Run(t *testing.T, open func(t *testing.T) syncserver.Storage) {
	t.Run("BackendID", func(t *testing.T) { testBackendID(t, open(t)) })
	t.Run("NewStorageNewIDs", func(t *testing.T) { testNewStorageNewIDs(t, open(t), open(t)) })
	t.Run("ReadsCreateNothing", func(t *testing.T) { testReadsCreateNothing(t, open(t)) })
	t.Run("RejectedPushCreatesNothing", func(t *testing.T) { testRejectedPushCreatesNothing(t, open(t)) })
	t.Run("FirstPushKeepsID", func(t *testing.T) { testFirstPushKeepsID(t, open(t)) })
	t.Run("AppendRead", func(t *testing.T) { testAppendRead(t, open(t)) })
	t.Run("ServerAhead", func(t *testing.T) { testServerAhead(t, open(t)) })
	t.Run("ConcurrentAppends", func(t *testing.T) { testConcurrentAppends(t, open(t)) })
	t.Run("Isolation", func(t *testing.T) { testIsolation(t, open(t)) })
	t.Run("Stores", func(t *testing.T) { testStores(t, open(t)) })
	t.Run("CreateStore", func(t *testing.T) { testCreateStore(t, open(t)) })
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func testBackendID(t *testing.T, s syncserver.Storage) {
	c := ctx(t)
	a, err := s.BackendID(c, "store-a")
	if err != nil {
		t.Fatal(err)
	}
	if len(a) < 8 {
		t.Fatalf("backend id %q is too short", a)
	}
	again, err := s.BackendID(c, "store-a")
	if err != nil || again != a {
		t.Fatalf("second BackendID = %q, %v; want %q", again, err, a)
	}
	b, err := s.BackendID(c, "store-b")
	if err != nil || b == a {
		t.Fatalf("store-b backend id = %q, %v; must differ from %q", b, err, a)
	}
	head, err := s.Head(c, "unknown-store")
	if err != nil || head != 0 {
		t.Fatalf("Head(unknown) = %d, %v", head, err)
	}
}

// testNewStorageNewIDs: a storage created afresh (as after wiping one)
// gives a store id another backend id, so clients notice the reset.
func testNewStorageNewIDs(t *testing.T, s1, s2 syncserver.Storage) {
	c := ctx(t)
	a, err := s1.BackendID(c, "same")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s2.BackendID(c, "same")
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two new storages give store \"same\" one backend id %q", a)
	}
}

// assertNoStores fails unless s lists no stores (when it can list them).
func assertNoStores(t *testing.T, s syncserver.Storage) {
	t.Helper()
	l, ok := s.(syncserver.StoreLister)
	if !ok {
		return
	}
	got, err := l.Stores(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("stores = %+v, want none", got)
	}
}

// testReadsCreateNothing: what a pull of a store that does not exist does
// (backend id, head, count, read) writes nothing.
func testReadsCreateNothing(t *testing.T, s syncserver.Storage) {
	c := ctx(t)
	for i := range 20 {
		store := fmt.Sprintf("missing-%d", i)
		if _, err := s.BackendID(c, store); err != nil {
			t.Fatal(err)
		}
		if head, err := s.Head(c, store); err != nil || head != 0 {
			t.Fatalf("Head(%s) = %d, %v", store, head, err)
		}
		if n, err := s.Count(c, store, 0, 1<<40); err != nil || n != 0 {
			t.Fatalf("Count(%s) = %d, %v", store, n, err)
		}
		if evs, err := s.Read(c, store, 0, 1<<40, 100); err != nil || len(evs) != 0 {
			t.Fatalf("Read(%s) = %v, %v", store, evs, err)
		}
	}
	assertNoStores(t, s)
}

// testRejectedPushCreatesNothing: a push to a missing store not based on
// e0 is refused with head 0 and leaves no store behind.
func testRejectedPushCreatesNothing(t *testing.T, s syncserver.Storage) {
	c := ctx(t)
	before, err := s.BackendID(c, "refused")
	if err != nil {
		t.Fatal(err)
	}
	for _, parent := range []int64{1, 5} {
		err := s.Append(c, "refused", Chain(parent, 2, "c1"), time.Now())
		var ahead *syncproto.ServerAheadError
		if !errors.As(err, &ahead) || *ahead != (syncproto.ServerAheadError{MinimumExpectedNum: 0, ProvidedNum: parent}) {
			t.Fatalf("Append on parent %d to a missing store: %v, want ServerAheadError{0, %d}", parent, err, parent)
		}
	}
	assertNoStores(t, s)
	if after, err := s.BackendID(c, "refused"); err != nil || after != before {
		t.Fatalf("backend id after refused pushes = %q, %v; want %q", after, err, before)
	}
	if n, err := s.Count(c, "refused", 0, 1<<40); err != nil || n != 0 {
		t.Fatalf("Count after refused pushes = %d, %v", n, err)
	}
}

// testFirstPushKeepsID: the id a missing store reports is the id its first
// accepted push gives it, so a client that pulled the empty store keeps a
// valid cursor.
func testFirstPushKeepsID(t *testing.T, s syncserver.Storage) {
	c := ctx(t)
	before, err := s.BackendID(c, "first")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(c, "first", Chain(0, 2, "c1"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if after, err := s.BackendID(c, "first"); err != nil || after != before {
		t.Fatalf("backend id after the first push = %q, %v; reported %q before", after, err, before)
	}
	if l, ok := s.(syncserver.StoreLister); ok {
		got, err := l.Stores(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].StoreID != "first" || got[0].BackendID != before || got[0].Head != 2 {
			t.Fatalf("stores = %+v", got)
		}
	}
}

// Shared checks two handles on one storage's data (two processes on one
// database, or a writer and a read-only view): they report the same backend
// id for a store that does not exist yet, the store gets it when a's first
// push is accepted, and b sees that push. Only a is written to.
func Shared(t *testing.T, a, b syncserver.Storage) {
	c := ctx(t)
	for _, store := range []string{"shared-1", "shared-2"} {
		idA, err := a.BackendID(c, store)
		if err != nil {
			t.Fatal(err)
		}
		idB, err := b.BackendID(c, store)
		if err != nil {
			t.Fatal(err)
		}
		if idA != idB {
			t.Fatalf("store %s: backend id %q from one handle, %q from the other", store, idA, idB)
		}
	}
	before, _ := b.BackendID(c, "shared-1")
	if err := a.Append(c, "shared-1", Chain(0, 3, "c1"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if id, err := b.BackendID(c, "shared-1"); err != nil || id != before {
		t.Fatalf("backend id after the first push = %q, %v; want %q", id, err, before)
	}
	if head, err := b.Head(c, "shared-1"); err != nil || head != 3 {
		t.Fatalf("head seen by the other handle = %d, %v; want 3", head, err)
	}
}

func testAppendRead(t *testing.T, s syncserver.Storage) {
	c := ctx(t)
	created := time.Date(2025, 3, 4, 5, 6, 7, 891_000_000, time.UTC)
	batch := Chain(0, 5, "c1")
	batch[1].Args = nil                              // JSON null
	batch[2].Args = json.RawMessage(`"a<b>&\u00e9"`) // kept as sent
	if err := s.Append(c, "s", batch, created); err != nil {
		t.Fatal(err)
	}
	// Append on a store never seen before creates it.
	if id, err := s.BackendID(c, "s"); err != nil || id == "" {
		t.Fatalf("BackendID after Append = %q, %v", id, err)
	}
	later := created.Add(time.Second)
	if err := s.Append(c, "s", Chain(5, 3, "c2"), later); err != nil {
		t.Fatal(err)
	}
	head, err := s.Head(c, "s")
	if err != nil || head != 8 {
		t.Fatalf("Head = %d, %v; want 8", head, err)
	}
	all, err := s.Read(c, "s", 0, 100, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 8 {
		t.Fatalf("read %d events, want 8", len(all))
	}
	for i, ev := range all {
		want := batch
		at := created
		j := i
		if i >= 5 {
			want, at, j = Chain(5, 3, "c2"), later, i-5
		}
		got := ev.Event
		if got.SeqNum != want[j].SeqNum || got.ParentSeqNum != want[j].ParentSeqNum || got.Name != want[j].Name ||
			got.ClientID != want[j].ClientID || got.SessionID != want[j].SessionID || string(got.Args) != string(want[j].Args) {
			t.Errorf("event %d = %+v (args %s), want %+v (args %s)", i, got, got.Args, want[j], want[j].Args)
		}
		if !ev.CreatedAt.Equal(at) {
			t.Errorf("event %d createdAt = %v, want %v", i, ev.CreatedAt, at)
		}
	}
	page, err := s.Read(c, "s", 2, 6, 3)
	if err != nil || len(page) != 3 || page[0].SeqNum != 3 || page[2].SeqNum != 5 {
		t.Fatalf("Read(2, 6, limit 3) = %d events, %v", len(page), err)
	}
	page, err = s.Read(c, "s", 6, 7, 100)
	if err != nil || len(page) != 1 || page[0].SeqNum != 7 {
		t.Fatalf("Read(6, 7) = %v, %v", page, err)
	}
	for _, tc := range []struct{ after, upTo, want int64 }{{0, 8, 8}, {3, 8, 5}, {3, 5, 2}, {8, 8, 0}, {0, 100, 8}} {
		n, err := s.Count(c, "s", tc.after, tc.upTo)
		if err != nil || n != tc.want {
			t.Errorf("Count(%d, %d) = %d, %v; want %d", tc.after, tc.upTo, n, err, tc.want)
		}
	}
	if err := s.Append(c, "s", nil, created); err != nil {
		t.Errorf("empty Append: %v", err)
	}
}

func testServerAhead(t *testing.T, s syncserver.Storage) {
	c := ctx(t)
	if err := s.Append(c, "s", Chain(0, 4, "c1"), time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, parent := range []int64{0, 2, 7} {
		batch := Chain(parent, 2, "c2")
		err := s.Append(c, "s", batch, time.Now())
		var ahead *syncproto.ServerAheadError
		if !errors.As(err, &ahead) || *ahead != (syncproto.ServerAheadError{MinimumExpectedNum: 4, ProvidedNum: parent}) {
			t.Errorf("Append on parent %d: err = %v, want ServerAheadError{4, %d}", parent, err, parent)
		}
	}
	if n, _ := s.Count(c, "s", 0, 1000); n != 4 {
		t.Errorf("%d events after refused appends, want 4", n)
	}
	if head, _ := s.Head(c, "s"); head != 4 {
		t.Errorf("head = %d after refused appends, want 4", head)
	}
}

// testConcurrentAppends races writers on one head: exactly one batch per
// head wins and the log stays gap-free.
func testConcurrentAppends(t *testing.T, s syncserver.Storage) {
	c := ctx(t)
	const writers, rounds = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := fmt.Sprintf("w%d", w)
			for range rounds {
				for {
					head, err := s.Head(c, "race")
					if err != nil {
						errs <- err
						return
					}
					err = s.Append(c, "race", Chain(head, 3, client), time.Now())
					var ahead *syncproto.ServerAheadError
					if errors.As(err, &ahead) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	events, err := s.Read(c, "race", 0, 1<<40, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != writers*rounds*3 {
		t.Fatalf("%d events, want %d", len(events), writers*rounds*3)
	}
	for i, ev := range events {
		if ev.SeqNum != int64(i+1) || ev.ParentSeqNum != int64(i) {
			t.Fatalf("event %d has seqNum %d parent %d", i, ev.SeqNum, ev.ParentSeqNum)
		}
		// Batches are never interleaved.
		if i%3 != 0 && ev.ClientID != events[i-1].ClientID {
			t.Fatalf("event %d from %s inside a batch of %s", i, ev.ClientID, events[i-1].ClientID)
		}
	}
}

func testIsolation(t *testing.T, s syncserver.Storage) {
	c := ctx(t)
	if err := s.Append(c, "one", Chain(0, 3, "a"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(c, "two", Chain(0, 1, "b"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if head, _ := s.Head(c, "two"); head != 1 {
		t.Fatalf("head of two = %d", head)
	}
	evs, err := s.Read(c, "two", 0, 10, 10)
	if err != nil || len(evs) != 1 || evs[0].ClientID != "b" {
		t.Fatalf("read two = %v, %v", evs, err)
	}
}

func testStores(t *testing.T, s syncserver.Storage) {
	l, ok := s.(syncserver.StoreLister)
	if !ok {
		t.Fatalf("%T does not list its stores", s)
	}
	c := ctx(t)
	idB, err := s.BackendID(c, "b-store")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.BackendID(c, "c-store"); err != nil { // asked for, never pushed to
		t.Fatal(err)
	}
	if err := s.Append(c, "b-store", Chain(0, 3, "c1"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if cr, ok := s.(syncserver.StoreCreator); ok {
		if err := cr.CreateStore(c, "a-store", "backend-a"); err != nil {
			t.Fatal(err)
		}
	} else if err := s.Append(c, "a-store", Chain(0, 1, "c1"), time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := l.Stores(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].StoreID != "a-store" || got[1].StoreID != "b-store" ||
		got[1].Head != 3 || got[1].BackendID != idB || got[1].CreatedAt.IsZero() {
		t.Fatalf("stores = %+v", got)
	}
}

func testCreateStore(t *testing.T, s syncserver.Storage) {
	cr, ok := s.(syncserver.StoreCreator)
	if !ok {
		t.Fatalf("%T cannot create stores with a given backend id", s)
	}
	c := ctx(t)
	if err := cr.CreateStore(c, "moved", "backend-1"); err != nil {
		t.Fatal(err)
	}
	if id, err := s.BackendID(c, "moved"); err != nil || id != "backend-1" {
		t.Fatalf("backend id %q, %v", id, err)
	}
	// Creating it again with the same id is a no-op; events stay.
	if err := s.Append(c, "moved", Chain(0, 2, "c1"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := cr.CreateStore(c, "moved", "backend-1"); err != nil {
		t.Fatal(err)
	}
	if head, err := s.Head(c, "moved"); err != nil || head != 2 {
		t.Fatalf("head %d, %v", head, err)
	}
	// Another id is a conflict, and changes nothing.
	err := cr.CreateStore(c, "moved", "backend-2")
	var conflict *syncserver.BackendIDConflictError
	if !errors.As(err, &conflict) || conflict.Existing != "backend-1" || conflict.Wanted != "backend-2" {
		t.Fatalf("create with another backend id: %v", err)
	}
	if id, err := s.BackendID(c, "moved"); err != nil || id != "backend-1" {
		t.Fatalf("backend id after conflict %q, %v", id, err)
	}
	// A store created by a push has the id it reported before, which
	// CreateStore then reports.
	fresh, err := s.BackendID(c, "used")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(c, "used", Chain(0, 1, "c1"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := cr.CreateStore(c, "used", "backend-3"); !errors.As(err, &conflict) || conflict.Existing != fresh {
		t.Fatalf("create over a used store: %v", err)
	}
	// A missing store is created with the id asked for, not the derived one.
	if err := cr.CreateStore(c, "asked", "backend-4"); err != nil {
		t.Fatal(err)
	}
	if id, err := s.BackendID(c, "asked"); err != nil || id != "backend-4" {
		t.Fatalf("backend id of a created store = %q, %v", id, err)
	}
	if err := cr.CreateStore(c, "empty-id", ""); err == nil {
		t.Fatal("empty backend id accepted")
	}
}
