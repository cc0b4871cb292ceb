package reliability

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver/pgstore/pgtest"
)

// rotatingBackend is a SyncBackend over several server replicas: it connects
// to the replica it used last and, when that fails, to the next one that
// answers.
type rotatingBackend struct {
	urls     []string
	next     atomic.Int64
	connects []atomic.Int64 // successful connects per replica
}

func newRotatingBackend(first int, urls ...string) *rotatingBackend {
	b := &rotatingBackend{urls: urls, connects: make([]atomic.Int64, len(urls))}
	b.next.Store(int64(first))
	return b
}

func (b *rotatingBackend) Connect(ctx context.Context, storeID string, payload json.RawMessage) (livestore.SyncConn, error) {
	start := b.next.Load()
	var errs []error
	for i := range int64(len(b.urls)) {
		k := (start + i) % int64(len(b.urls))
		conn, err := wsBackend(b.urls[k]).Connect(ctx, storeID, payload)
		if err == nil {
			b.next.Store(k)
			b.connects[k].Add(1)
			return conn, nil
		}
		errs = append(errs, err)
	}
	b.next.Store((start + 1) % int64(len(b.urls)))
	return nil, errors.Join(errs...)
}

// TestPostgresReplicaKilled runs three `livestore serve --postgres`
// replicas on one database (a schema of its own), spreads six stores and
// two raw clients over them, and SIGKILLs a random replica while the others
// go on; the killed replica is restarted before the next kill. Stores
// reconnect to another replica through a rotating backend. In the end the
// log in PostgreSQL has no gap and no event twice, holds every acknowledged
// event and every committed one, and every store holds exactly that log and
// the same state.
func TestPostgresReplicaKilled(t *testing.T) {
	rng := seeded(t)
	pgURL := pgtest.URL(t)
	schema := pgtest.Schema(t)
	const storeID = "replicas"
	replicas := make([]*serveProc, 3)
	urls := make([]string, len(replicas))
	for i := range replicas {
		// One at a time: the first creates the tables.
		replicas[i] = startServe(t, freeAddr(t), "--postgres", pgURL, "--pg-schema", schema)
		urls[i] = replicas[i].url()
	}
	pg := pgtest.Open(t, schema)
	serverLog := func() ([]syncproto.Event, error) {
		evs, err := pg.Read(context.Background(), storeID, 0, 1<<62, 1<<30)
		if err != nil {
			return nil, err
		}
		out := make([]syncproto.Event, len(evs))
		for i, e := range evs {
			out[i] = e.Event
		}
		return out, nil
	}
	a := newApp(t)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	stores := make([]*livestore.Store, 6)
	backends := make([]*rotatingBackend, len(stores))
	trackers := make([]*ackTracker, len(stores))
	commits := make([]int, len(stores))
	for i := range stores {
		backends[i] = newRotatingBackend(i%len(urls), urls...)
		stores[i] = openStore(t, a, t.TempDir(), storeID, syncOptions(backends[i]))
		trackers[i] = newAckTracker(stores[i])
		srng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		wg.Add(1)
		go func() {
			defer wg.Done()
			commits[i] = commitLoop(ctx, t, a, stores[i], fmt.Sprintf("pg%d", i), srng, trackers[i])
		}()
	}
	pushers := make([]*rawPusher, 2)
	for i := range pushers {
		pushers[i] = newRawPusher(fmt.Sprintf("pgraw%d", i), urls[i], storeID, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())))
		wg.Add(1)
		go func() {
			defer wg.Done()
			pushers[i].run(ctx)
		}()
	}

	kills := pick(2, 12)
	for k := 0; k < kills; k++ {
		time.Sleep(randDur(rng, 300*time.Millisecond, 1200*time.Millisecond))
		victim := rng.IntN(len(replicas))
		replicas[victim].kill()
		// The others carry on alone for a while.
		time.Sleep(randDur(rng, 300*time.Millisecond, 1500*time.Millisecond))
		replicas[victim].start()
	}
	time.Sleep(randDur(rng, 200*time.Millisecond, 600*time.Millisecond))
	stop()
	wg.Wait()

	log := waitConverged(t, 60*time.Second, serverLog, stores...)
	keys := checkServerLog(t, log)
	acked := 0
	for i, tr := range trackers {
		if err := tr.poll(context.Background()); err != nil {
			t.Fatal(err)
		}
		checkAcked(t, keys, tr.acked, fmt.Sprintf("store %d", i))
		acked += len(tr.acked)
		if n := countOwned(log, stores[i].ClientID()); n != commits[i] {
			t.Fatalf("store %d committed %d events; the server has %d of them", i, commits[i], n)
		}
	}
	for _, p := range pushers {
		checkAcked(t, keys, p.acked, p.name)
		acked += len(p.acked)
	}
	connects := make([]int64, len(urls))
	for _, b := range backends {
		for k := range connects {
			connects[k] += b.connects[k].Load()
		}
	}
	t.Logf("%d replica kills; server log %d events, %d acknowledged events found; store connections per replica %v",
		kills, len(log), acked, connects)
}
