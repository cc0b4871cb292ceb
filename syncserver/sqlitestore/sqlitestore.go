// Package sqlitestore is the default storage of the sync server: every
// store's event log in one SQLite file (pure Go driver, WAL mode).
//
// Appends are durable when they return: the transaction is committed with
// synchronous=FULL. One writer goroutine owns the write connection and
// commits concurrent appends (of different stores) together in one
// transaction, each in its own savepoint, so one fsync serves many pushes.
// Reads use a pool of read-only connections and never wait for the writer.
//
// A file is meant to be used by one server process at a time; use pgstore to
// run several servers on shared data.
package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// Options configure [Open]. The zero value is ready to use.
type Options struct {
	// ReadConns is the number of read connections; default 4.
	ReadConns int
	// MaxGroup bounds the writes committed in one transaction; default 64.
	MaxGroup int
}

// Store is a [syncserver.Storage] backed by one SQLite file. It is safe for
// concurrent use; Close it when done.
type Store struct {
	readers *sqlitex.Pool
	writer  *sqlite.Conn
	jobs    chan *job
	maxJobs int

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	mu        sync.RWMutex // orders sends on jobs before Close
	closed    bool
}

var _ syncserver.Storage = (*Store)(nil)

// ErrClosed is returned by calls on a closed Store.
var ErrClosed = errors.New("sqlitestore: store is closed")

const schema = `
CREATE TABLE IF NOT EXISTS stores (
	id         INTEGER PRIMARY KEY,
	store_id   TEXT NOT NULL UNIQUE,
	backend_id TEXT NOT NULL,
	head       INTEGER NOT NULL DEFAULT 0,
	created_at TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS events (
	store          INTEGER NOT NULL REFERENCES stores (id),
	seq_num        INTEGER NOT NULL,
	parent_seq_num INTEGER NOT NULL,
	name           TEXT NOT NULL,
	args           TEXT,
	client_id      TEXT NOT NULL,
	session_id     TEXT NOT NULL,
	created_at_ms  INTEGER NOT NULL,
	PRIMARY KEY (store, seq_num)
) STRICT, WITHOUT ROWID;
`

// Open opens (creating if needed) the database file at path. Its directory
// must exist.
func Open(path string, opts Options) (*Store, error) {
	if opts.ReadConns <= 0 {
		opts.ReadConns = 4
	}
	if opts.MaxGroup <= 0 {
		opts.MaxGroup = 64
	}
	w, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate|sqlite.OpenWAL|sqlite.OpenURI)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	for _, pragma := range []string{"PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", "PRAGMA busy_timeout = 5000", "PRAGMA foreign_keys = ON"} {
		if err := sqlitex.ExecuteTransient(w, pragma, nil); err != nil {
			w.Close()
			return nil, fmt.Errorf("sqlitestore: set up %s: %s: %w", path, pragma, err)
		}
	}
	if err := sqlitex.ExecuteScript(w, schema, nil); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlitestore: create tables in %s: %w", path, err)
	}
	readers, err := sqlitex.NewPool(path, sqlitex.PoolOptions{
		Flags:    sqlite.OpenReadOnly | sqlite.OpenWAL | sqlite.OpenURI,
		PoolSize: opts.ReadConns,
		PrepareConn: func(conn *sqlite.Conn) error {
			return sqlitex.ExecuteTransient(conn, "PRAGMA busy_timeout = 5000", nil)
		},
	})
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlitestore: open readers for %s: %w", path, err)
	}
	s := &Store{
		readers: readers,
		writer:  w,
		jobs:    make(chan *job, opts.MaxGroup),
		maxJobs: opts.MaxGroup,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go s.writeLoop()
	return s, nil
}

// Close waits for pending writes, stops the writer and closes the file.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.stop)
		s.mu.Unlock()
		<-s.done
		err = errors.Join(s.readers.Close(), s.writer.Close())
	})
	return err
}

// job is one write, run in its own savepoint of a group transaction. Its
// result is final only once the group committed.
type job struct {
	ctx  context.Context
	fn   func(conn *sqlite.Conn) error
	err  error
	done chan struct{}
}

// write runs fn in the writer and waits until it is committed.
func (s *Store) write(ctx context.Context, fn func(conn *sqlite.Conn) error) error {
	j := &job{ctx: ctx, fn: fn, done: make(chan struct{})}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	select {
	case s.jobs <- j:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	// A queued job always runs to an answer, even if ctx ends meanwhile, so
	// that the caller learns whether it was committed.
	<-j.done
	return j.err
}

func (s *Store) writeLoop() {
	defer close(s.done)
	for {
		var first *job
		select {
		case first = <-s.jobs:
		case <-s.stop:
			// Jobs queued before Close still run.
			for {
				select {
				case j := <-s.jobs:
					s.runGroup([]*job{j})
				default:
					return
				}
			}
		}
		group := []*job{first}
	collect:
		for len(group) < s.maxJobs {
			select {
			case j := <-s.jobs:
				group = append(group, j)
			default:
				break collect
			}
		}
		s.runGroup(group)
	}
}

func (s *Store) runGroup(group []*job) {
	conn := s.writer
	err := func() (err error) {
		end, err := sqlitex.ImmediateTransaction(conn)
		if err != nil {
			return err
		}
		defer end(&err)
		for _, j := range group {
			if j.err = j.ctx.Err(); j.err != nil {
				continue
			}
			j.err = savepoint(conn, j.fn)
		}
		return nil
	}()
	for _, j := range group {
		if err != nil {
			j.err = fmt.Errorf("sqlitestore: commit: %w", err)
		}
		close(j.done)
	}
}

func savepoint(conn *sqlite.Conn, fn func(*sqlite.Conn) error) (err error) {
	release := sqlitex.Save(conn)
	defer release(&err)
	return fn(conn)
}

// read runs fn on a read connection.
func (s *Store) read(ctx context.Context, fn func(conn *sqlite.Conn) error) error {
	conn, err := s.readers.Take(ctx)
	if err != nil {
		if errors.Is(err, ctx.Err()) {
			return ctx.Err()
		}
		return ErrClosed
	}
	defer s.readers.Put(conn)
	return fn(conn)
}

// storeRow finds the store's key, backend id and head, creating the store if
// create is set.
func storeRow(conn *sqlite.Conn, storeID string, create bool) (key int64, backendID string, head int64, found bool, err error) {
	err = sqlitex.Execute(conn, "SELECT id, backend_id, head FROM stores WHERE store_id = ?", &sqlitex.ExecOptions{
		Args: []any{storeID},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			key, backendID, head, found = stmt.ColumnInt64(0), stmt.ColumnText(1), stmt.ColumnInt64(2), true
			return nil
		},
	})
	if err != nil || found || !create {
		return key, backendID, head, found, err
	}
	backendID = syncserver.NewBackendID()
	err = sqlitex.Execute(conn, "INSERT INTO stores (store_id, backend_id, head, created_at) VALUES (?, ?, 0, ?)", &sqlitex.ExecOptions{
		Args: []any{storeID, backendID, syncserver.FormatCreatedAt(time.Now())},
	})
	return conn.LastInsertRowID(), backendID, 0, true, err
}

// BackendID implements [syncserver.Storage].
func (s *Store) BackendID(ctx context.Context, storeID string) (string, error) {
	var id string
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		_, backendID, _, found, err := storeRow(conn, storeID, false)
		if found {
			id = backendID
		}
		return err
	})
	if err != nil || id != "" {
		return id, wrap("backend id", storeID, err)
	}
	err = s.write(ctx, func(conn *sqlite.Conn) error {
		_, backendID, _, _, err := storeRow(conn, storeID, true)
		id = backendID
		return err
	})
	return id, wrap("create store", storeID, err)
}

// Head implements [syncserver.Storage].
func (s *Store) Head(ctx context.Context, storeID string) (int64, error) {
	var head int64
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		var err error
		_, _, head, _, err = storeRow(conn, storeID, false)
		return err
	})
	return head, wrap("head", storeID, err)
}

// Append implements [syncserver.Storage]. The head check and the insert run
// in one savepoint of the writer's transaction.
func (s *Store) Append(ctx context.Context, storeID string, batch []syncproto.Event, createdAt time.Time) error {
	if len(batch) == 0 {
		return nil
	}
	ms := createdAt.UnixMilli()
	err := s.write(ctx, func(conn *sqlite.Conn) error {
		key, _, head, _, err := storeRow(conn, storeID, true)
		if err != nil {
			return err
		}
		if head != batch[0].ParentSeqNum {
			return &syncproto.ServerAheadError{MinimumExpectedNum: head, ProvidedNum: batch[0].ParentSeqNum}
		}
		stmt, err := conn.Prepare("INSERT INTO events (store, seq_num, parent_seq_num, name, args, client_id, session_id, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
		if err != nil {
			return err
		}
		for _, ev := range batch {
			stmt.BindInt64(1, key)
			stmt.BindInt64(2, ev.SeqNum)
			stmt.BindInt64(3, ev.ParentSeqNum)
			stmt.BindText(4, ev.Name)
			if len(ev.Args) == 0 || string(ev.Args) == "null" {
				stmt.BindNull(5)
			} else {
				stmt.BindText(5, string(ev.Args))
			}
			stmt.BindText(6, ev.ClientID)
			stmt.BindText(7, ev.SessionID)
			stmt.BindInt64(8, ms)
			_, err := stmt.Step()
			if rerr := stmt.Reset(); err == nil {
				err = rerr
			}
			if err != nil {
				return fmt.Errorf("insert event %d: %w", ev.SeqNum, err)
			}
		}
		return sqlitex.Execute(conn, "UPDATE stores SET head = ? WHERE id = ?", &sqlitex.ExecOptions{
			Args: []any{batch[len(batch)-1].SeqNum, key},
		})
	})
	var ahead *syncproto.ServerAheadError
	if errors.As(err, &ahead) {
		return err
	}
	return wrap("append", storeID, err)
}

// Read implements [syncserver.Storage].
func (s *Store) Read(ctx context.Context, storeID string, after, upTo int64, limit int) ([]syncserver.StoredEvent, error) {
	var out []syncserver.StoredEvent
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, `SELECT e.seq_num, e.parent_seq_num, e.name, e.args, e.client_id, e.session_id, e.created_at_ms
			FROM events e JOIN stores s ON e.store = s.id
			WHERE s.store_id = ? AND e.seq_num > ? AND e.seq_num <= ?
			ORDER BY e.seq_num LIMIT ?`, &sqlitex.ExecOptions{
			Args: []any{storeID, after, upTo, limit},
			ResultFunc: func(stmt *sqlite.Stmt) error {
				ev := syncserver.StoredEvent{
					Event: syncproto.Event{
						SeqNum:       stmt.ColumnInt64(0),
						ParentSeqNum: stmt.ColumnInt64(1),
						Name:         stmt.ColumnText(2),
						ClientID:     stmt.ColumnText(4),
						SessionID:    stmt.ColumnText(5),
					},
					CreatedAt: time.UnixMilli(stmt.ColumnInt64(6)).UTC(),
				}
				if !stmt.ColumnIsNull(3) {
					ev.Args = []byte(stmt.ColumnText(3))
				}
				out = append(out, ev)
				return nil
			},
		})
	})
	return out, wrap("read", storeID, err)
}

// Count implements [syncserver.Storage].
func (s *Store) Count(ctx context.Context, storeID string, after, upTo int64) (int64, error) {
	var n int64
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, `SELECT count(*) FROM events e JOIN stores s ON e.store = s.id
			WHERE s.store_id = ? AND e.seq_num > ? AND e.seq_num <= ?`, &sqlitex.ExecOptions{
			Args:       []any{storeID, after, upTo},
			ResultFunc: func(stmt *sqlite.Stmt) error { n = stmt.ColumnInt64(0); return nil },
		})
	})
	return n, wrap("count", storeID, err)
}

func wrap(op, storeID string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("sqlitestore: %s %q: %w", op, storeID, err)
}

// Stores lists every store, by id.
func (s *Store) Stores(ctx context.Context) ([]syncserver.StoreInfo, error) {
	var out []syncserver.StoreInfo
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, "SELECT store_id, backend_id, head, created_at FROM stores ORDER BY store_id", &sqlitex.ExecOptions{
			ResultFunc: func(stmt *sqlite.Stmt) error {
				created, _ := time.Parse(time.RFC3339Nano, stmt.ColumnText(3))
				out = append(out, syncserver.StoreInfo{StoreID: stmt.ColumnText(0), BackendID: stmt.ColumnText(1),
					Head: stmt.ColumnInt64(2), CreatedAt: created})
				return nil
			},
		})
	})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: list stores: %w", err)
	}
	return out, nil
}
