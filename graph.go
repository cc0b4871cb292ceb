package livestore

import (
	"context"
	"log/slog"
	"maps"
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
	rerun       bool   // an evaluation was cut short: run again, inputs changed or not
	changedPass uint64 // pass in which the value last changed

	subs     map[*subscription]struct{}
	liveRefs int // subscriptions + live dependents

	runs     int64
	lastDur  time.Duration
	totalDur time.Duration
}

// graph is a store's reactive graph.
//
// Concurrency: writers never wait for queries or callbacks. Commits and
// the sync processor's pulls and rebases only record which tables they
// wrote, and where they can tell which rows (keys.go) — invalidate, a short
// critical section on pendMu — and wake the refresh goroutine; SetSignal
// records the new value the same way (setSignal). The refresh goroutine,
// and Get when a value it needs is stale, apply what was recorded and run a
// refresh pass under mu: re-run the stale live queries on one read
// snapshot, then the computed values whose inputs changed, in dependency
// order (so no computed value ever sees a mix of old and new inputs), and
// hand changed values to their subscriptions. A pass run for Get or
// Subscribe is interrupted when the caller's context ends; what it did not
// finish stays stale and the refresh goroutine takes it up.
// Callbacks run on each subscription's own goroutine, one at a time and in
// order; a slow callback only delays itself, and it receives the latest value
// (intermediate values are coalesced, never queued).
//
// Locks:
//   - mu guards the nodes and every field of every node, the bookkeeping of
//     passes and stopped. Every method of graph requires it, except loop,
//     close, invalidate, setSignal, get, runsAlone, getAlone, kick and
//     notify, which take what they need. Queries and Computed functions run
//     under mu; callbacks never do. Get and Subscribe wait for mu only as
//     long as their context allows, and Get of a query no subscription keeps
//     live does not take it; writers never wait for it (setSignal only
//     tries it).
//   - pendMu guards pending, pendAll and pendSig only. Commits and
//     SetSignal take it without mu; applyPendingLocked takes it under mu.
//   - liveMu guards liveKeys; it is taken under mu or alone.
//   - obsMu guards observers. invalidate and Observe take it alone;
//     everything else takes it under mu.
//   - a subscription's or observer's own mu guards its delivery state; post
//     takes it under mu (subscriptions) or obsMu (observers).
//
// Lock order: mu, then pendMu, liveMu or obsMu, then a subscription's or
// observer's mu. A refresh pass reads the database under mu (taking a read connection,
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
	pendAll bool // a write may have changed any table; guarded by pendMu
	// pendSig are the signal values set since they were last applied, by
	// signal key; guarded by pendMu.
	pendSig map[any]pendingSignal
	wake    chan struct{} // wakes loop; buffered, never blocks a commit
	// pinTables are the tables with at least minRowPins nodes indexed with
	// a key pin, sorted; pinCount counts those nodes in all tables. For
	// commits to read without mu.
	pinTables  atomic.Pointer[[]string]
	pinCount   atomic.Int64
	minRowPins int // guarded by mu; set by newGraph (tests lower it)

	mu     ctxMutex
	nodes  map[any]*node
	byTab  map[string]map[*node]struct{}
	rows   rowIndex
	stale  map[*node]struct{} // nodes marked stale since the last pass
	nextID int64
	pass   uint64
	// passOpen: pass numbers a pass not finished yet (or signals set since
	// the last one); changes until it finishes count as changes of it.
	passOpen bool

	// The last refresh pass: the tables whose writes started it and the
	// nodes it re-ran. Guarded by mu.
	applied    map[string]struct{} // tables applied since the last pass
	lastTables []string
	lastReran  []int64
	lastPass   uint64
	lastAt     time.Time

	// liveKeys are the keys of the live nodes (liveRefs > 0), for Get to
	// tell without mu whether it must go through the graph. Written under
	// mu, guarded by liveMu (a leaf).
	liveMu   sync.Mutex
	liveKeys map[any]struct{}

	// Observers of writes and refreshes (Store.Observe).
	obsMu     sync.Mutex
	observers map[*observer]struct{}

	// subWG counts delivery goroutines of subscriptions and observers,
	// loopWG the refresh goroutine; close waits for both.
	subWG    sync.WaitGroup
	loopWG   sync.WaitGroup
	stop     chan struct{}
	stopLoop context.CancelFunc // interrupts the refresh goroutine's pass
	stopped  bool               // guarded by mu
}

// pendingSignal is a signal value set and not applied yet.
type pendingSignal struct {
	def nodeDef
	v   any
}

func newGraph(s *Store) *graph {
	g := &graph{
		s: s, log: s.log,
		pending: map[string]map[sqlite.RowKey]struct{}{},
		pendSig: map[any]pendingSignal{},
		mu:      newCtxMutex(),
		wake:    make(chan struct{}, 1),
		nodes:   map[any]*node{},
		byTab:   map[string]map[*node]struct{}{},
		rows: rowIndex{
			loose: map[string]map[*node]struct{}{},
			byKey: map[string]map[sqlite.RowKey]map[*node]struct{}{},
			count: map[string]int{},
		},
		stale:      map[*node]struct{}{},
		liveKeys:   map[any]struct{}{},
		stop:       make(chan struct{}),
		observers:  map[*observer]struct{}{},
		applied:    map[string]struct{}{},
		minRowPins: defaultMinRowPins,
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.stopLoop = cancel
	g.loopWG.Add(1)
	go g.loop(ctx)
	return g
}

// loop is the refresh goroutine: it runs a pass whenever woken, until the
// graph closes (which ends ctx).
func (g *graph) loop(ctx context.Context) {
	defer g.loopWG.Done()
	for {
		select {
		case <-g.stop:
			return
		case <-g.wake:
			g.mu.Lock()
			_ = g.refreshLocked(ctx) // fails only once closing
			g.mu.Unlock()
		}
	}
}

// kick wakes the refresh goroutine; it never blocks.
func (g *graph) kick() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// close stops the refresh goroutine and every subscription, waiting for
// callbacks in progress to return.
func (g *graph) close() {
	g.stopLoop() // a pass in progress gives up its queries
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
	g.kick()
}

// applyPendingLocked applies the signal values set and marks the nodes
// reading them or changed tables stale.
func (g *graph) applyPendingLocked() {
	g.pendMu.Lock()
	pending, all, sigs := g.pending, g.pendAll, g.pendSig
	if len(pending) == 0 && !all && len(sigs) == 0 {
		g.pendMu.Unlock()
		return
	}
	g.pending, g.pendAll = map[string]map[sqlite.RowKey]struct{}{}, false
	if len(sigs) > 0 {
		g.pendSig = map[any]pendingSignal{}
	} else {
		sigs = nil // still g.pendSig, written by setSignal
	}
	g.pendMu.Unlock()
	for _, ps := range sigs {
		g.applySignalLocked(ps.def, ps.v)
	}
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

// applySignalLocked sets a signal's value: a change of the open pass. Its
// subscribers get the value; the values derived from it become stale.
func (g *graph) applySignalLocked(def nodeDef, v any) {
	n := g.nodeFor(def)
	g.openPassLocked()
	n.value = v
	n.changedPass = g.pass
	for d := range n.dependents {
		g.markStale(d)
	}
	for sub := range n.subs {
		sub.post(v, nil)
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
		g.liveMu.Lock()
		g.liveKeys[n.key] = struct{}{}
		g.liveMu.Unlock()
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
	g.liveMu.Lock()
	delete(g.liveKeys, n.key)
	g.liveMu.Unlock()
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

// sortedSet returns the keys of set, sorted.
func sortedSet(set map[string]struct{}) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
