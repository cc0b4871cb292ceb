package livestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/livestore-go/livestore/internal/sqlite"
)

// Queryable is a reactive value of type T: a *DBQuery, a *Computed or a
// *Signal. Read it with Get, watch it with Subscribe or Watch.
type Queryable[T any] interface {
	definition() nodeDef
	// cast converts a node value back to T; it also lets Go infer T from
	// the argument of Get, Subscribe and Use.
	cast(v any) T
}

// nodeDef is the store-independent definition behind a reactive node.
type nodeDef interface {
	// key identifies nodes that may be shared: equal keys, one node.
	key() any
	newNode(s *Store) *node
}

// DBQuery is a reactive SQL query whose result has type R. Two DBQuery
// values with the same SQL, arguments and row type share one node in a
// store, so re-creating a query (e.g. because its arguments depend on Go
// variables) is cheap and keeps subscriptions of the old one intact.
type DBQuery[R any] struct {
	label  string
	sql    string
	args   []any
	err    error
	shared any // non-nil: the sharing key
	run    func(r Reader) (R, error)
}

// QueryDB is a reactive query returning all rows decoded into T.
func QueryDB[T any](stmt Statement, label ...string) *DBQuery[[]T] {
	q := &DBQuery[[]T]{label: strings.Join(label, " ")}
	q.sql, q.args, q.err = stmt.Build()
	var zero T
	q.shared = dbKey{sql: q.sql, args: fmt.Sprintf("%#v", q.args), typ: reflect.TypeOf(&zero).Elem(), kind: "rows"}
	q.run = func(r Reader) ([]T, error) { return Query[T](context.Background(), r, SQL(q.sql, q.args...)) }
	return q
}

// QueryDBFirst is a reactive query returning the first row decoded into T,
// or fallback when there is none.
func QueryDBFirst[T any](stmt Statement, fallback T, label ...string) *DBQuery[T] {
	q := &DBQuery[T]{label: strings.Join(label, " ")}
	q.sql, q.args, q.err = stmt.Build()
	var zero T
	q.shared = dbKey{sql: q.sql, args: fmt.Sprintf("%#v|%#v", q.args, fallback), typ: reflect.TypeOf(&zero).Elem(), kind: "first"}
	q.run = func(r Reader) (T, error) {
		v, _, err := First(context.Background(), r, SQL(q.sql, q.args...), fallback)
		return v, err
	}
	return q
}

// MapQuery derives a query whose result is fn applied to q's result. The
// mapped query is its own node (functions cannot be compared), so keep the
// returned value rather than re-creating it.
func MapQuery[T, R any](q *DBQuery[T], fn func(T) R, label ...string) *DBQuery[R] {
	m := &DBQuery[R]{label: strings.Join(label, " "), sql: q.sql, args: q.args, err: q.err}
	if m.label == "" {
		m.label = q.label
	}
	m.run = func(r Reader) (R, error) {
		v, err := q.run(r)
		if err != nil {
			var zero R
			return zero, err
		}
		return fn(v), nil
	}
	return m
}

// SQL is the query's SQL text.
func (q *DBQuery[R]) SQL() string { return q.sql }

type dbKey struct {
	sql, args string
	typ       reflect.Type
	kind      string
}

func (q *DBQuery[R]) definition() nodeDef { return q }
func (q *DBQuery[R]) cast(v any) R        { return v.(R) }

func (q *DBQuery[R]) key() any {
	if q.shared != nil {
		return q.shared
	}
	return q
}

func (q *DBQuery[R]) newNode(s *Store) *node {
	return &node{kind: "db", label: q.label, sql: q.sql, args: q.args, defErr: q.err,
		runDB: func(r Reader) (any, error) { return q.run(r) }}
}

// Computed is a reactive value derived from other reactive values. Its
// function reads them with Use, which records them as dependencies; it
// re-runs only when one of them changed.
type Computed[R any] struct {
	label string
	fn    func(g *Getter) (R, error)
}

// NewComputed defines a computed value.
func NewComputed[R any](fn func(g *Getter) (R, error), label ...string) *Computed[R] {
	return &Computed[R]{label: strings.Join(label, " "), fn: fn}
}

func (c *Computed[R]) definition() nodeDef { return c }
func (c *Computed[R]) cast(v any) R        { return v.(R) }
func (c *Computed[R]) key() any            { return c }
func (c *Computed[R]) newNode(s *Store) *node {
	return &node{kind: "computed", label: c.label,
		runComputed: func(g *Getter) (any, error) { return c.fn(g) }}
}

// Signal is a reactive value set by the program (SetSignal), e.g. a filter
// chosen in a UI. Each store holds its own value, starting at the initial
// one.
type Signal[T any] struct {
	label   string
	initial T
}

// NewSignal defines a signal.
func NewSignal[T any](initial T, label ...string) *Signal[T] {
	return &Signal[T]{label: strings.Join(label, " "), initial: initial}
}

func (sg *Signal[T]) definition() nodeDef { return sg }
func (sg *Signal[T]) cast(v any) T        { return v.(T) }
func (sg *Signal[T]) key() any            { return sg }
func (sg *Signal[T]) newNode(s *Store) *node {
	return &node{kind: "signal", label: sg.label, value: sg.initial, valid: true, pinned: true}
}

// Getter is handed to a Computed's function to read its inputs.
type Getter struct {
	g    *graph
	self *node
	ctx  context.Context
	r    connReader
}

// Use reads q inside a Computed and records it as an input.
func Use[T any](g *Getter, q Queryable[T]) (T, error) {
	var zero T
	n := g.g.nodeFor(q.definition())
	g.g.link(g.self, n)
	if !n.valid {
		g.g.compute(g.ctx, n, g.r)
	}
	if n.err != nil {
		return zero, n.err
	}
	return n.value.(T), nil
}

// node is one reactive value in a store's graph. All fields are guarded by
// graph.mu.
type node struct {
	id     int64
	kind   string
	label  string
	key    any
	pinned bool // signals keep their value while unused

	sql         string
	args        []any
	defErr      error
	tables      []string
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
// Concurrency: commits only record which tables they wrote (invalidate, a
// short critical section on pendMu) and wake the refresh goroutine; they
// never wait for queries or callbacks. The refresh goroutine, and Get when a
// value it needs is stale, run a refresh pass under mu: re-run the stale live
// queries on one read snapshot, then the computed values whose inputs
// changed, in dependency order (so no computed value ever sees a mix of old
// and new inputs), and hand changed values to their subscriptions.
// Callbacks run on each subscription's own goroutine, one at a time and in
// order; a slow callback only delays itself, and it receives the latest value
// (intermediate values are coalesced, never queued).
type graph struct {
	s   *Store
	log *slog.Logger

	pendMu  sync.Mutex
	pending map[string]struct{}
	pendAll bool
	wake    chan struct{}

	mu     sync.Mutex
	nodes  map[any]*node
	byTab  map[string]map[*node]struct{}
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

	// Observers of writes and refreshes (Store.Observe). Lock order: mu,
	// then obsMu, then an observer's own mu.
	obsMu     sync.Mutex
	observers map[*observer]struct{}

	subWG   sync.WaitGroup
	loopWG  sync.WaitGroup
	stop    chan struct{}
	stopped bool
}

func newGraph(s *Store) *graph {
	g := &graph{
		s: s, log: s.log,
		pending:   map[string]struct{}{},
		wake:      make(chan struct{}, 1),
		nodes:     map[any]*node{},
		byTab:     map[string]map[*node]struct{}{},
		stale:     map[*node]struct{}{},
		stop:      make(chan struct{}),
		observers: map[*observer]struct{}{},
		applied:   map[string]struct{}{},
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

// invalidate records that tables changed (nil: all tables) and wakes the
// refresh goroutine.
func (g *graph) invalidate(tables map[string]struct{}) {
	g.notify(Change{Wrote: true, Tables: sortedSet(tables)})
	if len(tables) == 0 {
		return
	}
	g.pendMu.Lock()
	if _, all := tables["*"]; all {
		g.pendAll = true
	}
	for t := range tables {
		g.pending[t] = struct{}{}
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
	g.pending, g.pendAll = map[string]struct{}{}, false
	g.pendMu.Unlock()
	if all {
		g.applied["*"] = struct{}{}
	}
	for t := range pending {
		g.applied[t] = struct{}{}
	}
	if all {
		for _, n := range g.nodes {
			if n.kind == "db" {
				g.markStale(n)
			}
		}
		return
	}
	for t := range pending {
		for n := range g.byTab[t] {
			g.markStale(n)
		}
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
	for _, t := range n.tables {
		delete(g.byTab[t], n)
	}
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
	start := time.Now()
	var v any
	var err error
	switch n.kind {
	case "db":
		if n.defErr != nil {
			err = n.defErr
			break
		}
		if n.tables == nil {
			var acc sqlite.Access
			if acc, err = g.s.analyze(r.c, n.sql); err != nil {
				break
			}
			n.tables = acc.Reads
			for _, t := range n.tables {
				if g.byTab[t] == nil {
					g.byTab[t] = map[*node]struct{}{}
				}
				g.byTab[t][n] = struct{}{}
			}
		}
		v, err = n.runDB(r)
	case "computed":
		for d := range n.deps {
			delete(d.dependents, n)
		}
		old := n.deps
		n.deps = map[*node]struct{}{}
		n.height = 0
		v, err = n.runComputed(&Getter{g: g, self: n, ctx: ctx, r: r})
		if n.liveRefs > 0 {
			for d := range old {
				g.release(d)
			}
		} else {
			for d := range old {
				g.collect(d)
			}
		}
	case "signal":
		n.valid = true
		return
	}
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
		if n.kind == "computed" && n.everRun {
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
	g.applyPendingLocked()
	n := g.nodeFor(q.definition())
	if n.liveRefs > 0 && !n.valid {
		g.refreshLocked(ctx, true)
	}
	v, err := g.ensure(ctx, n)
	if n.liveRefs == 0 {
		g.collect(n)
	}
	if err != nil {
		return zero, err
	}
	return v.(T), nil
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
	g.applyPendingLocked()
	n := g.nodeFor(def)
	if n.liveRefs > 0 && !n.valid {
		// Bring the node's existing subscribers up to date first; the new
		// one starts from the value they end with.
		g.refreshLocked(context.Background(), true)
	}
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

// NodeInfo describes a reactive node, for devtools.
type NodeInfo struct {
	ID    int64  `json:"id"`
	Kind  string `json:"kind"` // "db", "computed" or "signal"
	Label string `json:"label,omitempty"`
	SQL   string `json:"sql,omitempty"`
	// Args are the values bound to the SQL's parameters.
	Args         []any         `json:"args,omitempty"`
	Tables       []string      `json:"tables,omitempty"`
	RunCount     int64         `json:"runCount"`
	LastDuration time.Duration `json:"lastDurationNs"`
	// MeanDuration is the mean time of all runs.
	MeanDuration time.Duration `json:"meanDurationNs"`
	Subscribers  int           `json:"subscribers"`
	Dependencies []int64       `json:"dependencies,omitempty"`
	Stale        bool          `json:"stale"`
	// LastResult is the JSON of the last value: its first PreviewItems
	// elements when it is a slice, at most PreviewBytes long (else a JSON
	// string holding the start of it). ResultCut says it was shortened.
	LastResult json.RawMessage `json:"lastResult,omitempty"`
	ResultCut  bool            `json:"resultCut,omitempty"`
	// Error is the last run's failure, if it failed.
	Error string `json:"error,omitempty"`
}

// Bounds of NodeInfo.LastResult.
const (
	PreviewItems = 10
	PreviewBytes = 4 << 10
)

// ReactiveNodes lists the nodes of the store's reactive graph.
func (s *Store) ReactiveNodes() []NodeInfo {
	g := s.graph
	g.mu.Lock()
	out := make([]NodeInfo, 0, len(g.nodes))
	values := make([]any, 0, len(g.nodes))
	for _, n := range g.nodes {
		info := NodeInfo{ID: n.id, Kind: n.kind, Label: n.label, SQL: n.sql, Tables: n.tables,
			Args: n.args, RunCount: n.runs, LastDuration: n.lastDur, Subscribers: len(n.subs), Stale: !n.valid}
		if n.runs > 0 {
			info.MeanDuration = n.totalDur / time.Duration(n.runs)
		}
		if n.err != nil {
			info.Error = n.err.Error()
		}
		for d := range n.deps {
			info.Dependencies = append(info.Dependencies, d.id)
		}
		sort.Slice(info.Dependencies, func(i, j int) bool { return info.Dependencies[i] < info.Dependencies[j] })
		out = append(out, info)
		v := n.value
		if !n.everRun && n.kind != "signal" {
			v = nil
		}
		values = append(values, v)
	}
	g.mu.Unlock()
	// Values are replaced, never changed in place, so they are encoded
	// outside the lock: a large result does not hold up refreshes.
	for i := range out {
		if values[i] != nil {
			out[i].LastResult, out[i].ResultCut = preview(values[i])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// preview encodes the start of v as JSON within the bounds of
// NodeInfo.LastResult.
func preview(v any) (json.RawMessage, bool) {
	cut := false
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.Len() > PreviewItems {
		v, cut = rv.Slice(0, PreviewItems).Interface(), true
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(fmt.Sprintf("%v (not JSON: %v)", v, err))
	}
	if len(b) > PreviewBytes {
		text := []rune(string(b[:PreviewBytes]))
		b, _ = json.Marshal(string(text[:len(text)-1]) + "…")
		cut = true
	}
	return b, cut
}

// RefreshInfo describes the last refresh pass of the reactive graph: the
// one that followed the latest writes.
type RefreshInfo struct {
	// Pass numbers the passes; 0 means none ran yet.
	Pass uint64 `json:"pass"`
	// Tables are the tables written since the pass before ("*": all).
	Tables []string `json:"tables"`
	// Reran lists the ids of the nodes the pass re-ran (see NodeInfo.ID).
	Reran []int64 `json:"reran"`
	// At is when the pass ended.
	At time.Time `json:"at"`
}

// LastRefresh describes the reactive graph's last refresh pass.
func (s *Store) LastRefresh() RefreshInfo {
	g := s.graph
	g.mu.Lock()
	defer g.mu.Unlock()
	return RefreshInfo{Pass: g.lastPass, Tables: append([]string{}, g.lastTables...),
		Reran: append([]int64{}, g.lastReran...), At: g.lastAt}
}

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
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return nil, ErrStoreClosed
	}
	o := &observer{g: g, fn: fn, tables: map[string]struct{}{}, reran: map[int64]struct{}{}}
	g.obsMu.Lock()
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
	s *Store
	c *sqlite.Conn
}

func (r connReader) readRows(ctx context.Context, query string, args []any, fn func(*sqlite.Row) error) error {
	return r.c.Query(query, args, fn)
}

func (r connReader) decoderCache() *decoderCache { return &r.s.decoders }
