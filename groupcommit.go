package livestore

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"sync"

	"github.com/livestore-go/livestore/eventlog"
)

// This file holds group commit. Commit calls queue up; whichever of them
// takes the write lock next commits everything queued (up to maxGroup) in
// one transaction, and so with one fsync; calls that queue up while the
// group's calls run join it before it commits. Calls that arrive while a
// transaction waits for its fsync form the next group. A failing call
// fails alone: the group then runs again with each call in its own
// savepoint, and the others of its group commit. Every call returns once
// the transaction holding it is durable (or failed), after the reactive
// graph and the sync processor learned of the group's writes.

// maxGroup bounds the number of Commit calls in one transaction, so that
// one group's latency stays bounded.
const maxGroup = 256

// commitReq is one Commit call, from the queue to its result.
type commitReq struct {
	ctx   context.Context
	batch []prepared
	// done is closed by the group's leader once err is final.
	done chan struct{}
	err  error

	// Set by the group's leader under the write lock.
	written map[string]struct{} // tables its statements wrote (nil: see groupCapture.shared)
	changes []byte              // its changeset, when one was captured
	head    eventlog.SeqNum     // its last event
	evs     []eventlog.Event    // its events, numbered
}

// commitQueue holds the Commit calls that wait for a group.
type commitQueue struct {
	mu    sync.Mutex
	queue []*commitReq // guarded by mu

	// Guarded by the store's write lock: the groups led and the calls
	// they held.
	groups, calls int64
}

func (q *commitQueue) push(r *commitReq) {
	q.mu.Lock()
	q.queue = append(q.queue, r)
	q.mu.Unlock()
}

// take removes and returns up to max calls, oldest first.
func (q *commitQueue) take(max int) []*commitReq {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(len(q.queue), max)
	group := append([]*commitReq(nil), q.queue[:n]...)
	rest := copy(q.queue, q.queue[n:])
	clear(q.queue[rest:])
	q.queue = q.queue[:rest]
	return group
}

// remove takes r out of the queue; false means a leader took it already.
func (q *commitQueue) remove(r *commitReq) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, x := range q.queue {
		if x == r {
			q.queue = append(q.queue[:i], q.queue[i+1:]...)
			return true
		}
	}
	return false
}

// submit queues batch and returns its result: it leads groups (its own or
// a later one) whenever it gets the write lock first, and otherwise waits
// for the leader that took it. Once a leader took it, the call is no longer
// cancelled by ctx: it waits for the outcome, so that a commit never
// succeeds after Commit reported an error.
func (s *Store) submit(ctx context.Context, batch []prepared) error {
	req := &commitReq{ctx: ctx, batch: batch, done: make(chan struct{})}
	s.commits.push(req)
	for {
		select {
		case <-req.done:
			return req.err
		case s.wsem <- struct{}{}:
			if s.closed {
				s.releaseWrite()
				return s.abandon(req, ErrStoreClosed)
			}
			s.lead()
		case <-ctx.Done():
			return s.abandon(req, ctx.Err())
		case <-s.done:
			return s.abandon(req, ErrStoreClosed)
		}
	}
}

// abandon withdraws req with err, or, when a leader took it already,
// waits for its result.
func (s *Store) abandon(req *commitReq, err error) error {
	if s.commits.remove(req) {
		return err
	}
	<-req.done
	return req.err
}

// lead commits the queued calls as one group. The caller holds the write
// lock; lead releases it after the group's callers were told their result.
func (s *Store) lead() {
	defer s.releaseWrite()
	// Callers of the group before were just woken; letting them run first
	// lets those that commit again join this group rather than wait for
	// the next (with many committers, groups hold about all of them rather
	// than alternating halves). Alone, this costs nothing.
	runtime.Gosched()
	group := s.commits.take(maxGroup)
	if len(group) == 0 {
		return
	}
	c := s.captureFor()
	group, ok := s.commitGroup(group, &c)
	s.commits.groups++
	s.commits.calls += int64(len(group))
	if ok {
		for _, r := range group {
			if r.err == nil {
				s.tel.committed(r.ctx, r.evs, s.syncer != nil)
			}
		}
		written, changes := s.groupChanges(group, &c)
		s.afterCommit(written, changes)
		if s.syncer != nil {
			s.syncer.poke()
		}
	}
	for _, r := range group {
		close(r.done)
	}
}

// groupCapture says how a group learns the rows it changed (keys.go).
type groupCapture struct {
	mode groupMode
	// rows: read the rows changed from each call's changeset.
	rows bool
	// watched are the tables whose row triggers record the changed rows;
	// found is what they recorded for the group's committed calls.
	watched []string
	found   *rowSet
	// shared, when set, collects the tables every call of the group
	// writes, instead of a map per call: in a run without savepoints,
	// which commits all of its calls or none.
	shared map[string]struct{}
}

// captureFor returns how the next group learns its changed rows: a synced
// store reads them from the changesets it keeps for rebases, when a live
// query is pinned; a store without sync watches the tables with enough
// pinned live queries. It runs under the write lock, outside a
// transaction.
func (s *Store) captureFor() groupCapture {
	c := groupCapture{mode: appendEvents | s.undoMode()}
	if c.mode&keepChangeset != 0 {
		c.rows = s.graph.anyPinned()
		return c
	}
	tables := s.graph.rowTables()
	if err := s.watchRows(tables); err != nil {
		s.log.Warn("commit: cannot watch rows; invalidating whole tables", "err", err)
		return c
	}
	c.watched = tables
	return c
}

// commitGroup commits group in one transaction, together with the calls
// queued while it runs, and records each call's result in its err. It
// returns the group it committed and whether any call of it committed.
//
// The calls first run one after the other without savepoints: a savepoint
// copies every page a call first touches, which costs more than the call
// itself. Calls queued meanwhile join the transaction before it commits
// (gather). When a call of a larger group fails, the transaction is rolled
// back and the group runs again with each call in its own savepoint, so
// that only the failing call's savepoint is rolled back and the others
// commit.
func (s *Store) commitGroup(group []*commitReq, c *groupCapture) ([]*commitReq, bool) {
	start := s.head
	fail := func(err error) bool {
		s.w.Rollback()
		s.head = start
		for _, r := range group {
			if r.err == nil {
				r.err = fmt.Errorf("livestore: commit: %w", err)
			}
		}
		return false
	}
	if err := s.w.Begin(); err != nil {
		return group, fail(err)
	}
	if !c.rows {
		c.shared = map[string]struct{}{}
	}
	group, stopped := s.gather(group, c)
	if stopped && len(group) > 1 {
		s.w.Rollback()
		s.head = start
		c.shared = nil
		if err := s.w.Begin(); err != nil {
			return group, fail(err)
		}
		s.runCalls(group, c, true)
	}
	committed := false
	for _, r := range group {
		committed = committed || r.err == nil
	}
	if !committed {
		s.w.Rollback()
		s.head = start
		return group, false
	}
	if c.watched != nil {
		c.found = s.takeRows()
	}
	if err := s.w.Commit(); err != nil {
		return group, fail(err)
	}
	return group, true
}

// gather runs the calls of group without savepoints, then those queued
// while they ran, until no call waits or the group holds maxGroup calls:
// the calls that queue up while a group is written share its flush rather
// than wait for the next. It returns the group run and whether a call
// failed (runCalls).
func (s *Store) gather(group []*commitReq, c *groupCapture) ([]*commitReq, bool) {
	next := group
	for {
		if s.runCalls(next, c, false) {
			return group, true
		}
		if len(group) >= maxGroup {
			return group, false
		}
		if next = s.commits.take(maxGroup - len(group)); len(next) == 0 {
			return group, false
		}
		group = append(group, next...)
	}
}

// runCalls runs the calls of group inside the open transaction, each in
// its own savepoint when savepoints is set, recording each call's result in
// its err and moving the head past the calls that succeeded. Without
// savepoints it stops at the first failing call and reports true: the
// transaction then holds part of that call and must be rolled back.
func (s *Store) runCalls(group []*commitReq, c *groupCapture, savepoints bool) (stopped bool) {
	for _, r := range group {
		if r.err = r.ctx.Err(); r.err != nil {
			continue
		}
		if savepoints {
			r.err = s.w.Savepoint(func() error { return s.commitOne(r, c) })
		} else {
			r.err = s.commitOne(r, c)
		}
		if r.err != nil {
			if !savepoints {
				return true
			}
			continue
		}
		s.head = r.head
	}
	return false
}

// commitOne numbers r's events after the head, appends and materializes
// them, inside the group's transaction.
func (s *Store) commitOne(r *commitReq, c *groupCapture) error {
	evs, values, err := s.number(r.batch)
	if err != nil {
		return err
	}
	written := c.shared
	if written == nil {
		r.written = map[string]struct{}{}
		written = r.written
	}
	cs, err := s.materializeCapture(r.ctx, evs, values, c.mode, written)
	if err != nil {
		return err
	}
	r.changes, r.head, r.evs = cs, evs[len(evs)-1].SeqNum, evs
	return nil
}

// groupChanges returns the tables the committed calls of group wrote and
// the rows they changed in them, as c found them (nil: none found, all
// tables changed as a whole).
func (s *Store) groupChanges(group []*commitReq, c *groupCapture) (map[string]struct{}, rowChanges) {
	written := map[string]struct{}{}
	if c.rows {
		rows := rowChanges{}
		for _, r := range group {
			if r.err == nil {
				mergeRows(written, rows, r.written, s.rowsOf(r.changes, s.tables, r.written))
			}
		}
		return written, rows
	}
	if c.shared != nil {
		written = c.shared
	}
	for _, r := range group {
		if r.err == nil {
			maps.Copy(written, r.written)
		}
	}
	if c.found == nil {
		return written, nil
	}
	return written, c.found.result(c.watched, written)
}
