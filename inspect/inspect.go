// Package inspect reads a client store directory without its schema: the
// eventlog, what the store knows of its sync server, the state tables and
// their rows, and read-only SQL over them. It is what the livestore CLI and
// the MCP server use to look into a store that a program owns.
//
// A [Dir] opens the store's database read-only and does not take the
// directory's lock, so the owning process may keep committing; every call
// reads one consistent snapshot (SQLite WAL).
package inspect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/sqlite"
)

// Dir is a client store directory opened for reading. A Dir is not safe for
// concurrent use.
type Dir struct {
	path string
	c    *sqlite.Conn
}

// Open opens the store in dir read-only.
func Open(ctx context.Context, dir string) (*Dir, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	file := filepath.Join(dir, livestore.DBFileName)
	if _, err := os.Stat(file); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("inspect: %s is not a store directory (no %s)", dir, livestore.DBFileName)
		}
		return nil, fmt.Errorf("inspect: %w", err)
	}
	c, err := sqlite.Open(file, sqlite.OpenOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	d := &Dir{path: dir, c: c}
	if err := d.check(); err != nil {
		c.Close()
		return nil, err
	}
	return d, nil
}

// check makes sure the database is a store's.
func (d *Dir) check() error {
	n, _, err := d.c.QueryInt64(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)`,
		eventlog.Table, eventlog.SyncStatusTable)
	if err != nil {
		return fmt.Errorf("inspect: %s: %w", d.path, err)
	}
	if n != 2 {
		return fmt.Errorf("inspect: %s holds no LiveStore eventlog", d.path)
	}
	return nil
}

// Close closes the database.
func (d *Dir) Close() error { return d.c.Close() }

// Summary describes a store.
type Summary struct {
	Dir string `json:"dir"`
	// Head is the sequence number of the last event in the eventlog.
	Head eventlog.SeqNum `json:"head"`
	// Events counts the eventlog's events.
	Events int64 `json:"events"`
	// Pending counts the synced events the sync server has not confirmed
	// (all of them for a store that never synced).
	Pending int64 `json:"pending"`
	// ClientOnly counts the events that stay on this client.
	ClientOnly int64 `json:"clientOnly"`
	// SyncHead is the last global sequence number the server confirmed.
	SyncHead int64 `json:"syncHead"`
	// BackendID identifies the sync server's store; empty before the first sync.
	BackendID string `json:"backendId,omitempty"`
	// Tables are the state tables of the store's schema.
	Tables []TableInfo `json:"tables"`
}

// TableInfo is one state table.
type TableInfo struct {
	Name string `json:"name"`
	Rows int64  `json:"rows"`
}

// Summary reads the store's summary in one snapshot.
func (d *Dir) Summary(ctx context.Context) (Summary, error) {
	s := Summary{Dir: d.path}
	err := d.snapshot(ctx, func() error {
		var err error
		if s.Head, err = eventlog.Head(d.c); err != nil {
			return err
		}
		if s.Events, err = eventlog.Count(d.c); err != nil {
			return err
		}
		st, err := eventlog.ReadSyncStatus(d.c)
		if err != nil {
			return err
		}
		s.SyncHead, s.BackendID = st.Head, st.BackendID
		err = d.c.Query(`SELECT count(*) FILTER (WHERE seqNumClient = 0 AND seqNumGlobal > ?),
 count(*) FILTER (WHERE seqNumClient <> 0) FROM eventlog`, []any{st.Head}, func(r *sqlite.Row) error {
			s.Pending, s.ClientOnly = r.Int64(0), r.Int64(1)
			return nil
		})
		if err != nil {
			return err
		}
		var names []string
		err = d.c.Query(`SELECT tableName FROM __livestore_schema ORDER BY tableName`, nil, func(r *sqlite.Row) error {
			names = append(names, r.Text(0))
			return nil
		})
		if err != nil {
			return err
		}
		s.Tables = make([]TableInfo, 0, len(names))
		for _, name := range names {
			n, _, err := d.c.QueryInt64(`SELECT count(*) FROM ` + quoteIdent(name))
			if err != nil {
				return fmt.Errorf("count rows of %s: %w", name, err)
			}
			s.Tables = append(s.Tables, TableInfo{Name: name, Rows: n})
		}
		return nil
	})
	if err != nil {
		return Summary{}, fmt.Errorf("inspect: summary of %s: %w", d.path, err)
	}
	return s, nil
}

// Events returns, in log order, at most limit events after `after` (the zero
// SeqNum: from the start; limit ≤ 0: all).
func (d *Dir) Events(ctx context.Context, after eventlog.SeqNum, limit int) ([]eventlog.Event, error) {
	var out []eventlog.Event
	err := d.snapshot(ctx, func() error {
		return eventlog.Scan(d.c, after, limit, func(e eventlog.Event) error {
			out = append(out, e)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("inspect: events of %s: %w", d.path, err)
	}
	return out, nil
}

// Result is the answer to a query.
type Result struct {
	Columns []string `json:"columns"`
	// Rows hold int64, float64, string, []byte or nil values.
	Rows [][]any `json:"rows"`
	// Truncated is true when the query had more rows than the limit.
	Truncated bool `json:"truncated,omitempty"`
}

// Query runs one reading SQL statement (SELECT, or a PRAGMA without a value)
// over the store's database and returns at most limit rows (limit ≤ 0: all).
// Statements that would write, attach databases or change settings are
// refused before they run.
func (d *Dir) Query(ctx context.Context, query string, limit int) (Result, error) {
	res := Result{Rows: [][]any{}}
	err := d.snapshot(ctx, func() error {
		errLimit := errors.New("limit reached")
		cols, err := d.c.QueryReadOnly(query, nil, func(r *sqlite.Row) error {
			if limit > 0 && len(res.Rows) == limit {
				res.Truncated = true
				return errLimit
			}
			row := make([]any, r.ColumnCount())
			for i := range row {
				row[i] = r.Value(i)
			}
			res.Rows = append(res.Rows, row)
			return nil
		})
		res.Columns = cols
		if errors.Is(err, errLimit) {
			return nil
		}
		return err
	})
	if err != nil {
		return Result{}, fmt.Errorf("inspect: query %s: %w", d.path, err)
	}
	return res, nil
}

// snapshot runs fn in a read transaction, interrupted when ctx ends.
func (d *Dir) snapshot(ctx context.Context, fn func() error) error {
	restore := d.c.SetInterrupt(ctx)
	defer restore()
	if err := d.c.BeginRead(); err != nil {
		return err
	}
	err := fn()
	if rerr := d.c.Rollback(); err == nil {
		err = rerr
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
