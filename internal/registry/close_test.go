package registry

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
)

func TestCloseAbortsLoadsAndClosesEveryValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		loadCtx := make(chan context.Context, 1)
		late := make(chan *value, 1)
		h.onLoad = func(ctx context.Context, v *value) (*value, error) {
			if v.key != "loading" {
				return v, nil
			}
			loadCtx <- ctx
			<-ctx.Done()
			late <- v
			return v, nil
		}
		held, _ := h.get("held", Options{})
		unused, release := h.get("unused", Options{})
		release()
		res := h.getAsync(context.Background(), "loading")
		h.awaitWaiting(1)
		lctx := recv(t, loadCtx, "load to start")

		if err := h.reg.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		// Close waited: everything is closed now, without waiting further.
		if lctx.Err() == nil {
			t.Error("load ctx not cancelled by Close")
		}
		if r := recv(t, res, "waiting Get"); !errors.Is(r.err, ErrClosed) {
			t.Errorf("waiting Get: err = %v, want ErrClosed", r.err)
		}
		for _, v := range []*value{held, unused, <-late} {
			if !v.isClosed() {
				t.Errorf("%v not closed when Close returned", v)
			}
		}
		// No disposal is left to run later.
		events := h.eventLog()
		advance(10 * testTTL)
		if got := h.eventLog(); !slices.Equal(got, events) {
			t.Errorf("events after Close = %q, want %q", got[len(events):], []string(nil))
		}

		if err := h.reg.Close(context.Background()); !errors.Is(err, ErrClosed) {
			t.Errorf("second Close: err = %v, want ErrClosed", err)
		}
		if _, release, err := h.reg.Get(context.Background(), "held", Options{}); !errors.Is(err, ErrClosed) {
			t.Errorf("Get after Close: err = %v, want ErrClosed", err)
		} else {
			release()
		}
		h.reg.Retain("new", Options{})()
		h.reg.Preload(context.Background(), "new", Options{})
		if got := h.loadCount("new"); got != 0 {
			t.Errorf("load called %d times after Close", got)
		}
	})
}

func TestCloseWaitsForDisposalInProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		closing := make(chan struct{}, 1)
		gate := make(chan struct{})
		h.onClose = func(ctx context.Context, v *value) error {
			closing <- struct{}{}
			<-gate
			return nil
		}
		v, release := h.get("a", Options{})
		release()
		advance(testTTL)
		recv(t, closing, "disposal to start")

		done := make(chan error, 1)
		go func() { done <- h.reg.Close(context.Background()) }()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Close returned while a disposal was still closing a value")
		default:
		}
		close(gate)
		if err := recv(t, done, "Close"); err != nil {
			t.Fatal(err)
		}
		if !v.isClosed() {
			t.Fatal("Close returned before the disposal finished")
		}
	})
}

func TestCloseReturnsCloseErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.onClose = func(ctx context.Context, v *value) error { return errBoom }
		h.get("a", Options{})
		err := h.reg.Close(context.Background())
		if !errors.Is(err, errBoom) {
			t.Fatalf("Close: err = %v, want %v", err, errBoom)
		}
	})
}

func TestCloseGivesUpWhenCtxEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		closeCtx := make(chan context.Context, 1)
		gate := make(chan struct{})
		h.onClose = func(ctx context.Context, v *value) error {
			closeCtx <- ctx
			<-gate
			return nil
		}
		v, _ := h.get("a", Options{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.reg.Close(ctx) }()
		cctx := recv(t, closeCtx, "close to start")
		cancel()
		if err := recv(t, done, "Close"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Close: err = %v, want context.Canceled", err)
		}
		recv(t, cctx.Done(), "the CloseFunc ctx to be cancelled")
		close(gate)
		awaitClosed(t, v) // the goroutine finishes on its own
	})
}
