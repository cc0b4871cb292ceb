package livestore

import (
	"context"
	"fmt"
)

// This file holds what lets a reader of reactive values give up when its
// context ends: a lock of the graph that waiting can leave, and the error of
// an evaluation cut short.

// ctxMutex is a mutual exclusion lock whose waiters may give up when their
// context ends. The zero value is not usable; see newCtxMutex.
type ctxMutex struct{ ch chan struct{} }

func newCtxMutex() ctxMutex { return ctxMutex{ch: make(chan struct{}, 1)} }

// Lock waits for the lock.
func (m ctxMutex) Lock() { m.ch <- struct{}{} }

// TryLock takes the lock if it is free and reports whether it did.
func (m ctxMutex) TryLock() bool {
	select {
	case m.ch <- struct{}{}:
		return true
	default:
		return false
	}
}

// LockCtx waits for the lock until ctx ends.
func (m ctxMutex) LockCtx(ctx context.Context) error {
	select {
	case m.ch <- struct{}{}:
		return nil
	default:
	}
	select {
	case m.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("livestore: waiting for the reactive graph: %w", ctx.Err())
	}
}

// Unlock releases the lock.
func (m ctxMutex) Unlock() { <-m.ch }

// interrupted is the error of an evaluation of n cut short because ctx
// ended. It wraps ctx.Err(). The node keeps no part of the evaluation: it
// stays stale and the next reader computes it again.
func interrupted(ctx context.Context, n *node) error {
	name := n.label
	if name == "" {
		name = n.kind.String() + " value"
	}
	return fmt.Errorf("livestore: evaluating %s interrupted: %w", name, ctx.Err())
}
