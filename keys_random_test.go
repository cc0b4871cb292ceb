package livestore_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/memsync"
)

var (
	keyRounds = flag.Int("keys.rounds", 2, "rounds of the randomized invalidation test per mode")
	keySeed   = flag.Int64("keys.seed", 0, "seed of the randomized invalidation test (0: time-based)")
	keySteps  = flag.Int("keys.steps", 120, "steps per round of the randomized invalidation test")
	keyTrace  = flag.Bool("keys.trace", false, "print the writes of the randomized invalidation test")
)

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// probe is one live query of the randomized invalidation test: its value
// read through the reactive graph (get), computed from scratch (fresh), and
// the last value its subscriber received.
type probe struct {
	label string
	get   func(context.Context) (string, error)
	fresh func(context.Context) (string, error)

	mu      sync.Mutex
	last    string
	changed chan struct{} // signalled after each delivery
}

func (p *probe) deliver(v any) {
	b, _ := json.Marshal(v)
	p.mu.Lock()
	p.last = string(b)
	p.mu.Unlock()
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

func (p *probe) lastSeen() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

func jsonOf[T any](v T, err error) (string, error) {
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// addProbe subscribes to q; fresh computes q's value without the graph.
func addProbe[T any](t *testing.T, s *livestore.Store, label string, q livestore.Queryable[T], fresh func(context.Context) (T, error)) *probe {
	t.Helper()
	p := &probe{label: label, changed: make(chan struct{}, 1)}
	p.get = func(ctx context.Context) (string, error) { return jsonOf(livestore.Get(ctx, s, q)) }
	p.fresh = func(ctx context.Context) (string, error) { return jsonOf(fresh(ctx)) }
	un, err := livestore.Subscribe(context.Background(), s, q, func(v T) { p.deliver(v) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(un)
	return p
}

func rowsProbe[T any](t *testing.T, s *livestore.Store, label string, st livestore.Statement) *probe {
	return addProbe(t, s, label, livestore.QueryDB[T](st, label), func(ctx context.Context) ([]T, error) {
		return livestore.Query[T](ctx, s, st)
	})
}

func firstProbe[T any](t *testing.T, s *livestore.Store, label string, st livestore.Statement) *probe {
	var zero T
	return addProbe(t, s, label, livestore.QueryDBFirst(st, zero, label), func(ctx context.Context) (T, error) {
		v, _, err := livestore.First(ctx, s, st, zero)
		return v, err
	})
}

// keyProbes subscribes to live queries pinned to keys and to unpinned ones
// over the same tables.
func keyProbes(t *testing.T, s *livestore.Store, a *keyApp) []*probe {
	eq := livestore.Eq
	var ps []*probe
	for k := 0; k < 8; k++ {
		id := fmt.Sprint("k", k)
		ps = append(ps, firstProbe[keyItem](t, s, "item "+id, a.items.Where(eq("id", id))))
		ps = append(ps, firstProbe[keyNum](t, s, fmt.Sprint("num ", k), a.nums.Where(eq("id", k))))
	}
	ps = append(ps,
		rowsProbe[keyItem](t, s, "rows k1", a.items.Where(eq("id", "k1"))),
		rowsProbe[keyItem](t, s, "in k1 k3 k5", a.items.Where(livestore.In("id", "k1", "k3", "k5")).OrderBy("id")),
		rowsProbe[keyItem](t, s, "in nothing", a.items.Where(livestore.In("id"))),
		rowsProbe[countOf](t, s, "count k2", a.items.Count(eq("id", "k2"))),
		rowsProbe[keyItem](t, s, "k4 and v>2", a.items.Where(eq("id", "k4"), livestore.Gt("v", 2))),
		rowsProbe[keyItem](t, s, "all items", a.items.Select().OrderBy("id")),
		rowsProbe[keyItem](t, s, "v>4", a.items.Where(livestore.Gt("v", 4)).OrderBy("id")),
		rowsProbe[keyItem](t, s, "u=1", a.items.Where(eq("u", 1))),
		rowsProbe[countOf](t, s, "count items", a.items.Count()),
		rowsProbe[keyItem](t, s, "raw k3", livestore.SQL("SELECT * FROM items WHERE id = ?", "k3")),
		rowsProbe[keyNum](t, s, "all nums", a.nums.Select().OrderBy("id")),
		rowsProbe[keyPair](t, s, "pairs x", a.pairs.Where(eq("a", "x")).OrderBy("b")),
		rowsProbe[keyPair](t, s, "pair x 1", a.pairs.Where(eq("a", "x"), eq("b", 1))),
		rowsProbe[map[string]any](t, s, "doc d1", a.ui.Table.Where(eq("id", "d1"))),
	)
	k6 := livestore.QueryDBFirst(a.items.Where(eq("id", "k6")), keyItem{})
	mapped := livestore.MapQuery(k6, func(r keyItem) int { return r.V }, "k6 mapped")
	ps = append(ps, addProbe(t, s, "k6 mapped", mapped, func(ctx context.Context) (int, error) {
		r, _, err := livestore.First(ctx, s, a.items.Where(eq("id", "k6")), keyItem{})
		return r.V, err
	}))
	k7 := livestore.QueryDBFirst(a.items.Where(eq("id", "k7")), keyItem{})
	n5 := livestore.QueryDBFirst(a.nums.Where(eq("id", 5)), keyNum{})
	sum := livestore.NewComputed(func(g *livestore.Getter) (string, error) {
		i, err := livestore.Use(g, k7)
		if err != nil {
			return "", err
		}
		n, err := livestore.Use(g, n5)
		return fmt.Sprint(i.V, n.Label), err
	}, "k7+n5")
	ps = append(ps, addProbe(t, s, "k7+n5", sum, func(ctx context.Context) (string, error) {
		i, _, err := livestore.First(ctx, s, a.items.Where(eq("id", "k7")), keyItem{})
		if err != nil {
			return "", err
		}
		n, _, err := livestore.First(ctx, s, a.nums.Where(eq("id", 5)), keyNum{})
		return fmt.Sprint(i.V, n.Label), err
	}))
	return ps
}

// randomKeyOp returns a random write; fails says it makes its commit fail.
func randomKeyOp(rng *rand.Rand, a *keyApp) (ev livestore.Event, fails bool) {
	k := func() string { return fmt.Sprint("k", rng.Intn(8)) }
	var u *int
	if rng.Intn(2) == 0 {
		n := rng.Intn(3)
		u = &n
	}
	ops := []keyOp{
		{Kind: "put", ID: k(), V: rng.Intn(10)},
		{Kind: "put", ID: k(), V: rng.Intn(10)},
		{Kind: "set", ID: k(), V: rng.Intn(10)},
		{Kind: "set", ID: k(), V: rng.Intn(10)},
		{Kind: "del", ID: k()},
		{Kind: "rekey", ID: k(), To: k()},
		{Kind: "replace", ID: k(), V: rng.Intn(10), U: u},
		{Kind: "bulk", V: rng.Intn(3)},
		{Kind: "purge", V: 5 + rng.Intn(5)},
		{Kind: "num", N: int64(rng.Intn(8)), ID: fmt.Sprint("n", rng.Intn(100))},
		{Kind: "numdel", N: int64(rng.Intn(8))},
		{Kind: "numbump", N: int64(rng.Intn(8))},
		{Kind: "pair", ID: []string{"x", "y"}[rng.Intn(2)], N: int64(rng.Intn(3)), V: rng.Intn(10)},
		{Kind: "pairdel", N: int64(rng.Intn(3))},
	}
	switch r := rng.Intn(100); {
	case r < 3:
		return a.op.New(keyOp{Kind: "clear"}), false
	case r < 8:
		return a.op.New(keyOp{Kind: "fail", ID: k(), V: 99}), true
	case r < 12:
		return a.ui.Set(fmt.Sprint("d", rng.Intn(2)), map[string]any{"filter": fmt.Sprint(rng.Intn(5))}), false
	}
	return a.op.New(ops[rng.Intn(len(ops))]), false
}

// commitRandom commits a random batch and checks that it failed exactly
// when it held a failing write.
func commitRandom(ctx context.Context, rng *rand.Rand, a *keyApp, s *livestore.Store) error {
	var evs []livestore.Event
	fails := false
	for i := rng.Intn(3); i >= 0; i-- {
		ev, f := randomKeyOp(rng, a)
		evs = append(evs, ev)
		fails = fails || f
	}
	err := s.Commit(ctx, evs...)
	if *keyTrace {
		for _, ev := range evs {
			fmt.Printf("  commit %s %s -> %v\n", ev.Name, mustJSON(ev.Args), err)
		}
	}
	switch {
	case fails && !errors.Is(err, errKeyOpFails):
		return fmt.Errorf("commit with a failing write: %v", err)
	case !fails && err != nil:
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// checkProbes compares, for every probe, the value read through the graph
// and the last value its subscriber received with the value computed from
// scratch.
func checkProbes(t *testing.T, step int, ps []*probe) {
	t.Helper()
	ctx := context.Background()
	for _, p := range ps {
		want, err := p.fresh(ctx)
		if err != nil {
			t.Fatalf("step %d: %s: %v", step, p.label, err)
		}
		got, err := p.get(ctx)
		if err != nil {
			t.Fatalf("step %d: %s: %v", step, p.label, err)
		}
		if got != want {
			t.Fatalf("step %d: %s: live value %s, from scratch %s", step, p.label, got, want)
		}
		// Deliveries are asynchronous: wait for the subscriber to catch up.
		deadline := time.After(30 * time.Second)
		for p.lastSeen() != want {
			select {
			case <-p.changed:
			case <-deadline:
				t.Fatalf("step %d: %s: subscriber's last value %s, want %s", step, p.label, p.lastSeen(), want)
			}
		}
	}
}

// TestKeyInvalidationRandomized runs random writes (by key, by raw SQL over
// many rows, key changes, replaced unique rows, whole-table deletes, failing
// commits, concurrent commits sharing a transaction, rebuilds and, when
// synced, rebases that roll local commits back) against live queries
// pinned to keys and unpinned ones, and after every step compares each
// query's live value and its subscriber's last value with the query run
// from scratch.
func TestKeyInvalidationRandomized(t *testing.T) {
	seed := *keySeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun with -keys.seed=%d)", seed, seed)
	for _, synced := range []bool{false, true} {
		for round := 0; round < *keyRounds; round++ {
			rng := rand.New(rand.NewSource(seed + int64(round)))
			name := fmt.Sprintf("local/round%d", round)
			if synced {
				name = fmt.Sprintf("synced/round%d", round)
			}
			if !t.Run(name, func(t *testing.T) { randomKeyRound(t, rng, synced) }) {
				t.Fatalf("failed with seed %d round %d", seed, round)
			}
		}
	}
}

func randomKeyRound(t *testing.T, rng *rand.Rand, synced bool) {
	a := newKeyApp(t)
	ctx := context.Background()
	var s, other *livestore.Store
	var link *memsync.Link
	var srv *memsync.Server
	if synced {
		srv = memsync.NewServer()
		link = srv.NewLink()
		s = openSynced(t, a.schema, t.TempDir(), syncOpts(link))
		other = openSynced(t, a.schema, t.TempDir(), syncOpts(srv.NewLink()))
	} else {
		s = openStore(t, a.schema, t.TempDir())
		// With 10, items (more pinned queries) is read by row and nums
		// (fewer) as a whole.
		livestore.SetMinRowPins(s, []int{1, 10}[rng.Intn(2)])
	}
	ps := keyProbes(t, s, a)
	checkProbes(t, 0, ps)
	online := true
	for step := 1; step <= *keySteps; step++ {
		switch r := rng.Intn(100); {
		case synced && r < 10:
			// Offline, the other client commits too; back online, this
			// client rolls its pending commits back and replays them
			// after the other's.
			online = !online
			link.SetOnline(online)
			if online {
				waitConvergedState(t, srv, false, s, other)
			}
		case synced && r < 25 && !online:
			if err := commitRandom(ctx, rng, a, other); err != nil {
				t.Fatalf("step %d: other client: %v", step, err)
			}
			continue // nothing changed here
		case !synced && r < 2:
			if err := s.Rematerialize(ctx); err != nil {
				t.Fatal(err)
			}
		case r < 35:
			concurrentCommits(t, step, rng, a, s)
		default:
			if err := commitRandom(ctx, rng, a, s); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
		if *keyTrace {
			fmt.Println("step", step)
		}
		checkProbes(t, step, ps)
	}
}

// concurrentCommits commits random batches from several goroutines at
// once, so that they share transactions.
func concurrentCommits(t *testing.T, step int, rng *rand.Rand, a *keyApp, s *livestore.Store) {
	t.Helper()
	n := 2 + rng.Intn(6)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		r := rand.New(rand.NewSource(rng.Int63()))
		go func() { errs <- commitRandom(context.Background(), r, a, s) }()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
	}
}
