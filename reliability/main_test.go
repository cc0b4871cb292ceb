package reliability

import (
	"flag"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Long mode and seeds: flags or environment variables (the environment is
// handy with "go test ./...", which passes flags to every package).
var (
	flagLong = flag.Bool("reliability.long", false, "run the long form of the reliability tests (also: LIVESTORE_RELIABILITY_LONG=1)")
	flagSeed = flag.Uint64("reliability.seed", 0, "base seed of the randomized tests; 0 picks one (also: LIVESTORE_RELIABILITY_SEED)")
)

const (
	envLong = "LIVESTORE_RELIABILITY_LONG"
	envSeed = "LIVESTORE_RELIABILITY_SEED"
	// envChild makes the test binary run as a child process of a test (see
	// child_test.go) instead of running tests.
	envChild = "LIVESTORE_RELIABILITY_CHILD"
)

// binDir holds the livestore binary built for the tests that run it.
var binDir string

func TestMain(m *testing.M) {
	if mode := os.Getenv(envChild); mode != "" {
		os.Exit(runChild(mode))
	}
	flag.Parse()
	dir, err := os.MkdirTemp("", "livestore-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// long reports whether the long form was asked for.
func long() bool {
	if *flagLong {
		return true
	}
	v := os.Getenv(envLong)
	return v != "" && v != "0" && v != "false"
}

// pick returns short or, in long mode, long.
func pick[T any](short, longValue T) T {
	if long() {
		return longValue
	}
	return short
}

var baseSeed = func() uint64 {
	if v := os.Getenv(envSeed); v != "" {
		if s, err := strconv.ParseUint(v, 10, 64); err == nil {
			return s
		}
	}
	return uint64(time.Now().UnixNano())
}()

// seeded returns the test's random source: the base seed (flag, environment
// or clock) mixed with the test's name, so that each test can be rerun alone
// with the same choices. The seed is logged, and again with the command to
// reproduce when the test fails. Timing still varies between runs: a seed
// fixes the workload and the fault schedule, not the interleaving.
func seeded(t *testing.T) *rand.Rand {
	t.Helper()
	base := baseSeed
	if *flagSeed != 0 {
		base = *flagSeed
	}
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	seed := base ^ h.Sum64()
	t.Logf("seed %d (base %d; long mode %v)", seed, base, long())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reproduce with: %s=%d go test ./reliability -run '^%s$' (add -reliability.long for the long form)", envSeed, base, t.Name())
		}
	})
	return rand.New(rand.NewPCG(seed, seed>>1|1))
}

// randDur returns a duration uniformly in [lo, hi].
func randDur(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}
