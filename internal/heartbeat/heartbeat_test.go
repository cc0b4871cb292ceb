package heartbeat

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestRunPingsUntilCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		pings := 0
		done := make(chan error)
		go func() {
			done <- Run(ctx, time.Second, func(context.Context) error { pings++; return nil })
		}()
		time.Sleep(3500 * time.Millisecond)
		synctest.Wait()
		if pings != 3 {
			t.Errorf("pings after 3.5 intervals = %d, want 3", pings)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	})
}

func TestRunStopsAtFailedPingWithItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var waited time.Duration
		err := Run(t.Context(), time.Second, func(ctx context.Context) error {
			<-ctx.Done() // never answered
			waited = time.Since(start)
			return ctx.Err()
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run = %v, want the ping's deadline error", err)
		}
		if waited != 2*time.Second {
			t.Errorf("failed after %v, want one interval to the ping and one for its answer (2s)", waited)
		}
	})
}
