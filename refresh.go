package livestore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"time"

	"github.com/livestore-go/livestore/internal/sqlite"
)

// This file holds how a store's reactive graph (graph.go) computes values:
// one node at a time, and a refresh pass over the stale live nodes.

// ensure brings n up to date when stale; its value and query error are then
// n.value and n.err. It fails only when ctx ended first (the error wraps
// ctx.Err()) or no read connection could be had; n then stays stale.
func (g *graph) ensure(ctx context.Context, n *node) error {
	if n.valid {
		return nil
	}
	r, done, err := g.s.snapshotReader(ctx)
	if err != nil {
		return err
	}
	defer done()
	return g.compute(ctx, n, r)
}

// compute runs n, reading through r, and records whether its value changed.
// A failure of the query or function is n's value (n.err); compute itself
// fails only when ctx ended while n ran, and n then keeps nothing of the run.
func (g *graph) compute(ctx context.Context, n *node, r connReader) error {
	if n.kind == signalNode {
		n.valid = true
		return nil
	}
	ctx, span := g.s.tel.start(ctx, spanQuery)
	if span.IsRecording() {
		r.rows = new(int)
	}
	start := time.Now()
	var v any
	var err error
	if n.kind == dbNode {
		v, err = g.runDBNode(n, r)
	} else {
		v, err = g.runComputedNode(ctx, n, r)
	}
	n.runs++
	n.lastDur = time.Since(start)
	n.totalDur += n.lastDur
	if ctx.Err() != nil {
		// Whatever the run returned may rest on an interrupted read.
		err = interrupted(ctx, n)
		g.s.tel.endQuery(ctx, span, n, r.rows, err)
		n.rerun = true
		return err
	}
	g.s.tel.endQuery(ctx, span, n, r.rows, err)
	n.rerun = false
	if err != nil {
		if n.err == nil || n.err.Error() != err.Error() {
			n.changedPass = g.pass
		}
		n.err = err
		n.valid = true
		n.everRun = true
		g.log.Warn("reactive query failed", "label", n.label, "sql", n.sql, "err", err)
		return nil
	}
	if !n.everRun || n.err != nil || !reflect.DeepEqual(n.value, v) {
		n.changedPass = g.pass
	}
	n.value, n.err, n.valid, n.everRun = v, nil, true, true
	return nil
}

// runDBNode runs the SQL of a db node. Its first run finds the tables the
// query reads, which decide the writes that make it stale.
func (g *graph) runDBNode(n *node, r connReader) (any, error) {
	if n.defErr != nil {
		return nil, n.defErr
	}
	if n.tables == nil {
		acc, err := g.s.analyze(r.c, n.sql)
		if err != nil {
			return nil, err
		}
		g.index(n, acc.Reads, g.s.usablePin(n.wantPin, acc.Reads))
	}
	return n.runDB(r)
}

// runComputedNode runs the function of a computed node, recording afresh the
// inputs it reads, and lets go of the inputs it no longer reads.
func (g *graph) runComputedNode(ctx context.Context, n *node, r connReader) (any, error) {
	for d := range n.deps {
		delete(d.dependents, n)
	}
	old := n.deps
	n.deps = map[*node]struct{}{}
	n.height = 0
	v, err := n.runComputed(&Getter{g: g, self: n, ctx: ctx, r: r})
	if n.liveRefs > 0 {
		for d := range old {
			g.release(d)
		}
	} else {
		for d := range old {
			g.collect(d)
		}
	}
	return v, err
}

// openPassLocked starts a pass number unless one is open: changes made
// until the pass ends (signals set, values re-run) count as changes of it.
func (g *graph) openPassLocked() {
	if !g.passOpen {
		g.pass++
		g.passOpen = true
	}
}

// refreshLocked brings every stale live node up to date and notifies the
// subscriptions whose value changed. It fails only when ctx ended before the
// pass finished (the error wraps ctx.Err()): the nodes it did not bring up
// to date stay stale, the pass stays open, and the refresh goroutine
// finishes it.
func (g *graph) refreshLocked(ctx context.Context) error {
	if g.stopped {
		return nil
	}
	g.applyPendingLocked()
	var stale []*node
	for n := range g.stale {
		if !n.valid && n.liveRefs > 0 {
			stale = append(stale, n)
		}
	}
	clear(g.stale)
	if len(stale) == 0 {
		return nil
	}
	g.openPassLocked()
	sort.Slice(stale, func(i, j int) bool { return stale[i].height < stale[j].height })
	// One read snapshot for all queries of the pass.
	r, done, err := g.s.snapshotReader(ctx)
	if err != nil {
		g.requeueLocked(stale)
		if ctx.Err() != nil {
			g.kick()
			return err
		}
		if !errors.Is(err, ErrStoreClosed) {
			g.log.Warn("reactive refresh: no read connection", "err", err)
		}
		return nil
	}
	changed, reran, err := g.runPassLocked(ctx, stale, r)
	done()
	g.lastReran, g.lastPass, g.lastAt = reran, g.pass, time.Now()
	g.lastTables = sortedSet(g.applied)
	clear(g.applied)
	if len(reran) > 0 {
		g.notify(Change{Reran: reran})
	}
	for _, n := range changed {
		for sub := range n.subs {
			sub.post(n.value, n.err)
		}
	}
	if err != nil {
		g.requeueLocked(stale)
		g.kick()
		return err
	}
	g.passOpen = false
	return nil
}

// runPassLocked re-runs the stale nodes, sorted by height, skipping computed
// values none of whose inputs changed in this pass. It returns the nodes
// whose value changed and the ids of those it ran, and stops early only when
// ctx ends.
func (g *graph) runPassLocked(ctx context.Context, stale []*node, r connReader) (changed []*node, reran []int64, err error) {
	pass := g.pass
	for _, n := range stale {
		if n.valid {
			continue
		}
		if n.kind == computedNode && n.everRun && !n.rerun {
			inputChanged := false
			for d := range n.deps {
				if !d.valid {
					if err := g.compute(ctx, d, r); err != nil {
						return changed, reran, err
					}
				}
				if d.changedPass == pass {
					inputChanged = true
				}
			}
			if !inputChanged {
				n.valid = true
				continue
			}
		}
		if err := g.compute(ctx, n, r); err != nil {
			return changed, reran, err
		}
		reran = append(reran, n.id)
		if n.changedPass == pass {
			changed = append(changed, n)
		}
	}
	return changed, reran, nil
}

// requeueLocked marks the nodes of an unfinished pass that are still stale
// for the next pass.
func (g *graph) requeueLocked(nodes []*node) {
	for _, n := range nodes {
		if !n.valid {
			g.stale[n] = struct{}{}
		}
	}
}

// snapshotReader returns a Reader whose queries all see one snapshot of the
// database, and a function to release it. Its statements are interrupted
// when ctx ends.
func (s *Store) snapshotReader(ctx context.Context) (connReader, func(), error) {
	c, release, err := s.reader(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return connReader{}, nil, fmt.Errorf("livestore: waiting for a read connection: %w", ctx.Err())
		}
		return connReader{}, nil, err
	}
	restore := c.SetInterrupt(ctx)
	if s.readers == nil {
		// In-memory stores read on the writer, under the write lock: already
		// a stable snapshot.
		return connReader{s: s, c: c}, func() { restore(); release() }, nil
	}
	if err := c.BeginRead(); err != nil {
		restore()
		release()
		if ctx.Err() != nil {
			return connReader{}, nil, fmt.Errorf("livestore: starting a read: %w", ctx.Err())
		}
		return connReader{}, nil, err
	}
	return connReader{s: s, c: c}, func() { restore(); c.Rollback(); release() }, nil
}

// connReader reads on one given connection.
type connReader struct {
	s    *Store
	c    *sqlite.Conn
	rows *int // when set, counts the rows read
}

func (r connReader) readRows(ctx context.Context, query string, args []any, fn func(*sqlite.Row) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.rows != nil {
		read := fn
		fn = func(row *sqlite.Row) error {
			*r.rows++
			return read(row)
		}
	}
	return r.c.Query(query, args, fn)
}

func (r connReader) decoderCache() *decoderCache { return &r.s.decoders }
