package syncserver

import (
	"context"
	"sync"
)

// byteBudget bounds the bytes held by all pulls of a server: pages read
// from storage and not yet written to their sockets. Every holder takes
// at most limit bytes, so a lone holder always fits.
type byteBudget struct {
	limit   int
	onWait  func()          // called when an acquire has to wait
	onTaken func(delta int) // called with mu held when bytes are taken or released

	mu   sync.Mutex
	used int
	wake chan struct{} // closed (and replaced) whenever bytes are released
}

func newByteBudget(limit int, onWait func(), onTaken func(delta int)) *byteBudget {
	return &byteBudget{limit: limit, onWait: onWait, onTaken: onTaken, wake: make(chan struct{})}
}

// acquire takes min(n, limit) bytes, waiting until they are free or ctx
// ends, and returns how many it took.
func (b *byteBudget) acquire(ctx context.Context, n int) (int, error) {
	n = min(n, b.limit)
	waited := false
	for {
		b.mu.Lock()
		if b.used+n <= b.limit {
			b.used += n
			b.onTaken(n)
			b.mu.Unlock()
			return n, nil
		}
		wake := b.wake
		b.mu.Unlock()
		if !waited {
			waited = true
			b.onWait()
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// release returns n bytes taken by acquire.
func (b *byteBudget) release(n int) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.onTaken(-n)
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}
