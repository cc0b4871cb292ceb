package livestore_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/memsync"
)

var (
	syncRounds = flag.Int("sync.rounds", 3, "rounds of the randomized convergence test (raise for a long run)")
	syncSeed   = flag.Int64("sync.seed", 0, "seed of the randomized convergence test (0: time-based)")
)

// TestSyncRandomizedConvergence runs clients that commit at random while
// their links are cut, dropped and slowed at random, then heals everything
// and checks that every client holds exactly the server's log and a state
// equal to a fresh materialization of it.
func TestSyncRandomizedConvergence(t *testing.T) {
	seed := *syncSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun with -sync.seed=%d)", seed, seed)
	for round := 0; round < *syncRounds; round++ {
		rng := rand.New(rand.NewSource(seed + int64(round)))
		if !t.Run(fmt.Sprint("round", round), func(t *testing.T) { randomRound(t, rng) }) {
			t.Fatalf("failed with seed %d round %d", seed, round)
		}
	}
}

func randomRound(t *testing.T, rng *rand.Rand) {
	a := newTodoApp(t)
	srv := memsync.NewServer()
	n := 2 + rng.Intn(3)
	links := make([]*memsync.Link, n)
	stores := make([]*livestore.Store, n)
	for i := range stores {
		links[i] = srv.NewLink()
		lr := rand.New(rand.NewSource(rng.Int63()))
		var mu = make(chan struct{}, 1)
		links[i].Latency = func() time.Duration {
			mu <- struct{}{}
			defer func() { <-mu }()
			return time.Duration(lr.Intn(300)) * time.Microsecond
		}
		opts := syncOpts(links[i])
		opts.MaxPushBatch = 1 + rng.Intn(20)
		stores[i] = openSynced(t, a.schema, t.TempDir(), opts)
	}
	ctx := context.Background()
	ids := []string{}
	ops := 150 + rng.Intn(150)
	for op := 0; op < ops; op++ {
		i := rng.Intn(n)
		s := stores[i]
		switch r := rng.Intn(100); {
		case r < 5:
			links[i].SetOnline(false)
		case r < 12:
			links[i].SetOnline(true)
		case r < 15:
			links[i].Drop()
		case r < 18:
			time.Sleep(time.Duration(rng.Intn(3)) * time.Millisecond)
		default:
			var evs []livestore.Event
			for k := 0; k <= rng.Intn(3); k++ {
				switch c := rng.Intn(10); {
				case c < 5 || len(ids) == 0:
					id := fmt.Sprintf("t%d-%d", i, op*10+k)
					ids = append(ids, id)
					evs = append(evs, a.created.New(todoCreated{ID: id, Text: strings.Repeat("x", rng.Intn(5))}))
				case c < 7:
					evs = append(evs, a.completed.New(todoID{ID: ids[rng.Intn(len(ids))]}))
				case c < 8:
					evs = append(evs, a.cleared.New(struct{}{}))
				default:
					evs = append(evs, a.ui.Set(fmt.Sprint("doc", rng.Intn(3)), map[string]any{"newText": fmt.Sprint(op)}))
				}
			}
			// An id created by another client may not have reached this one:
			// completing it is a no-op there, which is fine.
			if err := s.Commit(ctx, evs...); err != nil {
				t.Fatalf("commit: %v", err)
			}
		}
	}
	for _, l := range links {
		l.SetOnline(true)
	}
	waitConvergedState(t, srv, false, stores...)
	// Synced tables agree across clients; client documents are per client.
	ref := todosDump(t, stores[0])
	for i, s := range stores[1:] {
		if d := todosDump(t, s); d != ref {
			t.Fatalf("client %d todos differ:\n%s\nvs\n%s", i+1, d, ref)
		}
	}
}

func todosDump(t testing.TB, s *livestore.Store) string {
	d := dump(t, s)
	start := strings.Index(d, "table todos\n")
	end := strings.Index(d, "table uiState\n")
	return d[start:end]
}
