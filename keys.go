package livestore

import (
	"fmt"
	"slices"
	"sort"

	"github.com/livestore-go/livestore/internal/sqlite"
)

// This file holds invalidation by row: a live query that pins the primary
// key of its table re-runs only when a commit changed a row with one of its
// keys, not on every write to the table.
//
// A query is pinned when it is a builder query (SelectQuery) over one table
// whose primary key is one NOT NULL column of a type compared without
// conversion (text, integer, boolean, datetime, JSON, blob), not a client
// document table, with an Eq or In condition on that column. Its result can
// then only hold rows with those keys: other rows cannot change it.
//
// A commit learns the primary keys of the rows it inserted, updated (old
// and new key) and deleted, whoever wrote them — builder statements and raw
// SQL alike. A synced store reads them from the SQLite session changeset it
// keeps for rebases anyway. A store without sync watches the tables with
// enough pinned queries with temporary triggers (internal/clientdb), which
// cost far less than a session: the modernc SQLite prepares several
// statements for every session. Every other write (rebase, pull, rebuild,
// recovery), every commit whose rows cannot be read, tables without a
// one-column key and tables not watched invalidate whole tables.

// maxRowKeys bounds the keys remembered per table and write: past it the
// write invalidates the whole table (a large batch re-runs every query
// anyway).
const maxRowKeys = 4096

// defaultMinRowPins is how many pinned live queries a table needs before a
// store without sync watches its rows with triggers (which cost every
// write to the table a little). Below it, whole-table invalidation costs
// little: re-runs happen off the commit path.
const defaultMinRowPins = 32

// keyPin says that a query reads only the rows of table whose key column
// col (of type typ) holds one of keys.
type keyPin struct {
	table string
	col   string
	typ   ColumnType
	keys  []sqlite.RowKey
}

// pinOf returns the key pin of stmt, or nil when stmt is not a pinned
// builder query.
func pinOf(stmt Statement) *keyPin {
	q, ok := stmt.(*SelectQuery)
	if !ok || q.table == nil {
		return nil
	}
	col, ok := q.table.keyColumn()
	if !ok {
		return nil
	}
	for _, c := range q.where {
		if c.col != col.name {
			continue
		}
		var vals []any
		switch c.op {
		case "=":
			vals = []any{c.value}
		case "IN":
			vals = c.values
		default:
			continue
		}
		if keys, ok := rowKeys(col, vals); ok {
			return &keyPin{table: q.table.name, col: col.name, typ: col.typ, keys: keys}
		}
	}
	return nil
}

// keyColumn returns t's primary-key column when queries on it can be
// pinned: the key is that one column, NOT NULL (a session records no row
// whose key is NULL), of a type whose values SQLite compares without
// conversion; and t is not a client-document table.
func (t *Table) keyColumn() (Column, bool) {
	if t.doc != nil {
		return Column{}, false
	}
	pk := t.primaryKey()
	if len(pk) != 1 {
		return Column{}, false
	}
	col, ok := t.Column(pk[0])
	if !ok || col.nullable || col.typ == RealColumn {
		return Column{}, false
	}
	return col, true
}

// rowKeys returns the keys of vals as stored in col. It fails for a value
// that is NULL, that col cannot store, or whose stored form is not of the
// column's storage class (an equality on it might convert).
func rowKeys(col Column, vals []any) ([]sqlite.RowKey, bool) {
	keys := make([]sqlite.RowKey, 0, len(vals))
	for _, v := range vals {
		if deref(v) == nil {
			return nil, false
		}
		enc, err := encodeCondValue(col, v)
		if err != nil {
			return nil, false
		}
		switch enc.(type) {
		case string:
			if col.typ.sqlType() != "TEXT" {
				return nil, false
			}
		case int64:
			if col.typ.sqlType() != "INTEGER" {
				return nil, false
			}
		case []byte:
			if col.typ.sqlType() != "BLOB" {
				return nil, false
			}
		default:
			return nil, false
		}
		k, ok := sqlite.KeyOf(enc)
		if !ok {
			return nil, false
		}
		keys = append(keys, k)
	}
	return keys, true
}

// usablePin returns n's pin when it holds in s: the query reads exactly the
// pinned table, and the schema's table of that name has the same key
// column (the pin was made from a *Table that need not be the schema's).
func (s *Store) usablePin(pin *keyPin, reads []string) *keyPin {
	if pin == nil || len(reads) != 1 || reads[0] != pin.table {
		return nil
	}
	t := s.schema.tableByName[pin.table]
	if t == nil {
		return nil
	}
	col, ok := t.keyColumn()
	if !ok || col.name != pin.col || col.typ != pin.typ {
		return nil
	}
	return pin
}

// rowChanges are the rows a write changed: per table, the keys of the
// changed rows. A table written but absent from it changed as a whole.
type rowChanges map[string]map[sqlite.RowKey]struct{}

// rowSet collects the rows changed, per table, from a changeset or from
// the row triggers.
type rowSet struct {
	rows  rowChanges
	whole map[string]bool // tables changed as a whole
}

func newRowSet() *rowSet { return &rowSet{rows: rowChanges{}, whole: map[string]bool{}} }

// add records that the row with key changed in table; single false (a
// table without a one-column key) makes the table change as a whole, as
// does passing maxRowKeys keys.
func (rs *rowSet) add(table string, key sqlite.RowKey, single bool) {
	if rs.whole[table] {
		return
	}
	keys := rs.rows[table]
	if keys == nil {
		keys = map[sqlite.RowKey]struct{}{}
		rs.rows[table] = keys
	}
	keys[key] = struct{}{}
	if !single || len(keys) > maxRowKeys {
		rs.whole[table] = true
		delete(rs.rows, table)
	}
}

// result adds the tables of the set to written (the tables the write
// touched, as the authorizer saw them) and returns the rows changed in
// them; captured are the tables whose changes the set holds: those written
// without a changed row changed in no row. Other tables are absent: they
// changed as a whole.
func (rs *rowSet) result(captured []string, written map[string]struct{}) rowChanges {
	for t := range rs.rows {
		written[t] = struct{}{}
	}
	for t := range rs.whole {
		written[t] = struct{}{}
	}
	for _, t := range captured {
		if _, w := written[t]; w && rs.rows[t] == nil && !rs.whole[t] {
			rs.rows[t] = map[sqlite.RowKey]struct{}{}
		}
	}
	return rs.rows
}

// rowsOf reads the rows changeset changed; captured are the tables it
// recorded. Nil (an unreadable changeset) means every table written
// changed as a whole.
func (s *Store) rowsOf(changeset []byte, captured []string, written map[string]struct{}) rowChanges {
	rs := newRowSet()
	if err := sqlite.ChangedRows(changeset, rs.add); err != nil {
		s.log.Warn("commit: unreadable changeset; invalidating whole tables", "err", err)
		return nil
	}
	return rs.result(captured, written)
}

// watchRows makes the row triggers of the write connection cover exactly
// tables (stores without sync). It runs under the write lock, outside a
// transaction.
func (s *Store) watchRows(tables []string) error {
	if s.watchKnown && slices.Equal(tables, s.watched) {
		return nil
	}
	have := s.watched
	if !s.watchKnown {
		var err error
		if have, err = s.db.WatchedTables(); err != nil {
			return err
		}
	}
	s.watchKnown = false // until all is done
	for _, t := range tables {
		if slices.Contains(have, t) {
			continue
		}
		col, ok := s.schema.tableByName[t].keyColumn()
		if !ok {
			return fmt.Errorf("watch rows of %s: no key column", t)
		}
		if err := s.db.WatchRows(t, col.name); err != nil {
			return err
		}
	}
	for _, t := range have {
		if !slices.Contains(tables, t) {
			if err := s.db.UnwatchRows(t); err != nil {
				return err
			}
		}
	}
	s.watched, s.watchKnown = tables, true
	return nil
}

// takeRows reads and forgets the rows the row triggers recorded, inside
// the transaction that changed them; nil when they cannot be read.
func (s *Store) takeRows() *rowSet {
	rs := newRowSet()
	err := s.db.TakeChangedRows(func(table string, key any) {
		k, ok := sqlite.KeyOf(key)
		rs.add(table, k, ok)
	})
	if err != nil {
		s.log.Warn("commit: changed rows unreadable; invalidating whole tables", "err", err)
		return nil
	}
	return rs
}

// mergeRows adds what one commit changed (its written tables and rows) to
// what a group of commits changed.
func mergeRows(written map[string]struct{}, rows rowChanges, w map[string]struct{}, r rowChanges) {
	for t := range w {
		keys, byRow := r[t]
		_, before := written[t]
		written[t] = struct{}{}
		have, haveRows := rows[t]
		switch {
		case !byRow || (before && !haveRows):
			delete(rows, t)
		case !before:
			rows[t] = keys
		default:
			if len(have)+len(keys) > maxRowKeys {
				delete(rows, t)
				continue
			}
			for k := range keys {
				have[k] = struct{}{}
			}
		}
	}
}

// rowIndex finds the live queries a row change makes stale. Guarded by
// graph.mu.
type rowIndex struct {
	// loose are the nodes reading a table without a key pin on it.
	loose map[string]map[*node]struct{}
	// byKey are the pinned nodes, by table and key.
	byKey map[string]map[sqlite.RowKey]map[*node]struct{}
	// count is the number of pinned nodes per table.
	count map[string]int
}

// index records that n reads tables, pinned by pin (nil: not pinned).
func (g *graph) index(n *node, tables []string, pin *keyPin) {
	n.tables, n.pin = tables, pin
	for _, t := range tables {
		addNode(g.byTab, t, n)
		if pin == nil {
			addNode(g.rows.loose, t, n)
		}
	}
	if pin == nil {
		return
	}
	g.pinCount.Add(1)
	if g.rows.count[pin.table]++; g.rows.count[pin.table] == g.minRowPins {
		g.publishPinTables()
	}
	byKey := g.rows.byKey[pin.table]
	if byKey == nil {
		byKey = map[sqlite.RowKey]map[*node]struct{}{}
		g.rows.byKey[pin.table] = byKey
	}
	for _, k := range pin.keys {
		addNode(byKey, k, n)
	}
}

// unindex forgets what index recorded for n.
func (g *graph) unindex(n *node) {
	for _, t := range n.tables {
		delete(g.byTab[t], n)
		delete(g.rows.loose[t], n)
	}
	if pin := n.pin; pin != nil {
		g.pinCount.Add(-1)
		g.rows.count[pin.table]--
		if g.rows.count[pin.table] == 0 {
			delete(g.rows.count, pin.table)
		}
		if g.rows.count[pin.table] == g.minRowPins-1 {
			g.publishPinTables()
		}
		byKey := g.rows.byKey[pin.table]
		for _, k := range pin.keys {
			delete(byKey[k], n)
			if len(byKey[k]) == 0 {
				delete(byKey, k)
			}
		}
	}
	n.tables, n.pin = nil, nil
}

func addNode[K comparable](m map[K]map[*node]struct{}, k K, n *node) {
	set := m[k]
	if set == nil {
		set = map[*node]struct{}{}
		m[k] = set
	}
	set[n] = struct{}{}
}

// markTableLocked marks stale the nodes that a change to table makes
// stale: all of its readers when keys is nil, else its unpinned readers
// and the readers pinned to one of keys.
func (g *graph) markTableLocked(table string, keys map[sqlite.RowKey]struct{}) {
	if keys == nil {
		for n := range g.byTab[table] {
			g.markStale(n)
		}
		return
	}
	for n := range g.rows.loose[table] {
		g.markStale(n)
	}
	byKey := g.rows.byKey[table]
	if len(byKey) == 0 {
		return
	}
	for k := range keys {
		for n := range byKey[k] {
			g.markStale(n)
		}
	}
}

// publishPinTables stores the tables holding at least minRowPins pinned
// nodes, for rowTables.
func (g *graph) publishPinTables() {
	var tables []string
	for t, n := range g.rows.count {
		if n >= g.minRowPins {
			tables = append(tables, t)
		}
	}
	sort.Strings(tables)
	g.pinTables.Store(&tables)
}

// rowTables returns the tables whose changed rows are worth watching
// (those with at least minRowPins pinned live queries), sorted; nil when
// there are none. Safe without mu.
func (g *graph) rowTables() []string {
	if p := g.pinTables.Load(); p != nil && len(*p) > 0 {
		return *p
	}
	return nil
}

// anyPinned reports whether a live query is pinned: when a changeset is
// captured anyway, its rows are then worth reading. Safe without mu.
func (g *graph) anyPinned() bool { return g.pinCount.Load() > 0 }
