package livestore

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livestore-go/livestore/internal/sqlite"
)

// This file holds a store's reactive graph: its nodes, how writes make them
// stale and how a refresh pass brings them up to date. Reading values and
// subscribing to them is in subscribe.go; observers in observe.go.

// nodeKind says how a node gets its value.
type nodeKind uint8

const (
	dbNode       nodeKind = iota + 1 // runs a SQL query
	computedNode                     // runs a Go function over other nodes
	signalNode                       // holds a value the program sets
)

// String is the kind's name as NodeInfo.Kind reports it.
func (k nodeKind) String() string {
	switch k {
	case dbNode:
		return "db"
	case computedNode:
		return "computed"
	case signalNode:
		return "signal"
	}
	return "unknown"
}

// node is one reactive value in a store's graph. All fields are guarded by
// graph.mu.
type node struct {
	id     int64
	kind   nodeKind
	label  string
	key    any
	pinned bool // signals keep their value while unused

	sql         string
	args        []any
	defErr      error
	tables      []string
	wantPin     *keyPin // the key pin of the query's definition (keys.go)
	pin         *keyPin // wantPin once indexed, when it holds in the store
	runDB       func(r Reader) (any, error)
	runComputed func(g *Getter) (any, error)

	deps       map[*node]struct{}
	dependents map[*node]struct{}
	height     int

	value       any
	err         error
	valid       bool
	everRun     bool
	changedPass uint64 // pass in which the value last changed

	subs     map[*subscription]struct{}
	liveRefs int // subscriptions + live dependents

	runs     int64
	lastDur  time.Duration
	totalDur time.Duration
}

// graph is a store's reactive graph.
//
// Concurrency: commits only record which tables they wrote, and where they
// can tell which rows (keys.go) — invalidate, a short critical section on
// pendMu — and wake the refresh goroutine; they never wait for queries or
// callbacks. The refresh goroutine, and Get when a value it needs is stale,
// run a refresh pass under mu: re-run the stale live queries on one read
// snapshot, then the computed values whose inputs changed, in dependency order (so no computed value ever sees a mix of old
// and new inputs), and hand changed values to their subscriptions.
// Callbacks run on each subscription's own goroutine, one at a time and in
// order; a slow callback only delays itself, and it receives the latest value
// (intermediate values are coalesced, never queued).
//
// Locks:
//   - mu guards the nodes and every field of every node, the bookkeeping of
//     passes and stopped. Every method of graph requires it, except loop,
//     close, invalidate and notify, which take what they need. Queries and
//     Computed functions run under mu; callbacks never do.
//   - pendMu guards pending and pendAll only. Commits take it without mu;
//     applyPendingLocked takes it under mu.
//   - obsMu guards observers. invalidate takes it alone; everything else
//     takes it under mu.
//   - a subscription's or observer's own mu guards its delivery state; post
//     takes it under mu (subscriptions) or obsMu (observers).
//
// Lock order: mu, then pendMu or obsMu, then a subscription's or observer's
// mu. A refresh pass reads the database under mu (taking a read connection,
// or the write lock of an in-memory store); since commits never take mu, a
// pass that waits for a commit's write lock cannot deadlock with it.
type graph struct {
	s   *Store
	log *slog.Logger

	pendMu sync.Mutex
	// pending are the tables written since the last pass, each with the
	// keys of the rows changed, or nil when the table changed as a whole.
	// Guarded by pendMu.
	pending map[string]map[sqlite.RowKey]struct{}
	pendAll bool          // a write may have changed any table; guarded by pendMu
	wake    chan struct{} // wakes loop; buffered, never blocks a commit
	// pinTables are the tables with at least minRowPins nodes indexed with
	// a key pin, sorted; pinCount counts those nodes in all tables. For
	// commits to read without mu.
	pinTables  atomic.Pointer[[]string]
	pinCount   atomic.Int64
	minRowPins int // guarded by mu; set by newGraph (tests lower it)

	mu     sync.Mutex
	nodes  map[any]*node
	byTab  map[string]map[*node]struct{}
	rows   rowIndex
	stale  map[*node]struct{} // nodes marked stale since the last pass
	nextID int64
	pass   uint64

	// The last refresh pass: the tables whose writes started it and the
	// nodes it re-ran. Guarded by mu.
	applied    map[string]struct{} // tables applied since the last pass
	lastTables []string
	lastReran  []int64
	lastPass   uint64
	lastAt     time.Time

	// Observers of writes and refreshes (Store.Observe).
	obsMu     sync.Mutex
	observers map[*observer]struct{}

	// subWG counts delivery goroutines of subscriptions and observers,
	// loopWG the refresh goroutine; close waits for both.
	subWG   sync.WaitGroup
	loopWG  sync.WaitGroup
	stop    chan struct{}
	stopped bool // guarded by mu
}

func newGraph(s *Store) *graph {
	g := &graph{
		s: s, log: s.log,
		pending: map[string]map[sqlite.RowKey]struct{}{},
		wake:    make(chan struct{}, 1),
		nodes:   map[any]*node{},
		byTab:   map[string]map[*node]struct{}{},
		rows: rowIndex{
			loose: map[string]map[*node]struct{}{},
			byKey: map[string]map[sqlite.RowKey]map[*node]struct{}{},
			count: map[string]int{},
		},
		stale:      map[*node]struct{}{},
		stop:       make(chan struct{}),
		observers:  map[*observer]struct{}{},
		applied:    map[string]struct{}{},
		minRowPins: defaultMinRowPins,
	}
	g.loopWG.Add(1)
	go g.loop()
	return g
}

func (g *graph) loop() {
	defer g.loopWG.Done()
	for {
		select {
		case <-g.stop:
			return
		case <-g.wake:
			g.mu.Lock()
			g.refreshLocked(context.Background(), true)
			g.mu.Unlock()
		}
	}
}

// close stops the refresh goroutine and every subscription, waiting for
// callbacks in progress to return.
func (g *graph) close() {
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		return
	}
	g.stopped = true
	close(g.stop)
	for _, n := range g.nodes {
		for sub := range n.subs {
			sub.cancel()
		}
	}
	g.obsMu.Lock()
	for o := range g.observers {
		o.cancel()
	}
	clear(g.observers)
	g.obsMu.Unlock()
	g.mu.Unlock()
	g.loopWG.Wait()
	g.subWG.Wait()
}

// invalidate records that tables changed and wakes the refresh goroutine.
// The tables of rows changed in the rows listed there only; the others
// changed as a whole ("*": every table).
func (g *graph) invalidate(tables map[string]struct{}, rows rowChanges) {
	g.notify(Change{Wrote: true, Tables: sortedSet(tables)})
	if len(tables) == 0 {
		return
	}
	g.pendMu.Lock()
	if _, all := tables["*"]; all {
		g.pendAll = true
	}
	for t := range tables {
		keys, byRow := rows[t]
		have, pending := g.pending[t]
		switch {
		case !byRow || keys == nil || (pending && have == nil):
			g.pending[t] = nil
		case !pending:
			g.pending[t] = maps.Clone(keys)
		case len(have)+len(keys) > maxRowKeys:
			g.pending[t] = nil
		default:
			maps.Copy(have, keys)
		}
	}
	g.pendMu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// applyPendingLocked marks the nodes reading changed tables stale.
func (g *graph) applyPendingLocked() {
	g.pendMu.Lock()
	pending, all := g.pending, g.pendAll
	if len(pending) == 0 && !all {
		g.pendMu.Unlock()
		return
	}
	g.pending, g.pendAll = map[string]map[sqlite.RowKey]struct{}{}, false
	g.pendMu.Unlock()
	if all {
		g.applied["*"] = struct{}{}
	}
	for t := range pending {
		g.applied[t] = struct{}{}
	}
	if all {
		for _, n := range g.nodes {
			if n.kind == dbNode {
				g.markStale(n)
			}
		}
		return
	}
	for t, keys := range pending {
		g.markTableLocked(t, keys)
	}
}

func (g *graph) markStale(n *node) {
	if !n.valid && n.everRun {
		return
	}
	n.valid = false
	g.stale[n] = struct{}{}
	for d := range n.dependents {
		g.markStale(d)
	}
}

// nodeFor returns the store's node for def, creating it.
func (g *graph) nodeFor(def nodeDef) *node {
	k := def.key()
	if n, ok := g.nodes[k]; ok {
		return n
	}
	n := def.newNode(g.s)
	g.nextID++
	n.id, n.key = g.nextID, k
	n.deps, n.dependents, n.subs = map[*node]struct{}{}, map[*node]struct{}{}, map[*subscription]struct{}{}
	g.nodes[k] = n
	return n
}

// link records that from reads to.
func (g *graph) link(from, to *node) {
	if _, ok := from.deps[to]; ok {
		return
	}
	from.deps[to] = struct{}{}
	to.dependents[from] = struct{}{}
	if from.liveRefs > 0 {
		g.retain(to)
	}
	if to.height+1 > from.height {
		from.height = to.height + 1
	}
}

func (g *graph) retain(n *node) {
	n.liveRefs++
	if n.liveRefs == 1 {
		for d := range n.deps {
			g.retain(d)
		}
	}
}

func (g *graph) release(n *node) {
	n.liveRefs--
	if n.liveRefs > 0 {
		return
	}
	for d := range n.deps {
		g.release(d)
	}
	g.collect(n)
}

// collect forgets n when nothing keeps it: no subscription, no live
// dependent, not a signal.
func (g *graph) collect(n *node) {
	if n.liveRefs > 0 || n.pinned || len(n.dependents) > 0 {
		return
	}
	delete(g.nodes, n.key)
	g.unindex(n)
	for d := range n.deps {
		delete(d.dependents, n)
		g.collect(d)
	}
}

// ensure returns n's current value, computing it when stale.
func (g *graph) ensure(ctx context.Context, n *node) (any, error) {
	if n.valid {
		return n.value, n.err
	}
	r, done, err := g.s.snapshotReader(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	g.compute(ctx, n, r)
	return n.value, n.err
}

// compute runs n, reading through r, and records whether its value changed.
func (g *graph) compute(ctx context.Context, n *node, r connReader) {
	if n.kind == signalNode {
		n.valid = true
		return
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
	g.s.tel.endQuery(ctx, span, n, r.rows, err)
	n.runs++
	n.lastDur = time.Since(start)
	n.totalDur += n.lastDur
	if err != nil {
		if n.err == nil || n.err.Error() != err.Error() {
			n.changedPass = g.pass
		}
		n.err = err
		n.valid = true
		n.everRun = true
		g.log.Warn("reactive query failed", "label", n.label, "sql", n.sql, "err", err)
		return
	}
	if !n.everRun || n.err != nil || !reflect.DeepEqual(n.value, v) {
		n.changedPass = g.pass
	}
	n.value, n.err, n.valid, n.everRun = v, nil, true, true
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

// refreshLocked brings every stale live node up to date and notifies the
// subscriptions whose value changed.
// A signal set starts its own pass (newPass false) so that its change counts
// as an input change in this pass.
func (g *graph) refreshLocked(ctx context.Context, newPass bool) {
	if g.stopped {
		return
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
		return
	}
	if newPass {
		g.pass++
	}
	pass := g.pass
	sort.Slice(stale, func(i, j int) bool { return stale[i].height < stale[j].height })
	// One read snapshot for all queries of the pass.
	r, done, err := g.s.snapshotReader(ctx)
	if err != nil {
		if !errors.Is(err, ErrStoreClosed) {
			g.log.Warn("reactive refresh: no read connection", "err", err)
		}
		return
	}
	defer done()
	var changed []*node
	var reran []int64
	for _, n := range stale {
		if n.valid {
			continue
		}
		if n.kind == computedNode && n.everRun {
			inputChanged := false
			for d := range n.deps {
				if !d.valid {
					g.compute(ctx, d, r)
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
		g.compute(ctx, n, r)
		reran = append(reran, n.id)
		if n.changedPass == pass {
			changed = append(changed, n)
		}
	}
	g.lastReran, g.lastPass, g.lastAt = reran, pass, time.Now()
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
}

// sortedSet returns the keys of set, sorted.
func sortedSet(set map[string]struct{}) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// snapshotReader returns a Reader whose queries all see one snapshot of the
// database, and a function to release it.
func (s *Store) snapshotReader(ctx context.Context) (connReader, func(), error) {
	c, release, err := s.reader(ctx)
	if err != nil {
		return connReader{}, nil, err
	}
	if s.readers == nil {
		// In-memory stores read on the writer, under the write lock: already
		// a stable snapshot.
		return connReader{s: s, c: c}, release, nil
	}
	if err := c.BeginRead(); err != nil {
		release()
		return connReader{}, nil, err
	}
	return connReader{s: s, c: c}, func() { c.Rollback(); release() }, nil
}

// connReader reads on one given connection.
type connReader struct {
	s    *Store
	c    *sqlite.Conn
	rows *int // when set, counts the rows read
}

func (r connReader) readRows(ctx context.Context, query string, args []any, fn func(*sqlite.Row) error) error {
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
