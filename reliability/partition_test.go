package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/internal/faultproxy"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// testServer is an in-process sync server on loopback.
type testServer struct {
	srv     *syncserver.Server
	http    *httptest.Server
	storage syncserver.Storage
	addr    string // host:port
}

func startTestServer(t testing.TB, opts syncserver.Options) *testServer {
	t.Helper()
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts.Storage = st
	srv, err := syncserver.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.CloseClientConnections()
		srv.Close()
		hs.Close()
		st.Close()
	})
	return &testServer{srv: srv, http: hs, storage: st, addr: strings.TrimPrefix(hs.URL, "http://")}
}

func (s *testServer) url() string { return "ws://" + s.addr }

// log reads a store's log from the server's storage.
func (s *testServer) log(storeID string) ([]syncproto.Event, error) {
	evs, err := s.storage.Read(context.Background(), storeID, 0, 1<<62, 1<<30)
	if err != nil {
		return nil, err
	}
	out := make([]syncproto.Event, len(evs))
	for i, e := range evs {
		out[i] = e.Event
	}
	return out, nil
}

func newProxy(t testing.TB, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(faultproxy.Options{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// heal lifts every fault of a proxy and of its connections.
func heal(p *faultproxy.Proxy) {
	p.Heal()
	for _, c := range p.Conns() {
		c.SetBlackhole(false)
		c.SetStall(false)
		c.SetDelay(0)
	}
}

// TestPartitionsHeal connects four stores to one server, each through its
// own fault proxy, and while they commit, injects random faults of random
// length: partitions (new connections refused, open ones stalled), stalls,
// blackholes (bytes dropped; the damaged connections are reset when it
// ends), cuts, resets and latency, globally or on one connection.
// After healing, every store must hold the server's log and the same state,
// and every event any store committed must be in the server log once.
func TestPartitionsHeal(t *testing.T) {
	rng := seeded(t)
	const storeID = "partition"
	srv := startTestServer(t, syncserver.Options{})
	a := newApp(t)
	n := 4
	proxies := make([]*faultproxy.Proxy, n)
	stores := make([]*livestore.Store, n)
	for i := range stores {
		proxies[i] = newProxy(t, srv.addr)
		stores[i] = openStore(t, a, t.TempDir(), storeID, syncOptions(wsBackend("ws://"+proxies[i].Addr())))
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	commits := make([]int, n)
	for i, s := range stores {
		srng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		wg.Add(1)
		go func() {
			defer wg.Done()
			commits[i] = commitLoop(ctx, t, a, s, fmt.Sprintf("p%d", i), srng, nil)
		}()
	}

	faults := map[string]int{}
	until := time.Now().Add(pick(5*time.Second, 90*time.Second))
	healAt := make([]time.Time, n)
	for time.Now().Before(until) {
		time.Sleep(randDur(rng, 20*time.Millisecond, 250*time.Millisecond))
		for i, p := range proxies {
			if !healAt[i].IsZero() && time.Now().After(healAt[i]) {
				heal(p)
				healAt[i] = time.Time{}
			}
		}
		i := rng.IntN(n)
		p := proxies[i]
		length := randDur(rng, 50*time.Millisecond, pick(1500*time.Millisecond, 5*time.Second))
		switch kind := rng.IntN(8); kind {
		case 0:
			p.Partition()
			healAt[i] = time.Now().Add(length)
			faults["partition"]++
		case 1:
			p.SetStall(true)
			healAt[i] = time.Now().Add(length)
			faults["stall"]++
		case 2:
			p.SetBlackhole(true)
			healAt[i] = time.Now().Add(length)
			faults["blackhole"]++
		case 3:
			faults["cut"] += p.CutAll()
		case 4:
			faults["reset"] += p.ResetAll()
		case 5:
			p.SetDelay(randDur(rng, 5*time.Millisecond, 300*time.Millisecond))
			healAt[i] = time.Now().Add(length)
			faults["delay"]++
		case 6, 7:
			if cs := p.Conns(); len(cs) > 0 {
				c := cs[rng.IntN(len(cs))]
				if kind == 6 {
					c.SetBlackhole(true)
					faults["conn-blackhole"]++
				} else {
					c.SetStall(true)
					faults["conn-stall"]++
				}
				healAt[i] = time.Now().Add(length)
			}
		}
	}
	for _, p := range proxies {
		heal(p)
	}
	stop()
	wg.Wait()

	// Catching up costs a client a rollback and a rebase of all its
	// pending events per group of pages applied; the long form leaves
	// clients with thousands of pending events behind thousands of others.
	log := waitConverged(t, pick(60*time.Second, 5*time.Minute), func() ([]syncproto.Event, error) { return srv.log(storeID) }, stores...)
	checkServerLog(t, log)
	total := 0
	for i, s := range stores {
		if got := countOwned(log, s.ClientID()); got != commits[i] {
			t.Fatalf("store %d committed %d events; the server has %d of them", i, commits[i], got)
		}
		total += commits[i]
	}
	var stats faultproxy.Stats
	for _, p := range proxies {
		s := p.Stats()
		stats.Accepted += s.Accepted
		stats.Refused += s.Refused
		stats.BytesDrop += s.BytesDrop
	}
	t.Logf("faults %v; connections %d (%d refused), %d bytes dropped; %d events committed, server log %d",
		faults, stats.Accepted, stats.Refused, stats.BytesDrop, total, len(log))
}
