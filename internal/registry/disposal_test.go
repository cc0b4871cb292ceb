package registry

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// When the last waiter gives up, the entry is unused: the load goes on, and
// the entry is disposed after its cache time like any unused entry.
func TestAbandonedLoadAbortedAfterCacheTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		loadCtx := make(chan context.Context, 1)
		late := make(chan *value, 1)
		h.onLoad = func(ctx context.Context, v *value) (*value, error) {
			if v.n > 1 {
				return v, nil
			}
			loadCtx <- ctx
			<-ctx.Done()
			late <- v
			return v, nil // arrives anyway; must be closed, never returned
		}
		ctx, cancel := context.WithCancel(context.Background())
		res := h.getAsync(ctx, "a")
		h.awaitWaiting(1)
		lctx := recv(t, loadCtx, "load to start")
		cancel()
		if r := recv(t, res, "Get"); !errors.Is(r.err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", r.err)
		}

		advance(testTTL - 1)
		if lctx.Err() != nil {
			t.Fatal("load aborted before the cache time elapsed")
		}
		advance(1)
		if lctx.Err() == nil {
			t.Fatal("load not aborted after the cache time elapsed")
		}
		awaitClosed(t, recv(t, late, "late value"))

		v, release := h.get("a", Options{})
		defer release()
		if v.n != 2 {
			t.Fatalf("Get returned %v, want a new load", v)
		}
	})
}

// The cache time of an abandoned entry counts from when it became unused,
// not from when its load finished.
func TestAbandonedLoadThatFinishesIsDisposedAfterCacheTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		gate := make(chan struct{})
		h.onLoad = func(ctx context.Context, v *value) (*value, error) {
			<-gate
			return v, nil
		}
		ctx, cancel := context.WithCancel(context.Background())
		res := h.getAsync(ctx, "a")
		h.awaitWaiting(1)
		e := h.entryForTest("a")
		cancel()
		recv(t, res, "cancelled Get")
		advance(testTTL / 2)
		close(gate)
		recv(t, e.loaded, "the abandoned load")
		if e.err != nil {
			t.Fatalf("abandoned load failed: %v", e.err)
		}
		v := e.val
		advance(testTTL/2 - 1)
		h.assertCached(v)
		advance(1)
		awaitClosed(t, v)
		if got := h.loadCount("a"); got != 1 {
			t.Fatalf("load called %d times, want 1", got)
		}
	})
}

func TestUnusedEntryClosedAfterCacheTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		v, release := h.get("a", Options{})
		release()
		advance(testTTL - 1)
		h.assertCached(v)
		advance(1)
		awaitClosed(t, v)

		v2, release2 := h.get("a", Options{})
		defer release2()
		if v2 == v || v2.n != 2 {
			t.Fatalf("Get after disposal returned %v, want a new load", v2)
		}
	})
}

func TestForeverDisablesDisposal(t *testing.T) {
	tests := []struct {
		name string
		cfg  time.Duration // Config.DefaultUnusedCacheTime
		opts Options
	}{
		{"option", 0, Options{UnusedCacheTime: Forever}},
		{"default", Forever, Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarnessConfig(t, Config{DefaultUnusedCacheTime: tt.cfg})
				v, release := h.get("a", tt.opts)
				release()
				if h.timerPending("a") {
					t.Fatal("a disposal timer is scheduled")
				}
				advance(100 * 365 * 24 * time.Hour)
				v2, release2 := h.get("a", tt.opts)
				defer release2()
				if v2 != v {
					t.Fatalf("Get returned %v, want cached %v", v2, v)
				}
			})
		})
	}
}

func TestUnusedCacheTimeOptions(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		opts Options
		want time.Duration
	}{
		{"package default", Config{}, Options{}, DefaultUnusedCacheTime},
		{"config default", Config{DefaultUnusedCacheTime: 100 * time.Millisecond}, Options{}, 100 * time.Millisecond},
		{"option overrides config", Config{DefaultUnusedCacheTime: 10 * time.Second}, Options{UnusedCacheTime: 25 * time.Millisecond}, 25 * time.Millisecond},
		{"negative means at once", Config{}, Options{UnusedCacheTime: -1}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				closed := make(chan string, 1)
				r := New(
					func(ctx context.Context, key string, _ Options) (string, error) { return key, nil },
					func(ctx context.Context, v string) error { closed <- v; return nil },
					tt.cfg)
				defer r.Close(context.Background())

				_, release, err := r.Get(context.Background(), "a", tt.opts)
				if err != nil {
					t.Fatal(err)
				}
				release()
				if tt.want > 0 {
					advance(tt.want - 1)
					select {
					case <-closed:
						t.Fatalf("closed before %v", tt.want)
					default:
					}
				}
				advance(min(tt.want, 1))
				recv(t, closed, "disposal")
			})
		})
	}
}

func TestOptionsFixedAtFirstLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		v, release1 := h.get("a", Options{UnusedCacheTime: 10 * time.Millisecond})
		_, release2 := h.get("a", Options{UnusedCacheTime: time.Hour})
		release1()
		release2()
		advance(10 * time.Millisecond)
		awaitClosed(t, v)

		// A new entry takes the options of its own first load.
		v2, release := h.get("a", Options{UnusedCacheTime: time.Hour})
		release()
		advance(time.Hour - 1)
		h.assertCached(v2)
		advance(1)
		awaitClosed(t, v2)
	})
}

func TestNewHoldCancelsDisposal(t *testing.T) {
	tests := []struct {
		name string
		hold func(h *harness) (release func())
	}{
		{"Retain", func(h *harness) func() { return h.reg.Retain("a", Options{}) }},
		{"Get", func(h *harness) func() { _, release := h.get("a", Options{}); return release }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t)
				v, release := h.get("a", Options{})
				release()
				advance(testTTL - 5)
				releaseHold := tt.hold(h)
				advance(5)
				advance(10 * testTTL)
				h.assertCached(v)

				// The release starts a full cache time again.
				releaseHold()
				advance(testTTL - 1)
				h.assertCached(v)
				advance(1)
				awaitClosed(t, v)
				if got := h.loadCount("a"); got != 1 {
					t.Fatalf("load called %d times, want 1", got)
				}
			})
		})
	}
}

// A disposal timer that fires although it was stopped (its callback had
// already started) must not dispose an entry that is held again, nor one
// that was held and released since: only the newest timer counts. The test
// plays such late timers by calling their callback itself.
func TestStaleDisposalTimerIsIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		v, release := h.get("a", Options{})
		release() // timer 1
		e := h.entryForTest("a")
		idle1 := h.idle(e)
		_, release = h.get("a", Options{})
		h.reg.expire(e, idle1) // timer 1 fires while held
		h.assertCached(v)
		release() // timer 2
		idle2 := h.idle(e)
		advance(testTTL / 2)
		_, release = h.get("a", Options{})
		release()              // timer 3: due at 1.5 testTTL
		h.reg.expire(e, idle2) // timer 2 fires while unused
		h.assertCached(v)
		advance(testTTL - 1)
		h.assertCached(v)
		advance(1)
		awaitClosed(t, v)
	})
}

func TestRetainKeepsValuePastCacheTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		v, release := h.get("a", Options{})
		releaseRetain := h.reg.Retain("a", Options{})
		release()
		advance(testTTL + 50*time.Millisecond)

		v2, release2 := h.get("a", Options{})
		release2()
		if v2 != v {
			t.Fatalf("Get returned %v, want retained %v", v2, v)
		}
		releaseRetain()
		advance(testTTL)
		awaitClosed(t, v)
	})
}

func TestUnusedWhileLoadingDisposedAfterLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		gate := make(chan struct{})
		loadCtx := make(chan context.Context, 1)
		h.onLoad = func(ctx context.Context, v *value) (*value, error) {
			loadCtx <- ctx
			<-gate
			return v, nil
		}
		release := h.reg.Retain("a", Options{})
		lctx := recv(t, loadCtx, "load to start")
		release()
		close(gate)
		e := h.entryForTest("a")
		recv(t, e.loaded, "the load")
		if lctx.Err() != nil {
			t.Fatal("load aborted although it finished within the cache time")
		}
		advance(testTTL - 1)
		h.assertCached(e.val)
		advance(1)
		awaitClosed(t, e.val)
	})
}

func TestDisposalWhileLoadingAbortsLoad(t *testing.T) {
	tests := []struct {
		name      string
		lateValue bool // the load returns a value despite the cancellation
	}{
		{"load returns ctx error", false},
		{"load returns value anyway", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t)
				started := make(chan struct{}, 1)
				late := make(chan *value, 1)
				h.onLoad = func(ctx context.Context, v *value) (*value, error) {
					if v.n > 1 {
						return v, nil
					}
					started <- struct{}{}
					<-ctx.Done()
					if tt.lateValue {
						late <- v
						return v, nil
					}
					return nil, ctx.Err()
				}
				release := h.reg.Retain("a", Options{})
				recv(t, started, "load to start")
				release()
				advance(testTTL)

				v, release2 := h.get("a", Options{})
				defer release2()
				if v.n != 2 {
					t.Fatalf("Get returned %v, want a new load", v)
				}
				if tt.lateValue {
					lv := recv(t, late, "late value")
					if !lv.isClosed() {
						t.Fatalf("late value %v not closed before the next load", lv)
					}
				}
				// The new load started only once the aborted one had returned.
				want := []string{"load a#1", "load a#2"}
				if tt.lateValue {
					want = []string{"load a#1", "closed a#1", "load a#2"}
				}
				if got := h.eventLog(); !slices.Equal(got, want) {
					t.Fatalf("events = %q, want %q", got, want)
				}
			})
		})
	}
}

func TestGetDuringDisposalWaitsForCloseAndLoadsAnew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		closing := make(chan struct{}, 1)
		gate := make(chan struct{})
		h.onClose = func(ctx context.Context, v *value) error {
			if v.n == 1 {
				closing <- struct{}{}
				<-gate
			}
			return nil
		}
		v1, release := h.get("a", Options{})
		release()
		advance(testTTL)
		recv(t, closing, "disposal to start closing")

		res := h.getAsync(context.Background(), "a")
		h.awaitWaiting(1)
		retained := h.reg.Retain("a", Options{}) // joins the same new entry
		if got := h.loadCount("a"); got != 1 {
			t.Fatalf("a load started while the old value was closing (%d loads)", got)
		}
		close(gate)
		r := recv(t, res, "Get")
		if r.err != nil {
			t.Fatal(r.err)
		}
		defer r.release()
		retained()
		if r.v == v1 || r.v.n != 2 || r.v.isClosed() {
			t.Fatalf("Get returned %v (closed %v), want a fresh second load", r.v, r.v.isClosed())
		}
		want := []string{"load a#1", "closed a#1", "load a#2"}
		if got := h.eventLog(); !slices.Equal(got, want) {
			t.Fatalf("events = %q, want %q", got, want)
		}
	})
}

func TestKeysAreIndependent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		short, r1 := h.get("short", Options{UnusedCacheTime: 25 * time.Millisecond})
		long, r2 := h.get("long", Options{UnusedCacheTime: 10 * time.Second})
		if short == long {
			t.Fatal("two keys share one value")
		}
		r1()
		r2()
		advance(25 * time.Millisecond)
		awaitClosed(t, short)
		h.assertCached(long)

		long2, r3 := h.get("long", Options{})
		defer r3()
		if long2 != long {
			t.Fatalf("Get(long) returned %v, want cached %v", long2, long)
		}
		short2, r4 := h.get("short", Options{})
		defer r4()
		if short2.n != 2 {
			t.Fatalf("Get(short) returned %v, want a new load", short2)
		}
	})
}

func TestRapidRetainReleaseCycles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		v, release := h.get("a", Options{})
		release()
		for range 10 {
			h.reg.Retain("a", Options{})()
		}
		if !h.timerPending("a") {
			t.Fatal("no disposal timer pending")
		}
		advance(testTTL - 1)
		h.assertCached(v)
		advance(1)
		awaitClosed(t, v)
	})
}

func TestDisposalCloseErrorIsLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logged := make(chan string, 1)
		r := New(
			func(ctx context.Context, key string, _ Options) (string, error) { return key, nil },
			func(ctx context.Context, v string) error { return errBoom },
			Config{Logger: slog.New(chanHandler(logged))})
		defer r.Close(context.Background())
		_, release, err := r.Get(context.Background(), "a", Options{UnusedCacheTime: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		release()
		advance(time.Second)
		if msg := recv(t, logged, "log record"); !strings.Contains(msg, "boom") {
			t.Fatalf("logged %q, want the close error", msg)
		}
	})
}

// chanHandler is a slog.Handler that sends each record, formatted, to a
// channel.
type chanHandler chan<- string

func (h chanHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h chanHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h chanHandler) WithGroup(string) slog.Handler            { return h }
func (h chanHandler) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	h <- b.String()
	return nil
}
