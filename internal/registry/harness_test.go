package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
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

// harness is a registry of *value counting loads and closes. Tests replace
// onLoad/onClose before the first Get to script them. Tests using it run in
// a synctest bubble, where its disposal timers fire only when the test
// advances the bubble's clock (advance).
type harness struct {
	t   *testing.T
	reg *Registry[string, *value]

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

// newHarnessConfig is newHarness with cfg.
func newHarnessConfig(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{
		t:       t,
		waiting: make(chan struct{}, 1000),
		loads:   make(map[string]int),
	}
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

// get is Get that must succeed, without time passing, with a value that is
// not closed.
func (h *harness) get(key string, opts Options) (*value, func()) {
	h.t.Helper()
	ch := make(chan getResult, 1)
	go func() {
		v, release, err := h.reg.Get(context.Background(), key, opts)
		ch <- getResult{v, release, err}
	}()
	res := recv(h.t, ch, "Get("+key+")")
	if res.err != nil {
		h.t.Fatalf("Get(%q): %v", key, res.err)
	}
	if res.v.isClosed() {
		h.t.Fatalf("Get(%q) returned closed value %v", key, res.v)
	}
	return res.v, res.release
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

// recv waits until every other goroutine of the test's synctest bubble is
// blocked and returns what ch then holds, failing the test if it holds
// nothing: what a test waits for with recv must happen without the bubble's
// clock moving, so a bug that makes it wait for a timer cannot hide behind a
// generous timeout.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	synctest.Wait()
	select {
	case x := <-ch:
		return x
	default:
		t.Fatalf("still waiting for %s", what)
		var zero T
		return zero
	}
}

func awaitClosed(t *testing.T, v *value) {
	t.Helper()
	recv(t, v.closed, v.String()+" to be closed")
}

// advance moves the clock of the calling test's synctest bubble forward by d
// and waits until every goroutine of the bubble is blocked: the disposal
// timers due by then have run, and so have the closes they started, unless
// a close is blocked on the test.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// assertCached fails unless v is the current, undisposed value of its key.
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

// timerPending reports whether a disposal timer is scheduled for key's
// current entry.
func (h *harness) timerPending(key string) bool {
	h.reg.mu.Lock()
	defer h.reg.mu.Unlock()
	e := h.reg.entries[key]
	return e != nil && e.timer != nil
}

// idle returns e's disposal timer generation.
func (h *harness) idle(e *entry[string, *value]) uint64 {
	h.reg.mu.Lock()
	defer h.reg.mu.Unlock()
	return e.idle
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
