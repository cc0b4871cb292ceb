package livestore

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/livestore-go/livestore/internal/clientdb"
	"github.com/livestore-go/livestore/internal/sqlite"
)

// ColumnType is the kind of value a column holds. Each maps to a SQLite
// storage class: booleans are stored as 0/1 integers, JSON as text, datetimes
// as ISO-8601 text in UTC with millisecond precision.
type ColumnType int

// Column types.
const (
	TextColumn ColumnType = iota + 1
	IntegerColumn
	RealColumn
	BooleanColumn
	JSONColumn
	DateTimeColumn
	BlobColumn
)

func (t ColumnType) String() string {
	switch t {
	case TextColumn:
		return "text"
	case IntegerColumn:
		return "integer"
	case RealColumn:
		return "real"
	case BooleanColumn:
		return "boolean"
	case JSONColumn:
		return "json"
	case DateTimeColumn:
		return "datetime"
	case BlobColumn:
		return "blob"
	}
	return "column(" + strconv.Itoa(int(t)) + ")"
}

func (t ColumnType) sqlType() string {
	switch t {
	case IntegerColumn, BooleanColumn:
		return "INTEGER"
	case RealColumn:
		return "REAL"
	case BlobColumn:
		return "BLOB"
	}
	return "TEXT"
}

// Column describes one column of a table. Build it with Text, Integer, Real,
// Boolean, JSON, DateTime or Blob and refine it with the chainable methods;
// a Column is a value, so refining returns a new one.
type Column struct {
	name       string
	typ        ColumnType
	nullable   bool
	primaryKey bool
	hasDefault bool
	def        any
}

// Text is a text column.
func Text(name string) Column { return Column{name: name, typ: TextColumn} }

// Integer is a 64-bit integer column.
func Integer(name string) Column { return Column{name: name, typ: IntegerColumn} }

// Real is a floating point column.
func Real(name string) Column { return Column{name: name, typ: RealColumn} }

// Boolean is a boolean column, stored as 0 or 1.
func Boolean(name string) Column { return Column{name: name, typ: BooleanColumn} }

// JSON is a column holding any Go value encoded as JSON text.
func JSON(name string) Column { return Column{name: name, typ: JSONColumn} }

// DateTime is a time column stored as ISO-8601 text (UTC, milliseconds).
func DateTime(name string) Column { return Column{name: name, typ: DateTimeColumn} }

// Blob is a binary column.
func Blob(name string) Column { return Column{name: name, typ: BlobColumn} }

// PrimaryKey marks the column as (part of) the primary key.
func (c Column) PrimaryKey() Column { c.primaryKey = true; return c }

// Nullable allows NULL values. Columns are NOT NULL unless marked nullable.
func (c Column) Nullable() Column { c.nullable = true; return c }

// Default sets the value used when an insert does not give one. The value is
// encoded like any written value of the column's type (nil means NULL).
func (c Column) Default(v any) Column { c.hasDefault = true; c.def = v; return c }

// Name is the column's name.
func (c Column) Name() string { return c.name }

// Type is the column's type.
func (c Column) Type() ColumnType { return c.typ }

// Index is a secondary index on a table.
type Index struct {
	Name    string
	Columns []string
	Unique  bool
}

// Table defines a state table: its columns, primary key and indexes. Tables
// are created by the store from their definition; when a definition changes
// the store rebuilds all state from the eventlog.
type Table struct {
	name    string
	columns []Column
	indexes []Index
	doc     clientDocument // non-nil for client-document tables
}

// NewTable defines a table. Definition errors (no primary key, duplicate
// columns, bad defaults) are reported by NewSchema.
func NewTable(name string, columns ...Column) *Table {
	return &Table{name: name, columns: append([]Column(nil), columns...)}
}

// WithIndex adds a (non-unique) index and returns t.
func (t *Table) WithIndex(name string, columns ...string) *Table {
	t.indexes = append(t.indexes, Index{Name: name, Columns: columns})
	return t
}

// WithUniqueIndex adds a unique index and returns t.
func (t *Table) WithUniqueIndex(name string, columns ...string) *Table {
	t.indexes = append(t.indexes, Index{Name: name, Columns: columns, Unique: true})
	return t
}

// Name is the table's name.
func (t *Table) Name() string { return t.name }

// Columns lists the table's columns in definition order.
func (t *Table) Columns() []Column { return append([]Column(nil), t.columns...) }

// Column returns the named column.
func (t *Table) Column(name string) (Column, bool) {
	for _, c := range t.columns {
		if c.name == name {
			return c, true
		}
	}
	return Column{}, false
}

func (t *Table) primaryKey() []string {
	var pk []string
	for _, c := range t.columns {
		if c.primaryKey {
			pk = append(pk, c.name)
		}
	}
	return pk
}

func (t *Table) validate() error {
	if err := validName(t.name); err != nil {
		return fmt.Errorf("table %q: %w", t.name, err)
	}
	if strings.HasPrefix(t.name, "__livestore") || strings.HasPrefix(t.name, "sqlite_") || t.name == clientdb.EventlogTable {
		return fmt.Errorf("table %q: name is reserved", t.name)
	}
	if len(t.columns) == 0 {
		return fmt.Errorf("table %q: no columns", t.name)
	}
	seen := map[string]bool{}
	for _, c := range t.columns {
		if err := validName(c.name); err != nil {
			return fmt.Errorf("table %q column %q: %w", t.name, c.name, err)
		}
		if seen[c.name] {
			return fmt.Errorf("table %q: duplicate column %q", t.name, c.name)
		}
		seen[c.name] = true
		if c.typ < TextColumn || c.typ > BlobColumn {
			return fmt.Errorf("table %q column %q: unknown type", t.name, c.name)
		}
		if c.hasDefault {
			if _, err := encodeValue(c, c.def); err != nil {
				return fmt.Errorf("table %q column %q: default: %w", t.name, c.name, err)
			}
		}
	}
	if len(t.primaryKey()) == 0 {
		// SQLite sessions, which the store uses to roll back unconfirmed
		// events, only record changes to tables with a primary key.
		return fmt.Errorf("table %q: no primary key column (mark one with PrimaryKey)", t.name)
	}
	for _, ix := range t.indexes {
		if err := validName(ix.Name); err != nil {
			return fmt.Errorf("table %q index %q: %w", t.name, ix.Name, err)
		}
		if len(ix.Columns) == 0 {
			return fmt.Errorf("table %q index %q: no columns", t.name, ix.Name)
		}
		for _, col := range ix.Columns {
			if !seen[col] {
				return fmt.Errorf("table %q index %q: unknown column %q", t.name, ix.Name, col)
			}
		}
	}
	return nil
}

func validName(n string) error {
	if n == "" {
		return fmt.Errorf("empty name")
	}
	for _, r := range n {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return fmt.Errorf("name %q: only letters, digits and _ are allowed", n)
		}
	}
	if n[0] >= '0' && n[0] <= '9' {
		return fmt.Errorf("name %q starts with a digit", n)
	}
	return nil
}

// ddl returns the statements that create the table and its indexes.
func (t *Table) ddl() []string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE %s (", quoteIdent(t.name))
	pk := t.primaryKey()
	for i, c := range t.columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(c.name))
		b.WriteByte(' ')
		b.WriteString(c.typ.sqlType())
		if !c.nullable {
			b.WriteString(" NOT NULL")
		}
		if c.hasDefault {
			v, _ := encodeValue(c, c.def)
			b.WriteString(" DEFAULT ")
			b.WriteString(sqlLiteral(v))
		}
	}
	b.WriteString(", PRIMARY KEY (")
	for i, p := range pk {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(p))
	}
	b.WriteString("))")
	out := []string{b.String()}
	for _, ix := range t.indexes {
		cols := make([]string, len(ix.Columns))
		for i, c := range ix.Columns {
			cols[i] = quoteIdent(c)
		}
		unique := ""
		if ix.Unique {
			unique = "UNIQUE "
		}
		out = append(out, fmt.Sprintf("CREATE %sINDEX %s ON %s (%s)", unique, quoteIdent(ix.Name), quoteIdent(t.name), strings.Join(cols, ", ")))
	}
	return out
}

// hash identifies the table definition; a changed hash makes the store
// rebuild state.
func (t *Table) hash() int64 {
	h := fnv.New64a()
	for _, s := range t.ddl() {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return int64(h.Sum64() >> 1)
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func sqlLiteral(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		return "'" + strings.ReplaceAll(x, "'", "''") + "'"
	case []byte:
		return fmt.Sprintf("X'%X'", x)
	}
	return "NULL"
}

// encodeValue converts a Go value to what the column stores: nil, int64,
// float64, string or []byte.
func encodeValue(c Column, v any) (any, error) {
	v = deref(v)
	if v == nil {
		switch {
		case c.nullable:
			return nil, nil
		case c.typ == JSONColumn:
			return "null", nil
		}
		return nil, fmt.Errorf("column %q is not nullable", c.name)
	}
	switch c.typ {
	case TextColumn:
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.String {
			return rv.String(), nil
		}
	case IntegerColumn:
		if n, ok := toInt64(v); ok {
			return n, nil
		}
		if f, ok := v.(float64); ok && f == float64(int64(f)) {
			return int64(f), nil
		}
	case RealColumn:
		return encodeReal(c, v)
	case BooleanColumn:
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Bool {
			return boolInt(rv.Bool()), nil
		}
	case JSONColumn:
		return encodeJSON(c, v)
	case DateTimeColumn:
		return encodeDateTime(c, v)
	case BlobColumn:
		switch b := v.(type) {
		case []byte:
			return b, nil
		case string:
			return []byte(b), nil
		}
	}
	return nil, c.cannotStore(v)
}

func (c Column) cannotStore(v any) error {
	return fmt.Errorf("column %q (%s): cannot store %T", c.name, c.typ, v)
}

func encodeReal(c Column, v any) (any, error) {
	if n, ok := toInt64(v); ok {
		return float64(n), nil
	}
	switch f := v.(type) {
	case float64:
		return f, nil
	case float32:
		return float64(f), nil
	}
	return nil, c.cannotStore(v)
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// encodeJSON stores a json.RawMessage as is, once checked, and marshals any
// other value.
func encodeJSON(c Column, v any) (any, error) {
	if raw, ok := v.(json.RawMessage); ok {
		if !json.Valid(raw) {
			return nil, fmt.Errorf("column %q: invalid JSON", c.name)
		}
		return string(raw), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("column %q: %w", c.name, err)
	}
	return string(b), nil
}

// encodeDateTime stores a time.Time, or ISO-8601 text, as TimeFormat text.
func encodeDateTime(c Column, v any) (any, error) {
	switch t := v.(type) {
	case time.Time:
		return sqlite.FormatTime(t), nil
	case string:
		pt, err := time.Parse(time.RFC3339Nano, t)
		if err != nil {
			return nil, fmt.Errorf("column %q: %q is not an ISO-8601 time", c.name, t)
		}
		return sqlite.FormatTime(pt), nil
	}
	return nil, c.cannotStore(v)
}

func deref(v any) any {
	if v == nil {
		return nil
	}
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		rv = rv.Elem()
	}
	if rv.Kind() == reflect.Slice && rv.IsNil() && rv.Type().Elem().Kind() == reflect.Uint8 {
		return nil
	}
	return rv.Interface()
}

func toInt64(v any) (int64, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u := rv.Uint()
		if u > 1<<63-1 {
			return 0, false
		}
		return int64(u), true
	}
	return 0, false
}
