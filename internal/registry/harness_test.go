package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTTL is the unused cache time of the harness registry.
const testTTL = 50 * time.Millisecond

// value is what the harness loads: the n-th load of key.
type value struct {
	key    string
	n      int
	closes atomic.Int32
	closed chan struct{} // closed by the first close
}

func (v *value) String() string { return fmt.Sprintf("%s#%d", v.key, v.n) }

func (v *value) isClosed() bool { return v.closes.Load() > 0 }

// harness is a registry of *value with a fake clock, counting loads and
// closes. Tests replace onLoad/onClose before the first Get to script them.
type harness struct {
	t     *testing.T
	clock *fakeClock
	reg   *Registry[string, *value]

	// onLoad, if set, runs instead of returning a fresh value at once; it
	// receives the fresh value it may return.
	onLoad func(ctx context.Context, v *value) (*value, error)
	// onClose, if set, runs before a value is marked closed.
	onClose func(ctx context.Context, v *value) error
	// waiting receives one token each time a Get starts waiting for a load.
	waiting chan struct{}

	mu     sync.Mutex
	loads  map[string]int
	events []string // "load k#n" when a load starts, "closed k#n" when a close ends
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessConfig(t, Config{DefaultUnusedCacheTime: testTTL})
}

// newHarnessConfig is newHarness with cfg; its Clock is replaced by the
// harness's fake clock.
func newHarnessConfig(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{
		t:       t,
		clock:   newFakeClock(),
		waiting: make(chan struct{}, 1000),
		loads:   make(map[string]int),
	}
	cfg.Clock = h.clock
	h.reg = New(h.load, h.close, cfg)
	h.reg.waitHook = func() { h.waiting <- struct{}{} }
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.reg.Close(ctx); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("cleanup: Close: %v", err)
		}
	})
	return h
}

func (h *harness) load(ctx context.Context, key string, _ Options) (*value, error) {
	h.mu.Lock()
	h.loads[key]++
	v := &value{key: key, n: h.loads[key], closed: make(chan struct{})}
	h.events = append(h.events, "load "+v.String())
	onLoad := h.onLoad
	h.mu.Unlock()
	if onLoad != nil {
		return onLoad(ctx, v)
	}
	return v, nil
}

func (h *harness) close(ctx context.Context, v *value) error {
	var err error
	if h.onClose != nil {
		err = h.onClose(ctx, v)
	}
	if v.closes.Add(1) == 1 {
		h.mu.Lock()
		h.events = append(h.events, "closed "+v.String())
		h.mu.Unlock()
		close(v.closed)
	} else {
		h.t.Errorf("%v closed %d times", v, v.closes.Load())
	}
	return err
}

func (h *harness) loadCount(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.loads[key]
}

func (h *harness) eventLog() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.events...)
}

// get is Get that must succeed with a value that is not closed.
func (h *harness) get(key string, opts Options) (*value, func()) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, release, err := h.reg.Get(ctx, key, opts)
	if err != nil {
		h.t.Fatalf("Get(%q): %v", key, err)
	}
	if v.isClosed() {
		h.t.Fatalf("Get(%q) returned closed value %v", key, v)
	}
	return v, release
}

// getAsync runs Get in a goroutine the test waits for through the result.
func (h *harness) getAsync(ctx context.Context, key string) <-chan getResult {
	ch := make(chan getResult, 1)
	go func() {
		v, release, err := h.reg.Get(ctx, key, Options{})
		ch <- getResult{v, release, err}
	}()
	return ch
}

type getResult struct {
	v       *value
	release func()
	err     error
}

// awaitWaiting blocks until n more Gets have started waiting for a load.
func (h *harness) awaitWaiting(n int) {
	h.t.Helper()
	for range n {
		recv(h.t, h.waiting, "a Get to wait for a load")
	}
}

// recv receives from ch or fails the test after a generous timeout, which
// only matters when the code under test is broken.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case x := <-ch:
		return x
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func awaitClosed(t *testing.T, v *value) {
	t.Helper()
	recv(t, v.closed, v.String()+" to be closed")
}

// assertCached fails unless v is the current, undisposed value of its key.
// Disposal is decided synchronously inside clock.Advance (the closing itself
// runs in the background), so this checks it without waiting.
func (h *harness) assertCached(v *value) {
	h.t.Helper()
	h.reg.mu.Lock()
	e := h.reg.entries[v.key]
	ok := e != nil && e.ready && e.val == v && !e.detached
	h.reg.mu.Unlock()
	if !ok || v.isClosed() {
		h.t.Fatalf("%v is no longer cached", v)
	}
}

// entryForTest returns the current entry of key, failing if there is none.
func (h *harness) entryForTest(key string) *entry[string, *value] {
	h.t.Helper()
	h.reg.mu.Lock()
	defer h.reg.mu.Unlock()
	e := h.reg.entries[key]
	if e == nil {
		h.t.Fatalf("no entry for %q", key)
	}
	return e
}
