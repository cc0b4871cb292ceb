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
// returned reflects that commit, and one read after SetSignal returned
// reflects that signal value.
//
// Get of a DBQuery that no subscription keeps live runs its query on a read
// snapshot of its own and never waits for the store's refresh of reactive
// values; other values may have to wait for a refresh in progress. When ctx
// ends before the value is ready — while Get waits, or while its query
// runs, which is then interrupted — Get returns an error wrapping ctx.Err()
// and the store keeps nothing of the evaluation cut short.
func Get[T any](ctx context.Context, s *Store, q Queryable[T]) (T, error) {
	var zero T
	v, err := s.graph.get(ctx, q.definition())
	if err != nil {
		return zero, err
	}
	return v.(T), nil
}

func (g *graph) get(ctx context.Context, def nodeDef) (any, error) {
	if g.runsAlone(def) {
		return g.getAlone(ctx, def)
	}
	if err := g.mu.LockCtx(ctx); err != nil {
		return nil, err
	}
	defer g.mu.Unlock()
	if g.stopped {
		return nil, ErrStoreClosed
	}
	n, err := g.freshNodeLocked(ctx, def)
	if err == nil {
		err = g.ensure(ctx, n)
	}
	if n.liveRefs == 0 {
		g.collect(n)
	}
	if err != nil {
		return nil, err
	}
	return n.value, n.err
}

// runsAlone reports whether Get of def may run its query outside the graph:
// a SQL query that no subscription keeps live. Its value is then read from
// the database as it is, which is what the graph would compute, and Get
// does not wait for a refresh of other values in progress.
func (g *graph) runsAlone(def nodeDef) bool {
	if _, ok := def.(interface{ alone() }); !ok {
		return false
	}
	g.liveMu.Lock()
	_, live := g.liveKeys[def.key()]
	g.liveMu.Unlock()
	return !live
}

// getAlone runs the query of def on its own read snapshot, interrupted when
// ctx ends, without a node in the graph.
func (g *graph) getAlone(ctx context.Context, def nodeDef) (any, error) {
	select {
	case <-g.stop:
		return nil, ErrStoreClosed
	default:
	}
	n := def.newNode(g.s)
	if n.defErr != nil {
		return nil, n.defErr
	}
	r, done, err := g.s.snapshotReader(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, span := g.s.tel.start(ctx, spanQuery)
	if span.IsRecording() {
		r.rows = new(int)
	}
	v, err := n.runDB(r)
	if ctx.Err() != nil {
		err = interrupted(ctx, n)
	}
	g.s.tel.endQuery(ctx, span, n, r.rows, err)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// freshNodeLocked returns the node of def once the writes recorded so far
// are applied. If they made a node with subscribers stale, a refresh pass
// runs first, so that its subscribers get the new value before the caller
// reads it. It fails when ctx ends before the pass finishes.
func (g *graph) freshNodeLocked(ctx context.Context, def nodeDef) (*node, error) {
	g.applyPendingLocked()
	n := g.nodeFor(def)
	if n.liveRefs > 0 && !n.valid {
		if err := g.refreshLocked(ctx); err != nil {
			return n, err
		}
	}
	return n, nil
}

// SetSignal sets the value of sig in store s. It never waits for queries:
// the values derived from sig are marked stale and brought up to date by
// the store's refresh goroutine, which then notifies their subscribers (and
// sig's own). Get called after SetSignal returned sees the new value of sig
// and of everything derived from it.
func SetSignal[T any](s *Store, sig *Signal[T], v T) error {
	return s.graph.setSignal(sig, v)
}

// setSignal records a signal value, applies it at once when the graph is
// free, and wakes the refresh goroutine.
func (g *graph) setSignal(def nodeDef, v any) error {
	select {
	case <-g.stop:
		return ErrStoreClosed
	default:
	}
	g.pendMu.Lock()
	g.pendSig[def.key()] = pendingSignal{def: def, v: v}
	g.pendMu.Unlock()
	if g.mu.TryLock() {
		if !g.stopped {
			g.applyPendingLocked()
		}
		g.mu.Unlock()
	}
	g.kick()
	return nil
}

// Subscribe calls fn with the current value of q and then with every new
// value, until the returned function is called or ctx ends. Calls for one
// subscription never overlap and come in order; when values change faster
// than fn returns, fn receives the latest (intermediate values are
// skipped). fn runs on a goroutine of the store, never while a commit holds
// the write lock. After unsubscribe returns no new call starts (a call in
// progress may finish). Failures of the query are logged and not delivered;
// use Watch to receive them.
//
// ctx also bounds the first evaluation of q: when ctx ends before it is
// done, its query is interrupted and Subscribe returns an error wrapping
// ctx.Err().
func Subscribe[T any](ctx context.Context, s *Store, q Queryable[T], fn func(T)) (unsubscribe func(), err error) {
	return subscribe(ctx, s, q.definition(), func(v any, err error) {
		if err == nil {
			fn(v.(T))
		}
	})
}

func subscribe(ctx context.Context, s *Store, def nodeDef, deliver func(any, error)) (func(), error) {
	g := s.graph
	if err := g.mu.LockCtx(ctx); err != nil {
		return nil, err
	}
	defer g.mu.Unlock()
	if g.stopped {
		return nil, ErrStoreClosed
	}
	// The node's existing subscribers are brought up to date first; the new
	// one starts from the value they end with.
	n, err := g.freshNodeLocked(ctx, def)
	if err == nil {
		err = g.ensure(ctx, n)
	}
	if err != nil {
		if n.liveRefs == 0 {
			g.collect(n)
		}
		return nil, err
	}
	sub := &subscription{g: g, n: n, deliver: deliver}
	n.subs[sub] = struct{}{}
	g.retain(n)
	sub.post(n.value, n.err)
	var once sync.Once
	var stopAfter func() bool // set under mu, read under mu
	unsubscribe := func() {
		once.Do(func() {
			sub.cancel()
			g.mu.Lock()
			defer g.mu.Unlock()
			stopAfter()
			if _, ok := n.subs[sub]; ok && !g.stopped {
				delete(n.subs, sub)
				g.release(n)
			}
		})
	}
	stopAfter = context.AfterFunc(ctx, unsubscribe)
	return unsubscribe, nil
}

// Watch yields the current value of q and then every new value (coalesced as
// in Subscribe), until ctx is done or the loop stops. A failed evaluation is
// yielded as an error and watching continues. The first evaluation is
// interrupted when ctx ends, as in Subscribe; its error is then yielded.
func Watch[T any](ctx context.Context, s *Store, q Queryable[T]) func(yield func(T, error) bool) {
	return func(yield func(T, error) bool) {
		type item struct {
			v   any
			err error
		}
		ch := make(chan item, 1)
		unsub, err := subscribe(ctx, s, q.definition(), func(v any, err error) {
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
