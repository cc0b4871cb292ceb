package livestore

import (
	"context"
	"sync"
)

// This file holds the ways a program reads reactive values: Get, SetSignal,
// Subscribe and Watch, and the subscription that delivers values to a
// callback.

// subscription delivers a node's values to one callback.
type subscription struct {
	g       *graph
	n       *node
	deliver func(v any, err error)

	mu        sync.Mutex
	has       bool
	v         any
	err       error
	running   bool
	cancelled bool
}

// post hands the latest value to the subscription, starting its delivery
// goroutine when none runs.
func (sub *subscription) post(v any, err error) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.cancelled {
		return
	}
	sub.v, sub.err, sub.has = v, err, true
	if sub.running {
		return
	}
	sub.running = true
	sub.g.subWG.Add(1)
	go sub.run()
}

func (sub *subscription) run() {
	defer sub.g.subWG.Done()
	for {
		sub.mu.Lock()
		if !sub.has || sub.cancelled {
			sub.running = false
			sub.mu.Unlock()
			return
		}
		v, err := sub.v, sub.err
		sub.has = false
		sub.mu.Unlock()
		sub.deliver(v, err)
	}
}

func (sub *subscription) cancel() {
	sub.mu.Lock()
	sub.cancelled = true
	sub.has = false
	sub.mu.Unlock()
}

// Get returns the current value of q in store s. A value read after Commit
// returned reflects that commit.
func Get[T any](ctx context.Context, s *Store, q Queryable[T]) (T, error) {
	var zero T
	g := s.graph
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return zero, ErrStoreClosed
	}
	n := g.freshNodeLocked(ctx, q.definition())
	v, err := g.ensure(ctx, n)
	if n.liveRefs == 0 {
		g.collect(n)
	}
	if err != nil {
		return zero, err
	}
	return v.(T), nil
}

// freshNodeLocked returns the node of def once the writes recorded so far
// are applied. If they made a node with subscribers stale, a refresh pass
// runs first, so that its subscribers get the new value before the caller
// reads it.
func (g *graph) freshNodeLocked(ctx context.Context, def nodeDef) *node {
	g.applyPendingLocked()
	n := g.nodeFor(def)
	if n.liveRefs > 0 && !n.valid {
		g.refreshLocked(ctx, true)
	}
	return n
}

// SetSignal sets the value of sig in store s; values derived from it are
// updated and their subscribers notified.
func SetSignal[T any](s *Store, sig *Signal[T], v T) error {
	g := s.graph
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return ErrStoreClosed
	}
	n := g.nodeFor(sig)
	g.pass++
	n.value = v
	n.changedPass = g.pass
	for d := range n.dependents {
		g.markStale(d)
	}
	for sub := range n.subs {
		sub.post(v, nil)
	}
	g.refreshLocked(context.Background(), false)
	return nil
}

// Subscribe calls fn with the current value of q and then with every new
// value, until the returned function is called. Calls for one subscription
// never overlap and come in order; when values change faster than fn
// returns, fn receives the latest (intermediate values are skipped). fn runs
// on a goroutine of the store, never while a commit holds the write lock.
// After unsubscribe returns no new call starts (a call in progress may
// finish). Failures of the query are logged and not delivered; use Watch to
// receive them.
func Subscribe[T any](s *Store, q Queryable[T], fn func(T)) (unsubscribe func(), err error) {
	return subscribe(s, q.definition(), func(v any, err error) {
		if err == nil {
			fn(v.(T))
		}
	})
}

func subscribe(s *Store, def nodeDef, deliver func(any, error)) (func(), error) {
	g := s.graph
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return nil, ErrStoreClosed
	}
	// The node's existing subscribers are brought up to date first; the new
	// one starts from the value they end with.
	n := g.freshNodeLocked(context.Background(), def)
	sub := &subscription{g: g, n: n, deliver: deliver}
	n.subs[sub] = struct{}{}
	g.retain(n)
	v, err := g.ensure(context.Background(), n)
	sub.post(v, err)
	var once sync.Once
	return func() {
		once.Do(func() {
			sub.cancel()
			g.mu.Lock()
			defer g.mu.Unlock()
			if _, ok := n.subs[sub]; ok && !g.stopped {
				delete(n.subs, sub)
				g.release(n)
			}
		})
	}, nil
}

// Watch yields the current value of q and then every new value (coalesced as
// in Subscribe), until ctx is done or the loop stops. A failed evaluation is
// yielded as an error and watching continues.
func Watch[T any](ctx context.Context, s *Store, q Queryable[T]) func(yield func(T, error) bool) {
	return func(yield func(T, error) bool) {
		type item struct {
			v   any
			err error
		}
		ch := make(chan item, 1)
		unsub, err := subscribe(s, q.definition(), func(v any, err error) {
			// Keep only the latest value for the consumer.
			select {
			case <-ch:
			default:
			}
			ch <- item{v, err}
		})
		if err != nil {
			var zero T
			yield(zero, err)
			return
		}
		defer unsub()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.done:
				var zero T
				yield(zero, ErrStoreClosed)
				return
			case it := <-ch:
				var v T
				if it.err == nil {
					v = it.v.(T)
				}
				if !yield(v, it.err) {
					return
				}
			}
		}
	}
}
