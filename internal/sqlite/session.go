package sqlite

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"zombiezen.com/go/sqlite"
)

// Capture records, as a SQLite changeset, every change that fn makes to the
// named tables of the main database. Tables without a primary key are not
// recorded by SQLite sessions; the schema layer rejects them. An empty
// changeset (nil) means fn changed nothing. The connection must have been
// opened with OpenOptions.Capture.
func (c *Conn) Capture(tables []string, fn func() error) ([]byte, error) {
	if c.hook == nil {
		return nil, errors.New("sqlite: capture on a connection not opened for it (OpenOptions.Capture)")
	}
	sess, err := c.c.CreateSession("main")
	if err != nil {
		return nil, fmt.Errorf("sqlite: create session: %w", err)
	}
	defer sess.Delete()
	for _, t := range tables {
		if err := sess.Attach(t); err != nil {
			return nil, fmt.Errorf("sqlite: session attach %s: %w", t, err)
		}
	}
	if err := fn(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := sess.WriteChangeset(&buf); err != nil {
		return nil, fmt.Errorf("sqlite: write changeset: %w", err)
	}
	if buf.Len() == 0 {
		return nil, nil
	}
	return buf.Bytes(), nil
}

// ApplyInverse undoes the changes recorded in changeset. A change that no
// longer matches the database (a conflict) fails the whole operation: the
// store only inverts changesets in exact reverse order, where conflicts mean
// the state was modified outside the store.
func (c *Conn) ApplyInverse(changeset []byte) error {
	if len(changeset) == 0 {
		return nil
	}
	// Invert first, then apply: the driver's ApplyInverseChangeset reads its
	// own output pipe and never returns (zombiezen.com/go/sqlite v1.4.2).
	var inv bytes.Buffer
	if err := sqlite.InvertChangeset(&inv, bytes.NewReader(changeset)); err != nil {
		return fmt.Errorf("sqlite: invert changeset: %w", err)
	}
	var conflict error
	err := c.c.ApplyChangeset(bytes.NewReader(inv.Bytes()), nil,
		func(ct sqlite.ConflictType, it *sqlite.ChangesetIterator) sqlite.ConflictAction {
			table := ""
			if op, err := it.Operation(); err == nil {
				table = op.TableName
			}
			conflict = fmt.Errorf("sqlite: rollback conflict (%v) on table %q", ct, table)
			return sqlite.ChangesetAbort
		})
	if conflict != nil {
		return conflict
	}
	if err != nil {
		return fmt.Errorf("sqlite: apply inverse changeset: %w", err)
	}
	return nil
}

// ChangesetTables lists the tables a changeset touches, sorted.
func ChangesetTables(changeset []byte) ([]string, error) {
	if len(changeset) == 0 {
		return nil, nil
	}
	it, err := sqlite.NewChangesetIterator(bytes.NewReader(changeset))
	if err != nil {
		return nil, fmt.Errorf("sqlite: read changeset: %w", err)
	}
	defer it.Close()
	seen := map[string]bool{}
	for {
		ok, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("sqlite: read changeset: %w", err)
		}
		if !ok {
			break
		}
		op, err := it.Operation()
		if err != nil {
			return nil, fmt.Errorf("sqlite: read changeset: %w", err)
		}
		seen[op.TableName] = true
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out, nil
}

// Access is the set of tables a statement reads and writes.
type Access struct {
	Reads  []string
	Writes []string
}

// Analyze prepares query without running it and reports which tables of the
// main database it reads and writes, as SQLite's authorizer sees them (views
// and subqueries resolve to their underlying tables). The SQLite authorizer
// runs when a statement is prepared, not when it steps, so callers cache the
// answer per SQL text.
func (c *Conn) Analyze(query string) (Access, error) {
	reads := map[string]bool{}
	writes := map[string]bool{}
	err := c.c.SetAuthorizer(sqlite.AuthorizeFunc(func(a sqlite.Action) sqlite.AuthResult {
		if db := a.Database(); db != "" && db != "main" {
			return sqlite.AuthResultOK
		}
		switch a.Type() {
		case sqlite.OpRead:
			if t := a.Table(); t != "" {
				reads[t] = true
			}
		case sqlite.OpInsert, sqlite.OpUpdate, sqlite.OpDelete:
			if t := a.Table(); t != "" {
				writes[t] = true
			}
		}
		return sqlite.AuthResultOK
	}))
	if err != nil {
		return Access{}, err
	}
	defer c.c.SetAuthorizer(nil)
	stmt, _, err := c.c.PrepareTransient(query)
	if err != nil {
		return Access{}, wrapErr(query, err)
	}
	stmt.Finalize()
	return Access{Reads: sortedKeys(reads), Writes: sortedKeys(writes)}, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k == "sqlite_master" || k == "sqlite_schema" {
			continue
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// readingPragma reports whether the pragma's argument names what to read
// rather than a value to set.
func readingPragma(name string) bool {
	switch strings.ToLower(name) {
	case "table_info", "table_xinfo", "table_list", "index_list", "index_info",
		"index_xinfo", "foreign_key_list", "integrity_check", "quick_check":
		return true
	}
	return false
}

// QueryReadOnly is QueryTransient for untrusted SQL: the statement may only
// read (SELECT, reading functions, PRAGMAs that report, such as
// table_info(t) or user_version); writes, schema changes, ATTACH, VACUUM,
// transactions and PRAGMA assignments are refused. It returns the names of
// the result columns (also when there is no row).
//
// The authorizer stays installed while the statement runs, not only while it
// is prepared: VACUUM asks it nothing when prepared and then runs ATTACH and
// writes of its own, which it then refuses. VACUUM is also refused up front
// for a clear error.
func (c *Conn) QueryReadOnly(query string, args []any, fn func(*Row) error) ([]string, error) {
	if strings.TrimSpace(query) == "" {
		return nil, fmt.Errorf("sqlite: empty statement")
	}
	if strings.EqualFold(leadingKeyword(query), "VACUUM") {
		return nil, fmt.Errorf("sqlite: %q: VACUUM is not allowed: only reading statements are (VACUUM rewrites the database or, with INTO, writes a copy of it to a file)", query)
	}
	var refused string
	err := c.c.SetAuthorizer(sqlite.AuthorizeFunc(func(a sqlite.Action) sqlite.AuthResult {
		switch a.Type() {
		case sqlite.OpSelect, sqlite.OpRead, sqlite.OpFunction, sqlite.OpRecursive:
			return sqlite.AuthResultOK
		case sqlite.OpPragma:
			if a.PragmaArg() == "" || readingPragma(a.Pragma()) {
				return sqlite.AuthResultOK
			}
		}
		if refused == "" {
			refused = a.String()
		}
		return sqlite.AuthResultDeny
	}))
	if err != nil {
		return nil, err
	}
	defer c.c.SetAuthorizer(nil)
	stmt, trailing, err := c.c.PrepareTransient(query)
	if err != nil {
		if refused != "" {
			return nil, fmt.Errorf("sqlite: %q: only reading statements are allowed (refused: %s)", query, refused)
		}
		return nil, wrapErr(query, err)
	}
	defer stmt.Finalize()
	if trailing != 0 && strings.TrimSpace(query[len(query)-trailing:]) != "" {
		return nil, fmt.Errorf("sqlite: %q: only one statement is allowed", query)
	}
	cols := (*Conn)(nil).columnNames(stmt)
	err = c.run(stmt, query, args, fn, false)
	if err != nil && refused != "" {
		return cols, fmt.Errorf("sqlite: %q: only reading statements are allowed (refused while running: %s)", query, refused)
	}
	return cols, err
}

// leadingKeyword returns the first word of query after blanks and comments,
// which names the kind of statement.
func leadingKeyword(query string) string {
	s := query
	for {
		s = strings.TrimLeft(s, " \t\r\n\f")
		switch {
		case strings.HasPrefix(s, "--"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return ""
			}
			s = s[i+1:]
		case strings.HasPrefix(s, "/*"):
			i := strings.Index(s[2:], "*/")
			if i < 0 {
				return ""
			}
			s = s[2+i+2:]
		default:
			end := strings.IndexFunc(s, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_')
			})
			if end < 0 {
				end = len(s)
			}
			return s[:end]
		}
	}
}
