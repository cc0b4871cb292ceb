// Package sqlitestore is the default storage of the sync server: every
// store's event log in one SQLite file (pure Go driver, WAL mode).
//
// Appends are durable when they return: the transaction is committed with
// synchronous=FULL. One writer goroutine owns the write connection and
// commits the appends queued meanwhile (of different stores) together in
// one transaction, so one fsync serves many pushes; each append still gets
// its own result, and one that fails costs only its own push (the group is
// then run again with a savepoint per append). A batch is inserted with
// multi-row INSERT statements. Reads use a pool of read-only connections
// and never wait for the writer. Commits do not checkpoint (copy the
// write-ahead log into the database file): a goroutine of its own does,
// beside the writer, which copies only what it committed meanwhile.
//
// A file has one owner: [Open] takes an exclusive lock on <path>.lock and
// fails with a *[LockedError] while another process (or another Open in
// this process) holds it; use pgstore to run several servers on shared
// data. Tools that only look at a file, even one a running server owns, use
// [OpenReadOnly], which neither locks nor writes.
package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/livestore-go/livestore/internal/flock"
	"github.com/livestore-go/livestore/internal/sqlite"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// Options configure [Open]. The zero value is ready to use.
type Options struct {
	// ReadConns is the number of read connections; default 4.
	ReadConns int
	// MaxGroup bounds the writes committed in one transaction; default 64.
	MaxGroup int
	// MaxBytes bounds the size of the database file (PRAGMA
	// max_page_count, rounded down to whole pages); 0 means no bound. Past
	// it, appends fail with a *syncserver.StorageError of kind
	// StorageFull, which limits what clients can make the server hold. A
	// bound below the file's current size keeps the current size.
	MaxBytes int64
}

// Store is a [syncserver.Storage] backed by one SQLite file. It is safe for
// concurrent use; Close it when done.
type Store struct {
	path     string
	readOnly bool
	// secret derives the backend ids of stores that do not exist yet; nil
	// only for a read-only file written before secrets were kept.
	secret  []byte
	lock    *flock.Lock // nil when read-only
	readers *sqlite.Pool
	writer  *sqlite.Conn // nil when read-only
	jobs    chan *job
	maxJobs int
	// The event inserts of a group's first run, without savepoints, and
	// of its second (see runGroup).
	fast, safe insertQueries
	// ckpt copies the log into the database file (see checkpointer);
	// logBytes estimates what the writer added to the log since it last
	// woke ckpt. Both nil/zero when read-only.
	ckpt      *checkpointer
	logBytes  int64
	ckptWakes int64 // how often the writer woke ckpt
	// groupBytes counts the event bytes of the group being written.
	groupBytes int64

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	mu        sync.RWMutex // orders sends on jobs before Close
	closed    bool
}

var (
	_ syncserver.Storage      = (*Store)(nil)
	_ syncserver.StoreCreator = (*Store)(nil)
)

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
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
) STRICT;
`

// secretKey names the backend-id secret in the meta table.
const secretKey = "backend_id_secret"

// Open opens (creating if needed) the database file at path for a server:
// its directory must exist, and the directory and file must be writable,
// else Open fails at once with a *syncserver.StorageError of kind
// StorageReadOnly naming what is not writable. It fails with a
// *[LockedError] while another owner holds the file.
func Open(path string, opts Options) (*Store, error) {
	if opts.ReadConns <= 0 {
		opts.ReadConns = 4
	}
	if opts.MaxGroup <= 0 {
		opts.MaxGroup = 64
	}
	if err := checkWritable(path); err != nil {
		return nil, err
	}
	lock, err := acquire(path)
	if err != nil {
		return nil, err
	}
	s, err := openWriter(path, opts)
	if err != nil {
		_ = lock.Release()
		return nil, err
	}
	s.lock = lock
	go s.writeLoop()
	return s, nil
}

func openWriter(path string, opts Options) (*Store, error) {
	op := "open " + path
	// WAL, synchronous=FULL and a busy timeout come with sqlite.Open.
	w, err := sqlite.Open(path, sqlite.OpenOptions{})
	if err != nil {
		return nil, storageErr(op, err)
	}
	secret, err := setUp(w, opts.MaxBytes)
	if err != nil {
		w.Close()
		return nil, storageErr(op, err)
	}
	readers, err := sqlite.OpenPool(path, opts.ReadConns, sqlite.OpenOptions{ReadOnly: true})
	if err != nil {
		w.Close()
		return nil, storageErr(op+": open readers", err)
	}
	ckpt, err := newCheckpointer(path)
	if err != nil {
		w.Close()
		readers.Close()
		return nil, storageErr(op, err)
	}
	return &Store{
		ckpt:    ckpt,
		path:    path,
		secret:  secret,
		readers: readers,
		writer:  w,
		jobs:    make(chan *job, opts.MaxGroup),
		fast:    newInsertQueries("ROLLBACK"),
		safe:    newInsertQueries("ABORT"),
		maxJobs: opts.MaxGroup,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}, nil
}

// setUp creates the tables, applies the size bound and returns the
// backend-id secret, created with the tables.
func setUp(w *sqlite.Conn, maxBytes int64) ([]byte, error) {
	// Foreign keys are not enforced (SQLite's default): an append inserts
	// its store's row before the events, in the same transaction, and
	// checking every event row against stores would cost about a quarter
	// of an append, with a statement journal for every multi-row INSERT.
	if err := w.Exec(schema); err != nil {
		return nil, fmt.Errorf("create tables: %w", err)
	}
	// Commits never checkpoint: the checkpointer does, beside the writer.
	if err := w.Exec("PRAGMA wal_autocheckpoint = 0"); err != nil {
		return nil, fmt.Errorf("turn automatic checkpoints off: %w", err)
	}
	// The upsert writes even when the secret exists, so a file SQLite can
	// only read fails here rather than at the first push.
	var secret []byte
	err := w.Query(`INSERT INTO meta (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = value RETURNING value`,
		[]any{secretKey, syncserver.NewBackendIDSecret()}, func(r *sqlite.Row) error {
			secret = r.Bytes(0)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("write backend id secret: %w", err)
	}
	if maxBytes > 0 {
		pageSize, _, err := w.QueryInt64("PRAGMA page_size")
		if err != nil {
			return nil, err
		}
		pages := max(maxBytes/pageSize, 1)
		if err := w.Exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
			return nil, fmt.Errorf("set max_page_count: %w", err)
		}
	}
	return secret, nil
}

// Close waits for pending writes, stops the writer, closes the file and
// releases the lock.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		if s.stop != nil {
			close(s.stop)
		}
		s.mu.Unlock()
		if s.done != nil {
			<-s.done
		}
		var ckptErr error
		if s.ckpt != nil {
			ckptErr = s.ckpt.close()
		}
		err = errors.Join(ckptErr, s.readers.Close(), s.writer.Close(), s.lock.Release())
	})
	return err
}

// Path is the database file's path.
func (s *Store) Path() string { return s.path }

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

// storeRow finds the store's key, backend id and head.
func storeRow(conn *sqlite.Conn, storeID string) (key int64, backendID string, head int64, found bool, err error) {
	err = conn.Query("SELECT id, backend_id, head FROM stores WHERE store_id = ?", []any{storeID}, func(r *sqlite.Row) error {
		key, backendID, head, found = r.Int64(0), r.Text(1), r.Int64(2), true
		return nil
	})
	return key, backendID, head, found, err
}

func insertStore(conn *sqlite.Conn, storeID, backendID string, createdAt time.Time) (int64, error) {
	err := conn.Exec("INSERT INTO stores (store_id, backend_id, head, created_at) VALUES (?, ?, 0, ?)",
		storeID, backendID, syncserver.FormatCreatedAt(createdAt))
	return conn.LastInsertRowID(), err
}

// BackendID implements [syncserver.Storage]; it never writes.
func (s *Store) BackendID(ctx context.Context, storeID string) (string, error) {
	var id string
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		_, backendID, _, found, err := storeRow(conn, storeID)
		if err != nil || found {
			id = backendID
			return err
		}
		id, err = syncserver.BackendIDFor(s.secret, storeID)
		return err
	})
	return id, storageErr(fmt.Sprintf("backend id of store %q", storeID), err)
}

// CreateStore implements [syncserver.StoreCreator].
func (s *Store) CreateStore(ctx context.Context, storeID, backendID string) error {
	if backendID == "" {
		return fmt.Errorf("sqlitestore: create store %q: empty backend id", storeID)
	}
	err := s.write(ctx, func(tx *tx) error {
		_, existing, _, found, err := storeRow(tx.conn, storeID)
		switch {
		case err != nil:
			return err
		case found && existing != backendID:
			return refuse(&syncserver.BackendIDConflictError{StoreID: storeID, Existing: existing, Wanted: backendID})
		case found:
			return nil
		}
		_, err = insertStore(tx.conn, storeID, backendID, time.Now())
		return err
	})
	var conflict *syncserver.BackendIDConflictError
	if errors.As(err, &conflict) {
		return err
	}
	return storageErr(fmt.Sprintf("create store %q", storeID), err)
}

// Head implements [syncserver.Storage].
func (s *Store) Head(ctx context.Context, storeID string) (int64, error) {
	var head int64
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		var err error
		_, _, head, _, err = storeRow(conn, storeID)
		return err
	})
	return head, storageErr(fmt.Sprintf("head of store %q", storeID), err)
}

// Append implements [syncserver.Storage]. The head check, the creation of a
// missing store and the insert run in one savepoint of the writer's
// transaction.
func (s *Store) Append(ctx context.Context, storeID string, batch []syncproto.Event, createdAt time.Time) error {
	if len(batch) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *tx) error {
		conn := tx.conn
		key, _, head, found, err := storeRow(conn, storeID)
		if err != nil {
			return err
		}
		if head != batch[0].ParentSeqNum {
			return refuse(&syncproto.ServerAheadError{MinimumExpectedNum: head, ProvidedNum: batch[0].ParentSeqNum})
		}
		if !found {
			backendID, err := syncserver.BackendIDFor(s.secret, storeID)
			if err != nil {
				return err
			}
			if key, err = insertStore(conn, storeID, backendID, createdAt); err != nil {
				return fmt.Errorf("create store: %w", err)
			}
		}
		if err := tx.insert.insertEvents(conn, key, batch, createdAt.UnixMilli()); err != nil {
			return err
		}
		*tx.written += eventBytes(batch)
		return conn.Exec("UPDATE stores SET head = ? WHERE id = ?", batch[len(batch)-1].SeqNum, key)
	})
	var ahead *syncproto.ServerAheadError
	if errors.As(err, &ahead) {
		return err
	}
	return storageErr(fmt.Sprintf("append to store %q", storeID), err)
}

// Read implements [syncserver.Storage].
func (s *Store) Read(ctx context.Context, storeID string, after, upTo int64, limit int) ([]syncserver.StoredEvent, error) {
	var out []syncserver.StoredEvent
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return conn.Query(`SELECT e.seq_num, e.parent_seq_num, e.name, e.args, e.client_id, e.session_id, e.created_at_ms
			FROM events e JOIN stores s ON e.store = s.id
			WHERE s.store_id = ? AND e.seq_num > ? AND e.seq_num <= ?
			ORDER BY e.seq_num LIMIT ?`, []any{storeID, after, upTo, limit}, func(r *sqlite.Row) error {
			ev := syncserver.StoredEvent{
				Event: syncproto.Event{
					SeqNum:       r.Int64(0),
					ParentSeqNum: r.Int64(1),
					Name:         r.Text(2),
					ClientID:     r.Text(4),
					SessionID:    r.Text(5),
				},
				CreatedAt: time.UnixMilli(r.Int64(6)).UTC(),
			}
			if !r.IsNull(3) {
				ev.Args = []byte(r.Text(3))
			}
			out = append(out, ev)
			return nil
		})
	})
	return out, storageErr(fmt.Sprintf("read store %q", storeID), err)
}

// Count implements [syncserver.Storage].
func (s *Store) Count(ctx context.Context, storeID string, after, upTo int64) (int64, error) {
	var n int64
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		var err error
		n, _, err = conn.QueryInt64(`SELECT count(*) FROM events e JOIN stores s ON e.store = s.id
			WHERE s.store_id = ? AND e.seq_num > ? AND e.seq_num <= ?`, storeID, after, upTo)
		return err
	})
	return n, storageErr(fmt.Sprintf("count events of store %q", storeID), err)
}

// Stores implements [syncserver.StoreLister].
func (s *Store) Stores(ctx context.Context) ([]syncserver.StoreInfo, error) {
	var out []syncserver.StoreInfo
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return conn.Query("SELECT store_id, backend_id, head, created_at FROM stores ORDER BY store_id", nil, func(r *sqlite.Row) error {
			created, _ := time.Parse(time.RFC3339Nano, r.Text(3))
			out = append(out, syncserver.StoreInfo{StoreID: r.Text(0), BackendID: r.Text(1), Head: r.Int64(2), CreatedAt: created})
			return nil
		})
	})
	if err != nil {
		return nil, storageErr("list stores", err)
	}
	return out, nil
}
