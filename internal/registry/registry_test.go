package registry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
)

var errBoom = errors.New("boom")

func TestGetConcurrentGetsShareOneLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		gate := make(chan struct{})
		h.onLoad = func(ctx context.Context, v *value) (*value, error) {
			<-gate
			return v, nil
		}

		const n = 5
		results := make([]<-chan getResult, n)
		for i := range results {
			results[i] = h.getAsync(context.Background(), "a")
		}
		h.awaitWaiting(n)
		close(gate)

		var first *value
		for i, ch := range results {
			res := recv(t, ch, "Get")
			if res.err != nil {
				t.Fatalf("Get %d: %v", i, res.err)
			}
			if first == nil {
				first = res.v
			} else if res.v != first {
				t.Fatalf("Get %d returned %v, want the shared %v", i, res.v, first)
			}
			defer res.release()
		}
		if got := h.loadCount("a"); got != 1 {
			t.Fatalf("load called %d times, want 1", got)
		}
	})
}

func TestGetReturnsCachedValueWithoutLoading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		v1, release1 := h.get("a", Options{})
		release1()
		v2, release2 := h.get("a", Options{})
		defer release2()
		if v2 != v1 {
			t.Fatalf("second Get returned %v, want cached %v", v2, v1)
		}
		if got := h.loadCount("a"); got != 1 {
			t.Fatalf("load called %d times, want 1", got)
		}
	})
}

func TestLoadFailureReachesEveryWaiterAndIsNotCached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		gate := make(chan struct{})
		h.onLoad = func(ctx context.Context, v *value) (*value, error) {
			<-gate
			if v.n == 1 {
				return nil, errBoom
			}
			return v, nil
		}

		const n = 3
		results := make([]<-chan getResult, n)
		for i := range results {
			results[i] = h.getAsync(context.Background(), "a")
		}
		h.awaitWaiting(n)
		close(gate)
		for i, ch := range results {
			res := recv(t, ch, "Get")
			if !errors.Is(res.err, errBoom) {
				t.Fatalf("Get %d: err = %v, want %v", i, res.err, errBoom)
			}
			res.release() // a no-op, but must be callable
		}
		if got := h.loadCount("a"); got != 1 {
			t.Fatalf("load called %d times for the failing load, want 1", got)
		}
		if h.timerPending("a") {
			t.Fatal("a disposal timer is pending for a failed load")
		}

		v, release := h.get("a", Options{})
		defer release()
		if v.n != 2 {
			t.Fatalf("Get after failure returned %v, want the second load", v)
		}
	})
}

func TestRetainOfFailedLoadIsNotCached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		gate := make(chan struct{})
		h.onLoad = func(ctx context.Context, v *value) (*value, error) {
			if v.n == 1 {
				<-gate
				return nil, errBoom
			}
			return v, nil
		}
		release := h.reg.Retain("a", Options{})
		e := h.entryForTest("a")
		close(gate)
		recv(t, e.loaded, "the retained load")
		if !errors.Is(e.err, errBoom) {
			t.Fatalf("retained load: err = %v, want %v", e.err, errBoom)
		}
		v, release2 := h.get("a", Options{})
		defer release2()
		if v.n != 2 {
			t.Fatalf("Get returned %v, want the second load", v)
		}
		release() // ends a hold on the dropped entry: no effect on the new one
		release()
		advance(10 * testTTL)
		h.assertCached(v)
	})
}

func TestPreloadReportsNoErrorAndDoesNotCacheFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.onLoad = func(ctx context.Context, v *value) (*value, error) {
			if v.n == 1 {
				return nil, errBoom
			}
			return v, nil
		}
		h.reg.Preload(context.Background(), "a", Options{})
		v, release := h.get("a", Options{})
		defer release()
		if v.n != 2 {
			t.Fatalf("Get after failed Preload returned %v, want a new load", v)
		}
	})
}

func TestPreloadWarmsCacheAndSchedulesDisposal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.reg.Preload(context.Background(), "a", Options{})
		if got := h.loadCount("a"); got != 1 {
			t.Fatalf("Preload: load called %d times, want 1", got)
		}
		v, release := h.get("a", Options{})
		release()
		if got := h.loadCount("a"); got != 1 {
			t.Fatalf("Get after Preload loaded again (%d loads)", got)
		}
		advance(testTTL)
		awaitClosed(t, v)
	})
}

func TestGetCancelledCtxAffectsOnlyThatCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		gate := make(chan struct{})
		h.onLoad = func(ctx context.Context, v *value) (*value, error) {
			<-gate
			return v, nil
		}
		ctx1, cancel1 := context.WithCancel(context.Background())
		defer cancel1()
		res1 := h.getAsync(ctx1, "a")
		res2 := h.getAsync(context.Background(), "a")
		h.awaitWaiting(2)

		cancel1()
		if r := recv(t, res1, "cancelled Get"); !errors.Is(r.err, context.Canceled) {
			t.Fatalf("cancelled Get: err = %v, want context.Canceled", r.err)
		}
		close(gate)
		r := recv(t, res2, "other Get")
		if r.err != nil {
			t.Fatalf("other Get: %v", r.err)
		}
		defer r.release()
		h.assertCached(r.v)
		if got := h.loadCount("a"); got != 1 {
			t.Fatalf("load called %d times, want 1", got)
		}
		// The remaining holder keeps the entry even long after its cache time.
		advance(10 * testTTL)
		h.assertCached(r.v)
	})
}

func TestGetWithDoneCtxDoesNotLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, release, err := h.reg.Get(ctx, "a", Options{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		} else {
			release()
		}
		if got := h.loadCount("a"); got != 0 {
			t.Fatalf("load called %d times, want 0", got)
		}
	})
}

func TestRetainLoadsInBackground(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		loaded := make(chan *value, 1)
		h.onLoad = func(ctx context.Context, v *value) (*value, error) {
			loaded <- v
			return v, nil
		}
		release := h.reg.Retain("a", Options{})
		defer release()
		v := recv(t, loaded, "the retained load")
		recv(t, h.entryForTest("a").loaded, "the retained entry to be loaded")
		v2, release2 := h.get("a", Options{})
		defer release2()
		if v2 != v {
			t.Fatalf("Get returned %v, want the retained %v", v2, v)
		}
		if got := h.loadCount("a"); got != 1 {
			t.Fatalf("load called %d times, want 1", got)
		}
	})
}

func TestReleaseIsIdempotent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		v, releaseA := h.get("a", Options{})
		_, releaseB := h.get("a", Options{})
		releaseA()
		releaseA()
		retain := h.reg.Retain("a", Options{})
		retain()
		retain()
		advance(10 * testTTL)
		h.assertCached(v) // still held by B

		releaseB()
		releaseB()
		advance(testTTL)
		awaitClosed(t, v)
	})
}

func TestLoadPanicBecomesError(t *testing.T) {
	r := New(
		func(ctx context.Context, key string, _ Options) (string, error) { panic("kaput") },
		nil, Config{})
	defer r.Close(context.Background())
	_, _, err := r.Get(context.Background(), "a", Options{})
	if err == nil || !strings.Contains(err.Error(), "kaput") {
		t.Fatalf("err = %v, want the panic as an error", err)
	}
}
