package registry

import (
	"context"
	"errors"
	"flag"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

var stressSeed = flag.Uint64("registry.seed", 0, "seed of TestConcurrentStress (0: time-based)")

// TestConcurrentStress runs random Gets (some cancelled), Retains and
// Preloads of a few keys from many goroutines while disposals fire and
// loads fail, get aborted, or return values after being aborted. It checks:
// a value handed out is not closed while held; every value is closed exactly
// once; for one key, a load never overlaps another load or an open value.
// Goroutine interleaving is up to the scheduler; the seed fixes the choices.
// It runs outside a synctest bubble on purpose: its cache times of a few
// milliseconds expire on real timers, in the middle of the workers' calls,
// as they do in a running program.
func TestConcurrentStress(t *testing.T) {
	seed := *stressSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -registry.seed=%d)", seed, seed)

	var (
		mu     sync.Mutex
		active = map[string]int{} // per key: loads running + values open
		loaded []*value
		loads  int
	)
	load := func(ctx context.Context, key string, _ Options) (*value, error) {
		mu.Lock()
		loads++
		n := loads
		active[key]++
		if active[key] != 1 {
			t.Errorf("load of %q started while %d other loads or values of it are live", key, active[key]-1)
		}
		mu.Unlock()

		rng := rand.New(rand.NewPCG(seed, uint64(n)))
		runtime.Gosched()
		fail := rng.IntN(10) == 0
		if ctx.Err() != nil && rng.IntN(2) == 0 {
			fail = true
		}
		if fail {
			mu.Lock()
			active[key]--
			mu.Unlock()
			return nil, errBoom
		}
		v := &value{key: key, n: n, closed: make(chan struct{})}
		mu.Lock()
		loaded = append(loaded, v)
		mu.Unlock()
		return v, nil
	}
	closeFn := func(ctx context.Context, v *value) error {
		if c := v.closes.Add(1); c != 1 {
			t.Errorf("%v closed %d times", v, c)
		}
		mu.Lock()
		active[v.key]--
		mu.Unlock()
		return nil
	}
	r := New(load, closeFn, Config{DefaultUnusedCacheTime: 50 * time.Microsecond})

	keys := []string{"a", "b", "c"}
	checkHeld := func(v *value) {
		if v.isClosed() {
			t.Errorf("held value %v is closed", v)
		}
		runtime.Gosched()
		if v.isClosed() {
			t.Errorf("held value %v was closed while held", v)
		}
	}

	const workers, ops = 8, 400
	var wg sync.WaitGroup
	for w := range workers {
		rng := rand.New(rand.NewPCG(seed, uint64(1_000_000+w)))
		wg.Go(func() {
			for range ops {
				key := keys[rng.IntN(len(keys))]
				// Negative: disposed at once; zero: the registry's default.
				opts := Options{UnusedCacheTime: time.Duration(rng.IntN(4)-1) * 20 * time.Microsecond}
				switch rng.IntN(5) {
				case 0, 1:
					v, release, err := r.Get(context.Background(), key, opts)
					if err != nil && !errors.Is(err, errBoom) {
						t.Errorf("Get: %v", err)
					}
					if err == nil {
						checkHeld(v)
					}
					release()
					release()
				case 2:
					ctx, cancel := context.WithCancel(context.Background())
					var cancelled sync.WaitGroup
					cancelled.Go(func() { runtime.Gosched(); cancel() })
					v, release, err := r.Get(ctx, key, opts)
					if err != nil && !errors.Is(err, errBoom) && !errors.Is(err, context.Canceled) {
						t.Errorf("Get with cancel: %v", err)
					}
					if err == nil {
						checkHeld(v)
					}
					release()
					cancelled.Wait()
				case 3:
					release := r.Retain(key, opts)
					runtime.Gosched()
					release()
				case 4:
					r.Preload(context.Background(), key, opts)
				}
			}
		})
	}
	wg.Wait()

	if err := r.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, v := range loaded {
		if c := v.closes.Load(); c != 1 {
			t.Errorf("%v closed %d times, want 1", v, c)
		}
	}
	for key, n := range active {
		if n != 0 {
			t.Errorf("key %q: %d loads or values still live after Close", key, n)
		}
	}
	t.Logf("%d loads, %d values", loads, len(loaded))
}
