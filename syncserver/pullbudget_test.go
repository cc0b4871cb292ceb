package syncserver

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestByteBudget(t *testing.T) {
	waits, held := 0, 0
	b := newByteBudget(100, func() { waits++ }, func(d int) { held += d })
	ctx := context.Background()
	if n, err := b.acquire(ctx, 60); n != 60 || err != nil {
		t.Fatalf("acquire 60 = %d, %v", n, err)
	}
	// More than the limit is clamped, so a lone holder always fits, and
	// waits for the others.
	got := make(chan int)
	go func() {
		n, _ := b.acquire(ctx, 500)
		got <- n
	}()
	select {
	case n := <-got:
		t.Fatalf("acquire with 60 of 100 held returned %d", n)
	case <-time.After(50 * time.Millisecond):
	}
	b.release(60)
	if n := <-got; n != 100 {
		t.Fatalf("clamped acquire = %d, want 100", n)
	}
	if waits != 1 || held != 100 {
		t.Fatalf("waits %d held %d; want 1, 100", waits, held)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.acquire(cctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire on a full budget after cancel: %v", err)
	}
	b.release(100)
	if held != 0 {
		t.Fatalf("held %d after releasing everything", held)
	}
}
