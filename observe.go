package livestore

import (
	"sort"
	"sync"
)

// This file holds the observers of a store's writes and of its reactive
// refreshes (Store.Observe), used by tools watching a live store.

// Change tells an observer (Store.Observe) what happened in the store since
// its last call.
type Change struct {
	// Wrote is true when events were written to the eventlog or state:
	// committed, pulled, rebased, imported, rebuilt.
	Wrote bool
	// Tables are the state tables written ("*": any may have changed).
	Tables []string
	// Reran lists the reactive nodes re-run since (see NodeInfo.ID).
	Reran []int64
}

// Observe calls fn after writes to the store and after refreshes of its
// reactive graph, until the returned stop is called or the store closes.
// Calls never overlap and come in order, on a goroutine of the store; what
// happens while fn runs is merged into the next call, so a slow fn delays
// only itself and never a commit.
func (s *Store) Observe(fn func(Change)) (stop func(), err error) {
	g := s.graph
	o := &observer{g: g, fn: fn, tables: map[string]struct{}{}, reran: map[int64]struct{}{}}
	// Not under mu, so that a refresh in progress does not hold this up:
	// close closes stop before it cancels the observers under obsMu.
	g.obsMu.Lock()
	select {
	case <-g.stop:
		g.obsMu.Unlock()
		return nil, ErrStoreClosed
	default:
	}
	g.observers[o] = struct{}{}
	g.obsMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			o.cancel()
			g.obsMu.Lock()
			delete(g.observers, o)
			g.obsMu.Unlock()
		})
	}, nil
}

// notify hands c to every observer.
func (g *graph) notify(c Change) {
	g.obsMu.Lock()
	defer g.obsMu.Unlock()
	for o := range g.observers {
		o.post(c)
	}
}

// observer delivers merged Changes to one function.
type observer struct {
	g  *graph
	fn func(Change)

	mu        sync.Mutex
	wrote     bool
	tables    map[string]struct{}
	reran     map[int64]struct{}
	has       bool
	running   bool
	cancelled bool
}

func (o *observer) post(c Change) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cancelled {
		return
	}
	o.wrote = o.wrote || c.Wrote
	for _, t := range c.Tables {
		o.tables[t] = struct{}{}
	}
	for _, id := range c.Reran {
		o.reran[id] = struct{}{}
	}
	o.has = true
	if o.running {
		return
	}
	o.running = true
	o.g.subWG.Add(1)
	go o.run()
}

func (o *observer) run() {
	defer o.g.subWG.Done()
	for {
		o.mu.Lock()
		if !o.has || o.cancelled {
			o.running = false
			o.mu.Unlock()
			return
		}
		c := Change{Wrote: o.wrote, Tables: sortedSet(o.tables)}
		for id := range o.reran {
			c.Reran = append(c.Reran, id)
		}
		sort.Slice(c.Reran, func(i, j int) bool { return c.Reran[i] < c.Reran[j] })
		o.wrote, o.has = false, false
		clear(o.tables)
		clear(o.reran)
		o.mu.Unlock()
		o.fn(c)
	}
}

func (o *observer) cancel() {
	o.mu.Lock()
	o.cancelled = true
	o.mu.Unlock()
}
