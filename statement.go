package livestore

import (
	"fmt"
	"sort"
	"strings"
)

// Statement is SQL with bind arguments. Query-builder values and SQL(...)
// implement it; materializers return statements, and queries run them.
// Builders never interpolate values into SQL text: every value is a bind
// argument, encoded for its column's type.
type Statement interface {
	Build() (query string, args []any, err error)
}

// SQL is a statement written by hand, with ? placeholders for args.
func SQL(query string, args ...any) Statement { return rawStatement{query, args} }

type rawStatement struct {
	query string
	args  []any
}

func (r rawStatement) Build() (string, []any, error) { return r.query, r.args, nil }

// Values maps column names to values for inserts and updates.
type Values map[string]any

// Cond is one condition of a WHERE clause; conditions given together are
// combined with AND.
type Cond struct {
	col    string
	op     string
	value  any
	values []any
}

// Eq is col = v (or col IS NULL when v is nil).
func Eq(col string, v any) Cond { return Cond{col: col, op: "=", value: v} }

// Ne is col != v (or col IS NOT NULL when v is nil).
func Ne(col string, v any) Cond { return Cond{col: col, op: "!=", value: v} }

// Lt is col < v.
func Lt(col string, v any) Cond { return Cond{col: col, op: "<", value: v} }

// Le is col <= v.
func Le(col string, v any) Cond { return Cond{col: col, op: "<=", value: v} }

// Gt is col > v.
func Gt(col string, v any) Cond { return Cond{col: col, op: ">", value: v} }

// Ge is col >= v.
func Ge(col string, v any) Cond { return Cond{col: col, op: ">=", value: v} }

// Like is col LIKE pattern.
func Like(col string, pattern string) Cond { return Cond{col: col, op: "LIKE", value: pattern} }

// In is col IN (vs...). An empty list matches no row.
func In(col string, vs ...any) Cond { return Cond{col: col, op: "IN", values: vs} }

// NotIn is col NOT IN (vs...). An empty list matches every row.
func NotIn(col string, vs ...any) Cond { return Cond{col: col, op: "NOT IN", values: vs} }

// IsNull is col IS NULL.
func IsNull(col string) Cond { return Cond{col: col, op: "IS NULL"} }

// IsNotNull is col IS NOT NULL.
func IsNotNull(col string) Cond { return Cond{col: col, op: "IS NOT NULL"} }

func (t *Table) column(name string) (Column, error) {
	c, ok := t.Column(name)
	if !ok {
		return Column{}, fmt.Errorf("table %s has no column %q", t.name, name)
	}
	return c, nil
}

// whereSQL renders conds, appending their arguments to args.
func (t *Table) whereSQL(conds []Cond, args []any) (string, []any, error) {
	if len(conds) == 0 {
		return "", args, nil
	}
	parts := make([]string, 0, len(conds))
	for _, cond := range conds {
		col, err := t.column(cond.col)
		if err != nil {
			return "", nil, err
		}
		q := quoteIdent(col.name)
		switch cond.op {
		case "IS NULL", "IS NOT NULL":
			parts = append(parts, q+" "+cond.op)
		case "IN", "NOT IN":
			if len(cond.values) == 0 {
				if cond.op == "IN" {
					parts = append(parts, "0")
				} else {
					parts = append(parts, "1")
				}
				continue
			}
			marks := make([]string, len(cond.values))
			for i, v := range cond.values {
				enc, err := encodeCondValue(col, v)
				if err != nil {
					return "", nil, err
				}
				marks[i] = "?"
				args = append(args, enc)
			}
			parts = append(parts, q+" "+cond.op+" ("+strings.Join(marks, ", ")+")")
		default:
			if deref(cond.value) == nil && (cond.op == "=" || cond.op == "!=") {
				if cond.op == "=" {
					parts = append(parts, q+" IS NULL")
				} else {
					parts = append(parts, q+" IS NOT NULL")
				}
				continue
			}
			enc, err := encodeCondValue(col, cond.value)
			if err != nil {
				return "", nil, err
			}
			parts = append(parts, q+" "+cond.op+" ?")
			args = append(args, enc)
		}
	}
	return " WHERE " + strings.Join(parts, " AND "), args, nil
}

func encodeCondValue(c Column, v any) (any, error) {
	c.nullable = true
	return encodeValue(c, v)
}

// Order is a sort direction.
type Order string

// Sort directions.
const (
	Asc  Order = "ASC"
	Desc Order = "DESC"
)

type orderTerm struct {
	col string
	dir Order
}

// SelectQuery reads rows of one table. It is immutable: every method returns
// a new query, so a query can be shared and refined safely.
type SelectQuery struct {
	table  *Table
	cols   []string
	where  []Cond
	order  []orderTerm
	limit  int
	offset int
	count  bool
}

// Select starts a query over t returning the given columns (all when none).
func (t *Table) Select(columns ...string) *SelectQuery {
	return &SelectQuery{table: t, cols: columns, limit: -1}
}

// Where is t.Select().Where(conds...).
func (t *Table) Where(conds ...Cond) *SelectQuery { return t.Select().Where(conds...) }

// Count is a query returning the number of rows matching conds, as a single
// column named "count".
func (t *Table) Count(conds ...Cond) *SelectQuery {
	return &SelectQuery{table: t, where: conds, limit: -1, count: true}
}

func (q *SelectQuery) clone() *SelectQuery {
	c := *q
	c.cols = append([]string(nil), q.cols...)
	c.where = append([]Cond(nil), q.where...)
	c.order = append([]orderTerm(nil), q.order...)
	return &c
}

// Where adds conditions (AND).
func (q *SelectQuery) Where(conds ...Cond) *SelectQuery {
	c := q.clone()
	c.where = append(c.where, conds...)
	return c
}

// OrderBy adds a sort key; dir defaults to Asc.
func (q *SelectQuery) OrderBy(col string, dir ...Order) *SelectQuery {
	c := q.clone()
	d := Asc
	if len(dir) > 0 {
		d = dir[0]
	}
	c.order = append(c.order, orderTerm{col, d})
	return c
}

// Limit caps the number of rows.
func (q *SelectQuery) Limit(n int) *SelectQuery { c := q.clone(); c.limit = n; return c }

// Offset skips the first n rows.
func (q *SelectQuery) Offset(n int) *SelectQuery { c := q.clone(); c.offset = n; return c }

// Table is the table the query reads.
func (q *SelectQuery) Table() *Table { return q.table }

// Build renders the query.
func (q *SelectQuery) Build() (string, []any, error) {
	var b strings.Builder
	b.WriteString("SELECT ")
	switch {
	case q.count:
		b.WriteString("count(*) AS count")
	case len(q.cols) == 0:
		b.WriteString("*")
	default:
		for i, name := range q.cols {
			col, err := q.table.column(name)
			if err != nil {
				return "", nil, err
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quoteIdent(col.name))
		}
	}
	b.WriteString(" FROM ")
	b.WriteString(quoteIdent(q.table.name))
	where, args, err := q.table.whereSQL(q.where, nil)
	if err != nil {
		return "", nil, err
	}
	b.WriteString(where)
	for i, o := range q.order {
		col, err := q.table.column(o.col)
		if err != nil {
			return "", nil, err
		}
		if o.dir != Asc && o.dir != Desc {
			return "", nil, fmt.Errorf("order by %s: direction %q", o.col, o.dir)
		}
		if i == 0 {
			b.WriteString(" ORDER BY ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(col.name) + " " + string(o.dir))
	}
	if q.limit >= 0 || q.offset > 0 {
		b.WriteString(" LIMIT ?")
		args = append(args, int64(q.limit))
	}
	if q.offset > 0 {
		b.WriteString(" OFFSET ?")
		args = append(args, int64(q.offset))
	}
	return b.String(), args, nil
}

// InsertStatement inserts one row.
type InsertStatement struct {
	table      *Table
	values     Values
	target     []string
	onConflict string // "", "ignore", "replace", "update"
	set        Values
}

// Insert inserts one row. Columns not given take their default; a NOT NULL
// column without default must be given.
func (t *Table) Insert(values Values) *InsertStatement {
	return &InsertStatement{table: t, values: values}
}

// ConflictTarget names the columns whose uniqueness decides a conflict.
type ConflictTarget struct {
	ins    *InsertStatement
	target []string
}

// OnConflict starts an ON CONFLICT clause on the given columns (the primary
// key when none are given).
func (s *InsertStatement) OnConflict(columns ...string) ConflictTarget {
	return ConflictTarget{ins: s, target: columns}
}

// Ignore keeps the existing row.
func (c ConflictTarget) Ignore() *InsertStatement { return c.with("ignore", nil) }

// Replace overwrites the existing row's inserted columns with the new values.
func (c ConflictTarget) Replace() *InsertStatement { return c.with("replace", nil) }

// Update applies set to the existing row.
func (c ConflictTarget) Update(set Values) *InsertStatement { return c.with("update", set) }

func (c ConflictTarget) with(action string, set Values) *InsertStatement {
	s := *c.ins
	s.onConflict, s.target, s.set = action, c.target, set
	return &s
}

func sortedColumns(v Values) []string {
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Build renders the statement.
func (s *InsertStatement) Build() (string, []any, error) {
	t := s.table
	names := sortedColumns(s.values)
	for _, col := range t.columns {
		if _, given := s.values[col.name]; !given && !col.nullable && !col.hasDefault && col.typ != JSONColumn {
			return "", nil, fmt.Errorf("insert into %s: column %q has no value and no default", t.name, col.name)
		}
	}
	cols := make([]string, len(names))
	marks := make([]string, len(names))
	args := make([]any, 0, len(names))
	for i, n := range names {
		col, err := t.column(n)
		if err != nil {
			return "", nil, fmt.Errorf("insert into %s: %w", t.name, err)
		}
		v, err := encodeValue(col, s.values[n])
		if err != nil {
			return "", nil, fmt.Errorf("insert into %s: %w", t.name, err)
		}
		cols[i], marks[i] = quoteIdent(n), "?"
		args = append(args, v)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES (%s)", quoteIdent(t.name), strings.Join(cols, ", "), strings.Join(marks, ", "))
	if s.onConflict != "" {
		target := s.target
		if len(target) == 0 {
			target = t.primaryKey()
		}
		qt := make([]string, len(target))
		for i, n := range target {
			if _, err := t.column(n); err != nil {
				return "", nil, fmt.Errorf("insert into %s: on conflict: %w", t.name, err)
			}
			qt[i] = quoteIdent(n)
		}
		fmt.Fprintf(&b, " ON CONFLICT (%s) ", strings.Join(qt, ", "))
		switch s.onConflict {
		case "ignore":
			b.WriteString("DO NOTHING")
		case "replace":
			sets := make([]string, 0, len(names))
			for _, n := range names {
				sets = append(sets, fmt.Sprintf("%s = excluded.%s", quoteIdent(n), quoteIdent(n)))
			}
			if len(sets) == 0 {
				b.WriteString("DO NOTHING")
			} else {
				b.WriteString("DO UPDATE SET " + strings.Join(sets, ", "))
			}
		case "update":
			set, setArgs, err := t.setSQL(s.set)
			if err != nil {
				return "", nil, fmt.Errorf("insert into %s: on conflict: %w", t.name, err)
			}
			if set == "" {
				b.WriteString("DO NOTHING")
			} else {
				b.WriteString("DO UPDATE SET " + set)
				args = append(args, setArgs...)
			}
		}
	}
	return b.String(), args, nil
}

func (t *Table) setSQL(set Values) (string, []any, error) {
	names := sortedColumns(set)
	parts := make([]string, len(names))
	args := make([]any, 0, len(names))
	for i, n := range names {
		col, err := t.column(n)
		if err != nil {
			return "", nil, err
		}
		v, err := encodeValue(col, set[n])
		if err != nil {
			return "", nil, err
		}
		parts[i] = quoteIdent(n) + " = ?"
		args = append(args, v)
	}
	return strings.Join(parts, ", "), args, nil
}

// UpdateStatement updates the rows matching its conditions (all rows when it
// has none).
type UpdateStatement struct {
	table *Table
	set   Values
	where []Cond
}

// Update sets columns of the rows selected with Where.
func (t *Table) Update(set Values) *UpdateStatement { return &UpdateStatement{table: t, set: set} }

// Where adds conditions (AND).
func (s *UpdateStatement) Where(conds ...Cond) *UpdateStatement {
	c := *s
	c.where = append(append([]Cond(nil), s.where...), conds...)
	return &c
}

// Build renders the statement.
func (s *UpdateStatement) Build() (string, []any, error) {
	if len(s.set) == 0 {
		return "", nil, fmt.Errorf("update %s: no values to set", s.table.name)
	}
	set, args, err := s.table.setSQL(s.set)
	if err != nil {
		return "", nil, fmt.Errorf("update %s: %w", s.table.name, err)
	}
	where, args, err := s.table.whereSQL(s.where, args)
	if err != nil {
		return "", nil, fmt.Errorf("update %s: %w", s.table.name, err)
	}
	return "UPDATE " + quoteIdent(s.table.name) + " SET " + set + where, args, nil
}

// DeleteStatement deletes the rows matching its conditions (all rows when it
// has none).
type DeleteStatement struct {
	table *Table
	where []Cond
}

// Delete deletes the rows selected with Where.
func (t *Table) Delete() *DeleteStatement { return &DeleteStatement{table: t} }

// Where adds conditions (AND).
func (s *DeleteStatement) Where(conds ...Cond) *DeleteStatement {
	c := *s
	c.where = append(append([]Cond(nil), s.where...), conds...)
	return &c
}

// Build renders the statement.
func (s *DeleteStatement) Build() (string, []any, error) {
	where, args, err := s.table.whereSQL(s.where, nil)
	if err != nil {
		return "", nil, fmt.Errorf("delete from %s: %w", s.table.name, err)
	}
	return "DELETE FROM " + quoteIdent(s.table.name) + where, args, nil
}
