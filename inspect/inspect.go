// Package inspect reads a client store directory without its schema: the
// eventlog, what the store knows of its sync server, the state tables and
// their rows, and read-only SQL over them. It is what the livestore CLI and
// the MCP server use to look into a store that a program owns.
//
// A [Dir] opens the store's database read-only and does not take the
// directory's lock, so the owning process may keep committing; every call
// reads one consistent snapshot (SQLite WAL).
//
// Queries are bounded ([Limits]): in rows, in the bytes of the answer, and
// in time, after which SQLite is interrupted. The read-only guard refuses
// every statement that writes, including VACUUM INTO, which would write a
// copy of the database elsewhere.
//
// The one write is [RestorePending], which appends a recovery file's
// pending events while the owning program is stopped. The package never
// materializes events, syncs or opens a [livestore.Store]: a program
// looking into its own open store uses the Store's introspection
// (Store.QueryReadOnly, Store.EventLog) instead.
package inspect

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/clientdb"
	"github.com/livestore-go/livestore/internal/sqlite"
)

// Dir is a client store directory opened for reading. A Dir is not safe for
// concurrent use.
type Dir struct {
	path string
	c    *sqlite.Conn
	db   clientdb.DB // the store's bookkeeping tables, on c
}

// Open opens the store in dir read-only.
func Open(ctx context.Context, dir string) (*Dir, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	file := filepath.Join(dir, livestore.DBFileName)
	if _, err := os.Stat(file); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s is not a store directory (no %s)", dir, livestore.DBFileName)
		}
		return nil, fmt.Errorf("open store directory %s: %w", dir, err)
	}
	c, err := sqlite.Open(file, sqlite.OpenOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open store directory %s: %w", dir, err)
	}
	d := &Dir{path: dir, c: c, db: clientdb.On(c)}
	if err := d.check(); err != nil {
		c.Close()
		return nil, err
	}
	return d, nil
}

// check makes sure the database is a store's.
func (d *Dir) check() error {
	probe, err := d.db.Probe()
	if err != nil {
		if sqlite.IsNotADatabase(err) {
			return fmt.Errorf("%s is not a store directory: its %s is not a SQLite database", d.path, livestore.DBFileName)
		}
		return fmt.Errorf("read store directory %s: %w", d.path, err)
	}
	if !probe.Eventlog {
		return fmt.Errorf("%s is not a store directory: its %s holds no LiveStore eventlog", d.path, livestore.DBFileName)
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
	// StaleState is set when events were restored into the eventlog
	// ([RestorePending]) that the state does not show yet: the next Open
	// with the schema rebuilds it.
	StaleState bool `json:"staleState,omitempty"`
	// RecoveryFiles are the recovery files in the directory, oldest first.
	RecoveryFiles []RecoveryFile `json:"recoveryFiles"`
}

// TableInfo is one state table.
type TableInfo struct {
	Name string `json:"name"`
	Rows int64  `json:"rows"`
}

// SyncStatus reads the sync state recorded in the directory: the last
// global sequence number the server confirmed and its backend id. Unlike
// Summary it counts nothing, so it is cheap to call often.
func (d *Dir) SyncStatus(ctx context.Context) (eventlog.SyncStatus, error) {
	var st eventlog.SyncStatus
	err := d.snapshot(ctx, func() error {
		var err error
		st, err = d.db.ReadSyncStatus()
		return err
	})
	if err != nil {
		return st, fmt.Errorf("sync status of %s: %w", d.path, err)
	}
	return st, nil
}

// Summary reads the store's summary in one snapshot.
func (d *Dir) Summary(ctx context.Context) (Summary, error) {
	s := Summary{Dir: d.path}
	err := d.snapshot(ctx, func() error {
		var err error
		if s.Head, err = d.db.Head(); err != nil {
			return err
		}
		st, err := d.db.ReadSyncStatus()
		if err != nil {
			return err
		}
		s.SyncHead, s.BackendID = st.Head, st.BackendID
		counts, err := d.db.Counts(st.Head)
		if err != nil {
			return err
		}
		s.Events, s.Pending, s.ClientOnly = counts.Events, counts.Pending, counts.ClientOnly
		s.Tables, s.StaleState, err = d.stateTables()
		return err
	})
	if err != nil {
		return Summary{}, fmt.Errorf("summary of %s: %w", d.path, err)
	}
	if s.RecoveryFiles, err = RecoveryFiles(d.path); err != nil {
		return Summary{}, fmt.Errorf("summary of %s: %w", d.path, err)
	}
	return s, nil
}

// stateTables lists the state tables recorded as built, by name, with
// their row counts, and reports whether state was marked for a rebuild.
func (d *Dir) stateTables() ([]TableInfo, bool, error) {
	recorded, err := d.db.TableHashes()
	if err != nil {
		return nil, false, err
	}
	_, stale := recorded[clientdb.StaleMarker]
	delete(recorded, clientdb.StaleMarker)
	names := slices.Sorted(maps.Keys(recorded))
	tables := make([]TableInfo, 0, len(names))
	for _, name := range names {
		n, _, err := d.c.QueryInt64(`SELECT count(*) FROM ` + quoteIdent(name))
		if err != nil {
			return nil, false, fmt.Errorf("count rows of %s: %w", name, err)
		}
		tables = append(tables, TableInfo{Name: name, Rows: n})
	}
	return tables, stale, nil
}

// ErrStop, returned by the function given to [Dir.ScanEvents], ends the scan
// without an error.
var ErrStop = errors.New("stop")

// ScanEvents calls fn for each event after `after` (the zero SeqNum: from
// the start), in log order, one at a time, until fn returns [ErrStop] or
// another error, or the events end. The scan stops with an error matching
// [ErrTimeout] after timeout (0: DefaultTimeout; negative: no limit). fn's
// event is its own; the scan holds no more than one event in memory.
func (d *Dir) ScanEvents(ctx context.Context, after eventlog.SeqNum, timeout time.Duration, fn func(eventlog.Event) error) error {
	ctx, cancel, explain := withTimeout(ctx, timeout)
	defer cancel()
	err := d.snapshot(ctx, func() error {
		return d.db.Scan(after, 0, fn)
	})
	if errors.Is(err, ErrStop) {
		err = nil
	}
	if err = explain(err); err != nil {
		return fmt.Errorf("events of %s: %w", d.path, err)
	}
	return nil
}

// Result is the answer to a query.
type Result struct {
	Columns []string `json:"columns"`
	// Rows hold int64, float64, string, []byte or nil values.
	Rows [][]any `json:"rows"`
	// Truncated is true when the query had more rows than the answer holds.
	Truncated bool `json:"truncated,omitempty"`
	// TruncatedBy names the limit that ended the answer: LimitRows or
	// LimitBytes.
	TruncatedBy string `json:"truncatedBy,omitempty"`
}

// Query runs one reading SQL statement (SELECT, or a PRAGMA without a value)
// over the store's database and returns its first rows, within lim: at most
// lim.MaxRows rows whose JSON encoding stays under lim.MaxBytes, read within
// lim.Timeout. The rows are measured while they are read, and a value is
// measured before it is copied, so a query over large values holds no more
// than the answer in memory. Statements that would write, attach databases,
// vacuum or change settings are refused before they run.
func (d *Dir) Query(ctx context.Context, query string, lim Limits) (Result, error) {
	ctx, cancel, explain := withTimeout(ctx, lim.Timeout)
	defer cancel()
	old := d.c.SetMaxLength(MaxValueLength)
	defer d.c.SetMaxLength(old)
	res := Result{Rows: [][]any{}}
	// The budget covers {"columns":[...],"rows":[...],"truncated":true,"truncatedBy":"bytes"}.
	budget := lim.maxBytes() - len(`{"columns":[],"rows":[],"truncated":true,"truncatedBy":"bytes"}`)
	err := d.snapshot(ctx, func() error {
		errFull := errors.New("answer full")
		cols, err := d.c.QueryReadOnly(query, nil, func(r *sqlite.Row) error {
			if res.Columns == nil {
				res.Columns = r.ColumnNames()
				for _, c := range res.Columns {
					budget -= jsonTextSize(c) + 1
				}
			}
			if lim.MaxRows > 0 && len(res.Rows) == lim.MaxRows {
				res.Truncated, res.TruncatedBy = true, LimitRows
				return errFull
			}
			row, ok := readRow(r, budget-1)
			if !ok {
				res.Truncated, res.TruncatedBy = true, LimitBytes
				return errFull
			}
			budget -= row.size + 1
			res.Rows = append(res.Rows, row.values)
			return nil
		})
		res.Columns = cols
		if errors.Is(err, errFull) {
			return nil
		}
		return err
	})
	if err = explain(err); err != nil {
		return Result{}, fmt.Errorf("query %s: %w", d.path, err)
	}
	return res, nil
}

type sizedRow struct {
	values []any
	size   int
}

// readRow copies the current row if its JSON encoding fits in budget bytes.
// Text and blobs are measured before they are copied.
func readRow(r *sqlite.Row, budget int) (sizedRow, bool) {
	n := r.ColumnCount()
	row := sizedRow{values: make([]any, n), size: 2 + max(n-1, 0)}
	for i := range n {
		switch r.Type(i) {
		case sqlite.TypeText:
			// Escaping only lengthens text.
			if row.size+2+r.Len(i) > budget {
				return sizedRow{}, false
			}
			row.values[i] = r.Text(i)
		case sqlite.TypeBlob:
			if row.size+2+base64.StdEncoding.EncodedLen(r.Len(i)) > budget {
				return sizedRow{}, false
			}
			row.values[i] = r.Bytes(i)
		default:
			row.values[i] = r.Value(i)
		}
		row.size += jsonValueSize(row.values[i])
		if row.size > budget {
			return sizedRow{}, false
		}
	}
	return row, true
}

// snapshot runs fn in a read transaction, interrupted when ctx ends.
func (d *Dir) snapshot(ctx context.Context, fn func() error) error {
	restore := d.c.SetInterrupt(ctx)
	if err := d.c.BeginRead(); err != nil {
		restore()
		return err
	}
	err := fn()
	// An interrupt still pending would fail the rollback and leave the
	// transaction open for the next call.
	restore()
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
