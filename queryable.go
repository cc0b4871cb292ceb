package livestore

import (
	"context"
	"fmt"
	"reflect"
	"strings"
)

// This file holds the public reactive value types (DBQuery, Computed,
// Signal) and how each defines its node in a store's graph (graph.go).

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
	pin    *keyPin
	run    func(r Reader) (R, error)
}

// QueryDB is a reactive query returning all rows decoded into T.
func QueryDB[T any](stmt Statement, label ...string) *DBQuery[[]T] {
	q := &DBQuery[[]T]{label: strings.Join(label, " "), pin: pinOf(stmt)}
	q.sql, q.args, q.err = stmt.Build()
	var zero T
	q.shared = dbKey{sql: q.sql, args: fmt.Sprintf("%#v", q.args), typ: reflect.TypeOf(&zero).Elem(), kind: "rows"}
	q.run = func(r Reader) ([]T, error) { return Query[T](context.Background(), r, SQL(q.sql, q.args...)) }
	return q
}

// QueryDBFirst is a reactive query returning the first row decoded into T,
// or fallback when there is none.
func QueryDBFirst[T any](stmt Statement, fallback T, label ...string) *DBQuery[T] {
	q := &DBQuery[T]{label: strings.Join(label, " "), pin: pinOf(stmt)}
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
	m := &DBQuery[R]{label: strings.Join(label, " "), sql: q.sql, args: q.args, err: q.err, pin: q.pin}
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
func (q *DBQuery[R]) alone()              {} // Get may run it outside the graph
func (q *DBQuery[R]) cast(v any) R        { return v.(R) }

func (q *DBQuery[R]) key() any {
	if q.shared != nil {
		return q.shared
	}
	return q
}

func (q *DBQuery[R]) newNode(s *Store) *node {
	return &node{kind: dbNode, label: q.label, sql: q.sql, args: q.args, defErr: q.err, wantPin: q.pin,
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
	return &node{kind: computedNode, label: c.label,
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
	return &node{kind: signalNode, label: sg.label, value: sg.initial, valid: true, pinned: true}
}

// Getter is handed to a Computed's function to read its inputs.
type Getter struct {
	g    *graph
	self *node
	ctx  context.Context
	r    connReader
}

// Context is the context of the evaluation the Getter serves: the caller's
// for Get and the first evaluation of Subscribe and Watch, the store's for
// refreshes. A Computed whose function waits or works long should give up
// when it ends; its result is then discarded.
func (g *Getter) Context() context.Context { return g.ctx }

// Use reads q inside a Computed and records it as an input. When the
// evaluation's context ends, Use fails with an error wrapping its error.
func Use[T any](g *Getter, q Queryable[T]) (T, error) {
	var zero T
	n := g.g.nodeFor(q.definition())
	g.g.link(g.self, n)
	if !n.valid {
		if err := g.g.compute(g.ctx, n, g.r); err != nil {
			return zero, err
		}
	}
	if n.err != nil {
		return zero, n.err
	}
	return n.value.(T), nil
}
