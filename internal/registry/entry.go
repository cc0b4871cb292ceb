package registry

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// entry is one load of one key and, if it succeeds, the value it produced.
// Each entry has one goroutine (run) that owns the value: it loads it, waits
// until the entry is disposed, and closes it. All fields but the channels are
// guarded by Registry.mu.
type entry[K comparable, V any] struct {
	key  K
	ttl  time.Duration
	opts Options // of the call that created the entry, for its load

	// prev, if not nil, is closed when the previous entry of the same key has
	// finished disposal; the load waits for it.
	prev   <-chan struct{}
	cancel context.CancelFunc // cancels the load's ctx

	refs int
	// idle identifies the newest disposal timer. A timer whose callback had
	// started when it was stopped still runs; it disposes the entry only if
	// the entry is unused and no newer timer was scheduled since.
	idle  uint64
	timer *time.Timer

	loaded chan struct{} // closed once val or err is set
	ready  bool          // val is set
	val    V
	err    error

	// detached entries are no longer in Registry.entries: their load
	// failed, they are being disposed, or the registry is closed.
	detached bool
	dispose  chan struct{} // closed to make run close the value
	gone     chan struct{} // closed when run has returned
}

// acquireLocked takes one hold on the current entry of key, creating it and
// starting its load if there is none.
func (r *Registry[K, V]) acquireLocked(key K, opts Options) *entry[K, V] {
	e := r.entries[key]
	if e == nil {
		e = r.newEntryLocked(key, opts)
	}
	e.refs++
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	return e
}

func (r *Registry[K, V]) newEntryLocked(key K, opts Options) *entry[K, V] {
	ttl := opts.UnusedCacheTime
	if ttl == 0 {
		ttl = r.defaultTTL
	}
	ctx, cancel := context.WithCancel(r.loadCtx)
	e := &entry[K, V]{
		key:     key,
		ttl:     ttl,
		opts:    opts,
		cancel:  cancel,
		loaded:  make(chan struct{}),
		dispose: make(chan struct{}),
		gone:    make(chan struct{}),
	}
	if p := r.disposing[key]; p != nil {
		e.prev = p.gone
	}
	r.entries[key] = e
	r.running++
	go r.run(ctx, e)
	return e
}

// releaseLocked drops one hold on e and schedules its disposal if it was the
// last one.
func (r *Registry[K, V]) releaseLocked(e *entry[K, V]) {
	e.refs--
	if e.refs > 0 || e.detached || e.ttl == Forever {
		return
	}
	e.idle++
	idle := e.idle
	e.timer = time.AfterFunc(max(e.ttl, 0), func() { r.expire(e, idle) })
}

// expire is the disposal timer of e; idle is e.idle when it was scheduled.
func (r *Registry[K, V]) expire(e *entry[K, V], idle uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.detached || e.refs > 0 || e.idle != idle {
		return
	}
	e.timer = nil
	r.disposeLocked(e)
}

// disposeLocked detaches e and tells its goroutine to abort the load or
// close the value. New entries of the same key wait until that is done.
func (r *Registry[K, V]) disposeLocked(e *entry[K, V]) {
	e.detached = true
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	if r.entries[e.key] == e {
		delete(r.entries, e.key)
	}
	r.disposing[e.key] = e
	e.cancel()
	close(e.dispose)
}

// run owns the value of e from load to close.
func (r *Registry[K, V]) run(ctx context.Context, e *entry[K, V]) {
	defer r.finish(e)
	if e.prev != nil {
		<-e.prev
	}
	var v V
	err := ctx.Err()
	if err == nil {
		v, err = r.callLoad(ctx, e.key, e.opts)
	}

	r.mu.Lock()
	switch {
	case e.detached:
		// Disposed or closed while loading. A disposed entry had no
		// holds, so any waiter is here because Close detached the entry.
		e.err = ErrClosed
		close(e.loaded)
		r.mu.Unlock()
		if err == nil {
			r.closeValue(e.key, v)
		}
		return
	case err != nil:
		e.err = err
		e.detached = true
		if e.timer != nil {
			e.timer.Stop()
			e.timer = nil
		}
		delete(r.entries, e.key)
		close(e.loaded)
		r.mu.Unlock()
		return
	}
	e.val, e.ready = v, true
	close(e.loaded)
	r.mu.Unlock()

	<-e.dispose
	r.closeValue(e.key, v)
}

func (r *Registry[K, V]) finish(e *entry[K, V]) {
	e.cancel()
	close(e.gone)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.disposing[e.key] == e {
		delete(r.disposing, e.key)
	}
	r.running--
	if r.closed && r.running == 0 {
		close(r.stopped)
	}
}

func (r *Registry[K, V]) callLoad(ctx context.Context, key K, opts Options) (v V, err error) {
	if r.load == nil {
		return v, errors.New("registry: no load function")
	}
	defer func() {
		if p := recover(); p != nil {
			var zero V
			v, err = zero, fmt.Errorf("registry: load %v panicked: %v", key, p)
		}
	}()
	return r.load(ctx, key, opts)
}

func (r *Registry[K, V]) closeValue(key K, v V) {
	if r.close == nil {
		return
	}
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panicked: %v", p)
			}
		}()
		return r.close(r.closeCtx, v)
	}()
	if err == nil {
		return
	}
	err = fmt.Errorf("registry: close %v: %w", key, err)
	r.mu.Lock()
	if r.closed {
		r.closeErrs = append(r.closeErrs, err)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	r.log.Error("closing an unused value failed", "key", key, "err", err)
}
