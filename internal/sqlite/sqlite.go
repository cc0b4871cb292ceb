// Package sqlite is the one place in livestore-go that talks to the SQLite
// driver. It wraps zombiezen.com/go/sqlite (pure Go, no cgo) with the few
// operations the store needs: connections tuned for WAL and durable commits,
// parameter binding of Go values, row iteration, SQLite sessions (to capture
// and invert changesets) and table-access tracking through the authorizer.
//
// Keeping the driver behind this package means a cgo driver could be added
// later without touching the rest of the code. The package knows no
// LiveStore table or event: the SQL on the store's bookkeeping tables
// belongs to internal/clientdb, the rest to package livestore.
package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// Conn is one SQLite connection. A Conn is not safe for concurrent use: its
// owner serialises access to it.
type Conn struct {
	c    *sqlite.Conn
	path string
	// hook is a disabled session kept for the connection's lifetime when
	// it was opened for Capture (see OpenOptions.Capture).
	hook *sqlite.Session
	// names holds the result column names of each prepared statement. The
	// driver looks a name up by scanning a map; queries ask for them often.
	names map[*sqlite.Stmt][]string
}

// OpenOptions configures Open.
type OpenOptions struct {
	// ReadOnly opens the database for reading only.
	ReadOnly bool
	// Synchronous is the value of PRAGMA synchronous for writers; empty means
	// FULL, which makes every committed transaction durable when Commit returns.
	Synchronous string
	// BusyTimeout bounds how long a statement waits for a lock held by another
	// connection. Zero means 5 seconds.
	BusyTimeout time.Duration
	// Capture readies the connection for Capture. SQLite compiles a
	// statement differently while a session may be recording: without
	// one, "DELETE FROM t" (no WHERE) empties the table without reporting
	// its rows, and a cached statement keeps that form when a session
	// records later. With Capture, a disabled session stays attached to
	// the connection from the start, so every statement reports every row
	// it changes, at a small cost on each changed row.
	Capture bool
}

// Open opens the database file at path (created if missing unless ReadOnly)
// in WAL mode. A ReadOnly connection keeps the file's journal mode, since
// changing it is a write. The path ":memory:" opens a private in-memory
// database.
func Open(path string, opts OpenOptions) (*Conn, error) {
	flags := sqlite.OpenNoMutex | sqlite.OpenURI
	if opts.ReadOnly {
		flags |= sqlite.OpenReadOnly
	} else {
		flags |= sqlite.OpenReadWrite | sqlite.OpenCreate | sqlite.OpenWAL
	}
	if path == ":memory:" {
		flags = sqlite.OpenReadWrite | sqlite.OpenCreate | sqlite.OpenNoMutex | sqlite.OpenMemory
	}
	c, err := sqlite.OpenConn(path, flags)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	conn := &Conn{c: c, path: path}
	if opts.Capture && !opts.ReadOnly {
		if conn.hook, err = c.CreateSession("main"); err != nil {
			c.Close()
			return nil, fmt.Errorf("open sqlite %s: session: %w", path, err)
		}
		conn.hook.Disable()
	}
	bt := opts.BusyTimeout
	if bt == 0 {
		bt = 5 * time.Second
	}
	c.SetBusyTimeout(bt)
	if !opts.ReadOnly && path != ":memory:" {
		sync := opts.Synchronous
		if sync == "" {
			sync = "FULL"
		}
		if err := conn.Exec("PRAGMA synchronous=" + sync); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// Close closes the connection.
func (c *Conn) Close() error {
	if c == nil || c.c == nil {
		return nil
	}
	if c.hook != nil {
		c.hook.Delete()
		c.hook = nil
	}
	err := c.c.Close()
	c.c = nil
	return err
}

// Path returns the path the connection was opened with.
func (c *Conn) Path() string { return c.path }

// SetInterrupt makes statements fail with an interrupt error once ctx is done,
// until the returned function is called.
func (c *Conn) SetInterrupt(ctx context.Context) (restore func()) {
	if ctx == nil || ctx.Done() == nil {
		return func() {}
	}
	old := c.c.SetInterrupt(ctx.Done())
	return func() { c.c.SetInterrupt(old) }
}

// Exec runs a statement (or several separated by semicolons when args is
// empty) and discards any rows.
func (c *Conn) Exec(query string, args ...any) error {
	if len(args) == 0 && strings.Count(query, ";") > 0 {
		if err := sqlitex.ExecScript(c.c, query); err != nil {
			return wrapErr(query, err)
		}
		return nil
	}
	return c.Query(query, args, nil)
}

// ExecChanges runs one statement and reports how many rows it changed.
func (c *Conn) ExecChanges(query string, args ...any) (int, error) {
	if err := c.Query(query, args, nil); err != nil {
		return 0, err
	}
	return c.c.Changes(), nil
}

// Query runs one statement with args bound to its parameters and calls fn for
// every row. The statement is prepared once and cached on the connection. The
// Row passed to fn is valid only during the call.
func (c *Conn) Query(query string, args []any, fn func(*Row) error) error {
	stmt, err := c.c.Prepare(query)
	if err != nil {
		return wrapErr(query, err)
	}
	return c.run(stmt, query, args, fn, true)
}

// QueryTransient is Query without caching the prepared statement, for SQL that
// is unlikely to run again.
func (c *Conn) QueryTransient(query string, args []any, fn func(*Row) error) error {
	stmt, trailing, err := c.c.PrepareTransient(query)
	if err != nil {
		return wrapErr(query, err)
	}
	defer stmt.Finalize()
	if trailing != 0 && strings.TrimSpace(query[len(query)-trailing:]) != "" {
		return fmt.Errorf("sqlite: %q: only one statement is allowed", query)
	}
	return c.run(stmt, query, args, fn, false)
}

// run executes stmt; cached says whether stmt stays prepared on c (so its
// column names may be remembered).
func (c *Conn) run(stmt *sqlite.Stmt, query string, args []any, fn func(*Row) error, cached bool) (err error) {
	defer func() {
		if rerr := stmt.Reset(); err == nil && rerr != nil {
			err = wrapErr(query, rerr)
		}
		stmt.ClearBindings()
	}()
	if n := stmt.BindParamCount(); n != len(args) {
		return fmt.Errorf("sqlite: %q: statement has %d parameters, %d arguments given", query, n, len(args))
	}
	for i, a := range args {
		if err := bind(stmt, i+1, a); err != nil {
			return fmt.Errorf("sqlite: %q: argument %d: %w", query, i+1, err)
		}
	}
	row := Row{stmt: stmt}
	if cached {
		row.conn = c
	}
	for {
		ok, err := stmt.Step()
		if err != nil {
			return wrapErr(query, err)
		}
		if !ok {
			return nil
		}
		if fn != nil {
			if err := fn(&row); err != nil {
				return err
			}
		}
	}
}

// QueryInt64 returns the first column of the first row as an integer, and
// false when the statement returned no row.
func (c *Conn) QueryInt64(query string, args ...any) (int64, bool, error) {
	var v int64
	var found bool
	err := c.Query(query, args, func(r *Row) error {
		if !found {
			v, found = r.Int64(0), true
		}
		return nil
	})
	return v, found, err
}

// Begin starts a write transaction that takes the write lock at once.
func (c *Conn) Begin() error { return c.Exec("BEGIN IMMEDIATE") }

// BeginRead starts a deferred transaction, giving a reader a stable snapshot.
func (c *Conn) BeginRead() error { return c.Exec("BEGIN") }

// Commit commits the current transaction.
func (c *Conn) Commit() error { return c.Exec("COMMIT") }

// Rollback rolls the current transaction back; it is a no-op outside one.
func (c *Conn) Rollback() error {
	if c.c.AutocommitEnabled() {
		return nil
	}
	return c.Exec("ROLLBACK")
}

// InTransaction reports whether a transaction is open on the connection.
func (c *Conn) InTransaction() bool { return !c.c.AutocommitEnabled() }

// Serialize returns the bytes of the main database.
func (c *Conn) Serialize() ([]byte, error) { return c.c.Serialize("main") }

// Row gives access to the current result row of a query.
type Row struct {
	stmt  *sqlite.Stmt
	conn  *Conn
	names []string
}

// ColumnNames are the names of the result columns, in order. The slice is
// shared: callers must not modify it.
func (r *Row) ColumnNames() []string {
	if r.names == nil {
		r.names = r.conn.columnNames(r.stmt)
	}
	return r.names
}

// columnNames returns stmt's column names, remembered on c; c may be nil
// for a statement that is not kept.
func (c *Conn) columnNames(stmt *sqlite.Stmt) []string {
	if c != nil {
		if names, ok := c.names[stmt]; ok {
			return names
		}
	}
	names := make([]string, stmt.ColumnCount())
	for i := range names {
		names[i] = stmt.ColumnName(i)
	}
	if c == nil {
		return names
	}
	if c.names == nil {
		c.names = make(map[*sqlite.Stmt][]string)
	}
	c.names[stmt] = names
	return names
}

// ColumnCount is the number of result columns.
func (r *Row) ColumnCount() int { return r.stmt.ColumnCount() }

// ColumnName is the name of result column i.
func (r *Row) ColumnName(i int) string { return r.ColumnNames()[i] }

// Type is the storage class of column i in the current row.
func (r *Row) Type(i int) Type { return Type(r.stmt.ColumnType(i)) }

// IsNull reports whether column i is NULL.
func (r *Row) IsNull(i int) bool { return r.stmt.ColumnType(i) == sqlite.TypeNull }

// Int64 is column i as an integer.
func (r *Row) Int64(i int) int64 { return r.stmt.ColumnInt64(i) }

// Float is column i as a float.
func (r *Row) Float(i int) float64 { return r.stmt.ColumnFloat(i) }

// Text is column i as text.
func (r *Row) Text(i int) string { return r.stmt.ColumnText(i) }

// Len is the size in bytes of column i as text or blob, learnt without
// copying the value, so that a caller can refuse one too large to hold.
func (r *Row) Len(i int) int { return r.stmt.ColumnLen(i) }

// SetMaxLength sets the largest string or blob (and row) SQLite builds or
// reads on this connection, in bytes; larger ones fail with "string or blob
// too big". It returns the previous limit.
func (c *Conn) SetMaxLength(n int) (old int) {
	return int(c.c.Limit(sqlite.LimitLength, int32(min(n, math.MaxInt32))))
}

// Bytes is a copy of column i as bytes.
func (r *Row) Bytes(i int) []byte {
	n := r.stmt.ColumnLen(i)
	b := make([]byte, n)
	r.stmt.ColumnBytes(i, b)
	return b
}

// Value is column i as a Go value: nil, int64, float64, string or []byte.
func (r *Row) Value(i int) any {
	switch r.Type(i) {
	case TypeInteger:
		return r.Int64(i)
	case TypeFloat:
		return r.Float(i)
	case TypeText:
		return r.Text(i)
	case TypeBlob:
		return r.Bytes(i)
	default:
		return nil
	}
}

// Type is a SQLite storage class.
type Type int

// Storage classes.
const (
	TypeInteger Type = Type(sqlite.TypeInteger)
	TypeFloat   Type = Type(sqlite.TypeFloat)
	TypeText    Type = Type(sqlite.TypeText)
	TypeBlob    Type = Type(sqlite.TypeBlob)
	TypeNull    Type = Type(sqlite.TypeNull)
)

// TimeFormat is how time values are stored and sent: ISO-8601 in UTC with
// millisecond precision, the form JavaScript's Date.toISOString produces.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// FormatTime renders t in TimeFormat, in UTC.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

func bind(stmt *sqlite.Stmt, i int, v any) error {
	switch x := v.(type) {
	case nil:
		stmt.BindNull(i)
	case int:
		stmt.BindInt64(i, int64(x))
	case int8:
		stmt.BindInt64(i, int64(x))
	case int16:
		stmt.BindInt64(i, int64(x))
	case int32:
		stmt.BindInt64(i, int64(x))
	case int64:
		stmt.BindInt64(i, x)
	case uint:
		if uint64(x) > math.MaxInt64 {
			return fmt.Errorf("integer %d overflows int64", x)
		}
		stmt.BindInt64(i, int64(x))
	case uint8:
		stmt.BindInt64(i, int64(x))
	case uint16:
		stmt.BindInt64(i, int64(x))
	case uint32:
		stmt.BindInt64(i, int64(x))
	case uint64:
		if x > math.MaxInt64 {
			return fmt.Errorf("integer %d overflows int64", x)
		}
		stmt.BindInt64(i, int64(x))
	case float32:
		stmt.BindFloat(i, float64(x))
	case float64:
		stmt.BindFloat(i, x)
	case bool:
		stmt.BindBool(i, x)
	case string:
		stmt.BindText(i, x)
	case []byte:
		if x == nil {
			stmt.BindNull(i)
		} else {
			stmt.BindBytes(i, x)
		}
	case time.Time:
		stmt.BindText(i, FormatTime(x))
	case *time.Time:
		if x == nil {
			stmt.BindNull(i)
		} else {
			stmt.BindText(i, FormatTime(*x))
		}
	default:
		return fmt.Errorf("unsupported type %T", v)
	}
	return nil
}

// ErrConstraint is matched (errors.Is) by errors from violated constraints.
var ErrConstraint = errors.New("constraint failed")

type sqlError struct {
	query string
	err   error
}

// Error names the statement once and says "sqlite" once: the driver's own
// messages already start with "sqlite: " and, for a failed prepare, quote
// the statement.
func (e *sqlError) Error() string {
	q := e.query
	if len(q) > 200 {
		q = q[:200] + "…"
	}
	msg := strings.TrimPrefix(e.err.Error(), "sqlite: ")
	if full := strconv.Quote(e.query); strings.Contains(msg, full) {
		return "sqlite: " + strings.Replace(msg, full, strconv.Quote(q), 1)
	}
	return fmt.Sprintf("sqlite: %s (in %q)", msg, q)
}

func (e *sqlError) Unwrap() error { return e.err }

func (e *sqlError) Is(target error) bool {
	if target == ErrConstraint {
		return sqlite.ErrCode(e.err).ToPrimary() == sqlite.ResultConstraint
	}
	return false
}

func wrapErr(query string, err error) error {
	if err == nil {
		return nil
	}
	return &sqlError{query: query, err: err}
}

// IsInterrupt reports whether err comes from an interrupted statement.
func IsInterrupt(err error) bool {
	return sqlite.ErrCode(err) == sqlite.ResultInterrupt
}

// IsNotADatabase reports whether err says the file is not a SQLite database
// (or is encrypted or corrupted beyond reading its header).
func IsNotADatabase(err error) bool {
	c := sqlite.ErrCode(err).ToPrimary()
	return c == sqlite.ResultNotADB || c == sqlite.ResultCorrupt
}

// IsFull reports whether err says the database or its disk is full
// (SQLITE_FULL, also returned past PRAGMA max_page_count).
func IsFull(err error) bool {
	return sqlite.ErrCode(err).ToPrimary() == sqlite.ResultFull
}

// IsReadOnly reports whether err says the database refuses writes
// (SQLITE_READONLY and its extended codes).
func IsReadOnly(err error) bool {
	return sqlite.ErrCode(err).ToPrimary() == sqlite.ResultReadOnly
}

// LastInsertRowID is the rowid of the most recent successful INSERT.
func (c *Conn) LastInsertRowID() int64 { return c.c.LastInsertRowID() }

// Savepoint runs fn inside a savepoint: when fn fails its changes are rolled
// back (and the enclosing transaction, if any, goes on); otherwise they are
// kept.
func (c *Conn) Savepoint(fn func() error) (err error) {
	if err := c.Exec("SAVEPOINT livestore_sp"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			c.Exec("ROLLBACK TO livestore_sp")
		}
		if rerr := c.Exec("RELEASE livestore_sp"); err == nil {
			err = rerr
		}
	}()
	return fn()
}
