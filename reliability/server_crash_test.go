package reliability

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// TestServerKilledDuringPushes runs `livestore serve` on a SQLite data
// directory while three Go stores and two raw protocol clients push
// concurrently, kills the server with SIGKILL at random moments and restarts
// it on the same data and port. Afterwards: no acknowledged event is lost
// (confirmed in a store's sync status, or a raw Push that returned nil), the
// server log has no gap and no event twice, and every store holds exactly the
// server's log and the same state, equal to a rebuild from its eventlog.
func TestServerKilledDuringPushes(t *testing.T) {
	rng := seeded(t)
	kills := pick(3, 20)
	const storeID = "crash"
	dataDir := t.TempDir()
	srv := startServe(t, freeAddr(t), "--data", dataDir)
	url := srv.url()
	a := newApp(t)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup

	stores := make([]*livestore.Store, 3)
	trackers := make([]*ackTracker, len(stores))
	commits := make([]int, len(stores))
	for i := range stores {
		stores[i] = openStore(t, a, t.TempDir(), storeID, syncOptions(wsBackend(url)))
		trackers[i] = newAckTracker(stores[i])
		srng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		wg.Add(1)
		go func() {
			defer wg.Done()
			commits[i] = commitLoop(ctx, t, a, stores[i], fmt.Sprintf("s%d", i), srng, trackers[i])
		}()
	}
	pushers := make([]*rawPusher, 2)
	for i := range pushers {
		pushers[i] = newRawPusher(fmt.Sprintf("raw%d", i), url, storeID, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())))
		wg.Add(1)
		go func() {
			defer wg.Done()
			pushers[i].run(ctx)
		}()
	}

	for k := 0; k < kills; k++ {
		time.Sleep(randDur(rng, 150*time.Millisecond, 700*time.Millisecond))
		srv.kill()
		time.Sleep(randDur(rng, 0, 300*time.Millisecond))
		srv.start()
	}
	time.Sleep(randDur(rng, 100*time.Millisecond, 400*time.Millisecond))
	stop()
	wg.Wait()

	log := waitConverged(t, 60*time.Second, func() ([]syncproto.Event, error) { return pullLog(url, storeID) }, stores...)
	keys := checkServerLog(t, log)
	ackedStores, ackedRaw := 0, 0
	for i, tr := range trackers {
		if err := tr.poll(context.Background()); err != nil {
			t.Fatal(err)
		}
		checkAcked(t, keys, tr.acked, fmt.Sprintf("store %d", i))
		ackedStores += len(tr.acked)
		// Every commit of a store reaches the server eventually.
		if n := countOwned(log, stores[i].ClientID()); n != commits[i] {
			t.Fatalf("store %d committed %d events, the server has %d of them", i, commits[i], n)
		}
	}
	for _, p := range pushers {
		checkAcked(t, keys, p.acked, p.name)
		ackedRaw += len(p.acked)
	}

	// The data directory read directly agrees with what the server served.
	srv.kill()
	st, err := sqlitestore.Open(filepath.Join(dataDir, "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored, err := st.Read(context.Background(), storeID, 0, 1<<62, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	onDisk := make([]syncproto.Event, len(stored))
	for i, e := range stored {
		onDisk[i] = e.Event
	}
	if d := logDiff(onDisk, log); d != "" {
		t.Fatalf("server database differs from the served log: %s", d)
	}
	rawPushes, rawFailures := 0, 0
	for _, p := range pushers {
		rawPushes += p.pushes
		rawFailures += p.failures
	}
	t.Logf("%d SIGKILLs; server log %d events; acknowledged and found: %d store events, %d raw events; raw pushes %d (%d failed)",
		kills, len(log), ackedStores, ackedRaw, rawPushes, rawFailures)
}

// commitLoop commits small batches (new items, edits of earlier ones) until
// ctx ends, polling the ack tracker in between, and returns the number of
// synced events committed.
func commitLoop(ctx context.Context, t testing.TB, a *app, s *livestore.Store, name string, rng *rand.Rand, tr *ackTracker) int {
	n, edits := 0, 0
	for ctx.Err() == nil {
		var evs []livestore.Event
		for i, k := 0, 1+rng.IntN(3); i < k; i++ {
			if n > 0 && rng.IntN(4) == 0 {
				edits++
				evs = append(evs, a.edited.New(itemEdited{ID: fmt.Sprintf("%s-%d", name, 1+rng.IntN(n)), Text: fmt.Sprintf("%s-edit%d", name, edits)}))
				continue
			}
			n++
			evs = append(evs, a.added.New(itemAdded{ID: fmt.Sprintf("%s-%d", name, n), Text: "item", Owner: name}))
		}
		if err := s.Commit(context.Background(), evs...); err != nil {
			t.Errorf("%s: commit: %v", name, err)
			return n + edits
		}
		if tr != nil {
			if err := tr.poll(context.Background()); err != nil {
				t.Errorf("%s: sync status: %v", name, err)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(randDur(rng, 0, 15*time.Millisecond)):
		}
	}
	return n + edits
}

// countOwned counts the events of one client in a log.
func countOwned(log []syncproto.Event, clientID string) int {
	n := 0
	for _, ev := range log {
		if ev.ClientID == clientID {
			n++
		}
	}
	return n
}

// pullLog reads a store's whole log from a server with a non-live pull.
func pullLog(url, storeID string) ([]syncproto.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := syncclient.Dial(ctx, url, syncclient.Options{StoreID: storeID, PingInterval: -1})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	st, err := c.Pull(ctx, nil, false)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var out []syncproto.Event
	for {
		page, err := st.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		for _, it := range page.Batch {
			out = append(out, it.Event)
		}
	}
}
