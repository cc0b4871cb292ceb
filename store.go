package livestore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/sqlite"
)

// Options configures Open. The zero value opens an in-memory store.
type Options struct {
	// Dir is the client directory holding the store's database. Empty means
	// in memory: nothing survives Close. One process at a time may open a
	// directory; a second Open fails with a *LockedError.
	Dir string
	// StoreID names the store; sync uses it. Empty means "default".
	StoreID string
	// Logger receives warnings (e.g. skipped unknown events). Nil is silent.
	Logger *slog.Logger
	// ReadConns is the size of the read connection pool. Zero means 4.
	ReadConns int
	// OnRematerialize, when set, is called while state is rebuilt from the
	// eventlog (after a table definition changed, or on Rematerialize) with
	// the number of events applied so far and the total.
	OnRematerialize func(done, total int64)
	// Durability chooses what a returned Commit survives; the zero value
	// survives power loss.
	Durability Durability
	// Sync, when set, syncs the store's synced events with a sync server in
	// the background. Without it the store is local only.
	Sync *SyncOptions
}

// Durability is the guarantee a returned Commit gives.
type Durability int

const (
	// DurabilityFull flushes every commit to stable storage (fsync) before
	// Commit returns: it survives process crashes, OS crashes and power
	// loss. Commit latency is bounded below by the disk's flush latency.
	DurabilityFull Durability = iota
	// DurabilityProcess writes every commit to the operating system before
	// Commit returns, without waiting for the disk: it survives the process
	// being killed, but the newest commits may be lost if the machine loses
	// power or the OS crashes. The store stays consistent either way.
	DurabilityProcess
)

// DBFileName is the name of the database file in a store directory. It holds
// the eventlog and the materialized state, so that one SQLite transaction
// covers both.
const DBFileName = "store.db"

// Store is one open store: its eventlog, its state, and the machinery that
// keeps them in step. All methods are safe for concurrent use. Commits are
// serialised by one write connection; queries run on a pool of read
// connections and never block commits.
type Store struct {
	schema    *Schema
	opts      Options
	log       *slog.Logger
	storeID   string
	clientID  string
	sessionID string
	lock      *dirLock

	// wsem is the write lock: a one-slot semaphore so waiting honours ctx.
	wsem chan struct{}
	// Guarded by wsem:
	w        *sqlite.Conn
	head     eventlog.SeqNum
	sync     eventlog.SyncStatus
	closed   bool
	readers  chan *sqlite.Conn // nil for in-memory stores: reads use w
	nreaders int

	done      chan struct{} // closed by Close
	closeOnce sync.Once
	closeErr  error

	graph    *graph
	syncer   *syncer // nil without sync
	decoders decoderCache
	access   sync.Map // SQL text → sqlite.Access
	tables   []string // state table names, for session capture
}

// Open opens (or creates) the store in opts.Dir, or an in-memory store when
// Dir is empty. When the schema's table definitions differ from the ones the
// state was built with, state is rebuilt from the eventlog before Open
// returns.
func Open(ctx context.Context, schema *Schema, opts Options) (_ *Store, err error) {
	if schema == nil {
		return nil, errors.New("livestore: open: nil schema")
	}
	s := &Store{
		schema:  schema,
		opts:    opts,
		log:     opts.Logger,
		storeID: opts.StoreID,
		wsem:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		tables:  schema.tableNames(),
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.storeID == "" {
		s.storeID = "default"
	}
	if s.sessionID, err = randomID(6); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.closeConns()
		}
	}()
	path := ":memory:"
	if opts.Dir != "" {
		if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("livestore: open: %w", err)
		}
		if s.lock, err = lockDir(opts.Dir); err != nil {
			return nil, err
		}
		path = filepath.Join(opts.Dir, DBFileName)
	}
	wopts := sqlite.OpenOptions{}
	if opts.Durability == DurabilityProcess {
		wopts.Synchronous = "NORMAL"
	}
	if s.w, err = sqlite.Open(path, wopts); err != nil {
		if sqlite.IsNotADatabase(err) {
			return nil, fmt.Errorf("livestore: open %s: %w: %v", path, ErrNotAStore, err)
		}
		return nil, fmt.Errorf("livestore: open %s: %w", path, err)
	}
	if err := s.init(ctx); err != nil {
		return nil, fmt.Errorf("livestore: open %s: %w", path, err)
	}
	if opts.Dir != "" {
		n := opts.ReadConns
		if n <= 0 {
			n = 4
		}
		s.readers = make(chan *sqlite.Conn, n)
		for i := 0; i < n; i++ {
			c, err := sqlite.Open(path, sqlite.OpenOptions{})
			if err != nil {
				return nil, fmt.Errorf("livestore: open reader: %w", err)
			}
			s.nreaders++
			s.readers <- c
			if err := c.Exec("PRAGMA query_only=1"); err != nil {
				return nil, fmt.Errorf("livestore: open reader: %w", err)
			}
		}
	}
	s.graph = newGraph(s)
	if opts.Sync != nil {
		if opts.Sync.Backend == nil {
			s.graph.close()
			return nil, errors.New("livestore: open: SyncOptions without Backend")
		}
		s.startSync(*opts.Sync)
	}
	return s, nil
}

const systemDDL = `
CREATE TABLE IF NOT EXISTS __livestore_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS __livestore_schema (tableName TEXT PRIMARY KEY, schemaHash INTEGER NOT NULL, updatedAt TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS __livestore_schema_event_defs (eventName TEXT PRIMARY KEY, schemaHash INTEGER NOT NULL, updatedAt TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS __livestore_session_changeset (
  seqNumGlobal INTEGER NOT NULL,
  seqNumClient INTEGER NOT NULL,
  seqNumRebaseGeneration INTEGER NOT NULL,
  changeset BLOB,
  debug TEXT,
  PRIMARY KEY (seqNumGlobal, seqNumClient, seqNumRebaseGeneration)
) WITHOUT ROWID;
`

// formatVersion is stored in __livestore_meta; a store written by an
// incompatible future version is refused rather than misread.
const formatVersion = "1"

func (s *Store) init(ctx context.Context) error {
	// Reading the schema first distinguishes "not a database" from other
	// failures with a clear error.
	var tables int64
	var hasMeta bool
	err := s.w.Query("SELECT name FROM sqlite_master WHERE type = 'table'", nil, func(r *sqlite.Row) error {
		tables++
		if r.Text(0) == "__livestore_meta" {
			hasMeta = true
		}
		return nil
	})
	if err != nil {
		if sqlite.IsNotADatabase(err) {
			return fmt.Errorf("%w: %v", ErrNotAStore, err)
		}
		return err
	}
	if tables > 0 && !hasMeta {
		return fmt.Errorf("%w: the database has tables but no livestore metadata", ErrNotAStore)
	}
	if err := s.w.Begin(); err != nil {
		return err
	}
	err = s.initTx()
	if err != nil {
		s.w.Rollback()
		return err
	}
	if err := s.w.Commit(); err != nil {
		return err
	}
	stale, err := s.stateIsStale()
	if err != nil {
		return err
	}
	if !stale && s.opts.Sync != nil {
		// Events committed while the store had no sync were stored without
		// changesets; a rebuild records them so a rebase can roll them back.
		pending, _, err := s.w.QueryInt64("SELECT count(*) FROM eventlog WHERE seqNumGlobal > ?", s.sync.Head)
		if err != nil {
			return err
		}
		groups, _, err := s.w.QueryInt64("SELECT count(*) FROM __livestore_session_changeset")
		if err != nil {
			return err
		}
		stale = pending > 0 && groups == 0
	}
	if stale {
		if err := s.w.Begin(); err != nil {
			return err
		}
		if err := s.rebuildState(ctx); err != nil {
			s.w.Rollback()
			return fmt.Errorf("rebuild state: %w", err)
		}
		if err := s.w.Commit(); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) initTx() error {
	if err := s.w.Exec(systemDDL); err != nil {
		return err
	}
	if err := eventlog.CreateTables(s.w); err != nil {
		return err
	}
	meta := map[string]string{}
	err := s.w.Query("SELECT key, value FROM __livestore_meta", nil, func(r *sqlite.Row) error {
		meta[r.Text(0)] = r.Text(1)
		return nil
	})
	if err != nil {
		return err
	}
	if v, ok := meta["formatVersion"]; ok && v != formatVersion {
		return fmt.Errorf("%w: format version %s (this build reads %s)", ErrNotAStore, v, formatVersion)
	}
	s.clientID = meta["clientId"]
	if s.clientID == "" {
		if s.clientID, err = randomID(6); err != nil {
			return err
		}
		if err := s.w.Exec("INSERT OR REPLACE INTO __livestore_meta (key, value) VALUES ('clientId', ?), ('formatVersion', ?)", s.clientID, formatVersion); err != nil {
			return err
		}
	}
	if s.head, err = eventlog.Head(s.w); err != nil {
		return err
	}
	if s.sync, err = eventlog.ReadSyncStatus(s.w); err != nil {
		return err
	}
	return nil
}

// stateIsStale reports whether the stored table hashes differ from the
// schema's.
func (s *Store) stateIsStale() (bool, error) {
	stored := map[string]int64{}
	err := s.w.Query("SELECT tableName, schemaHash FROM __livestore_schema", nil, func(r *sqlite.Row) error {
		stored[r.Text(0)] = r.Int64(1)
		return nil
	})
	if err != nil {
		return false, err
	}
	if len(stored) != len(s.schema.tables) {
		return true, nil
	}
	for _, t := range s.schema.tables {
		if h, ok := stored[t.name]; !ok || h != t.hash() {
			return true, nil
		}
	}
	return false, nil
}

// rebuildState drops all state and replays the eventlog, inside the caller's
// transaction.
func (s *Store) rebuildState(ctx context.Context) error {
	var old []string
	err := s.w.Query("SELECT tableName FROM __livestore_schema", nil, func(r *sqlite.Row) error {
		old = append(old, r.Text(0))
		return nil
	})
	if err != nil {
		return err
	}
	for _, t := range s.schema.tables {
		old = append(old, t.name)
	}
	for _, name := range old {
		if err := s.w.Exec("DROP TABLE IF EXISTS " + quoteIdent(name)); err != nil {
			return err
		}
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if err := s.w.Exec("DELETE FROM __livestore_schema; DELETE FROM __livestore_schema_event_defs; DELETE FROM __livestore_session_changeset;"); err != nil {
		return err
	}
	for _, t := range s.schema.tables {
		for _, stmt := range t.ddl() {
			if err := s.w.Exec(stmt); err != nil {
				return fmt.Errorf("create table %s: %w", t.name, err)
			}
		}
		if err := s.w.Exec("INSERT INTO __livestore_schema (tableName, schemaHash, updatedAt) VALUES (?, ?, ?)", t.name, t.hash(), now); err != nil {
			return err
		}
	}
	for _, name := range s.schema.eventNames {
		if err := s.w.Exec("INSERT INTO __livestore_schema_event_defs (eventName, schemaHash, updatedAt) VALUES (?, ?, ?)", name, s.schema.events[name].hash(), now); err != nil {
			return err
		}
	}
	total, err := eventlog.Count(s.w)
	if err != nil {
		return err
	}
	var done int64
	report := s.opts.OnRematerialize
	if report != nil {
		report(0, total)
	}
	confirmed := eventlog.SeqNum{Global: s.sync.Head}
	// Confirmed events are replayed without capturing changes; the pending
	// tail (which a rebase may roll back) is captured as one group.
	var pending []eventlog.Event
	err = eventlog.Scan(s.w, eventlog.Root, 0, func(ev eventlog.Event) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if ev.SeqNum.Compare(confirmed) > 0 {
			pending = append(pending, ev)
			return nil
		}
		if err := s.materialize(&ev, nil, nil); err != nil {
			return err
		}
		done++
		if report != nil && done%1000 == 0 {
			report(done, total)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.materializeGroup(pending, false, s.keepChangesets(), nil); err != nil {
		return err
	}
	if report != nil {
		report(total, total)
	}
	return nil
}

// Rematerialize drops all state and rebuilds it from the eventlog, in one
// transaction: readers see the old state until it commits.
func (s *Store) Rematerialize(ctx context.Context) error {
	if err := s.acquireWrite(ctx); err != nil {
		return err
	}
	defer s.releaseWrite()
	if err := s.w.Begin(); err != nil {
		return err
	}
	if err := s.rebuildState(ctx); err != nil {
		s.w.Rollback()
		return fmt.Errorf("livestore: rematerialize: %w", err)
	}
	if err := s.w.Commit(); err != nil {
		return fmt.Errorf("livestore: rematerialize: %w", err)
	}
	s.afterWrite(allTables)
	return nil
}

// acquireWrite takes the write lock, honouring ctx, and fails on a closed
// store.
func (s *Store) acquireWrite(ctx context.Context) error {
	select {
	case s.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrStoreClosed
	}
	if s.closed {
		<-s.wsem
		return ErrStoreClosed
	}
	return nil
}

func (s *Store) releaseWrite() { <-s.wsem }

// StoreID is the store's id.
func (s *Store) StoreID() string { return s.storeID }

// ClientID identifies this client; it is created with the store's data and
// kept across Opens.
func (s *Store) ClientID() string { return s.clientID }

// SessionID identifies this Open of the store.
func (s *Store) SessionID() string { return s.sessionID }

// Schema is the store's schema.
func (s *Store) Schema() *Schema { return s.schema }

// Head is the sequence number of the newest event in the local eventlog.
func (s *Store) Head(ctx context.Context) (eventlog.SeqNum, error) {
	if err := s.acquireWrite(ctx); err != nil {
		return eventlog.SeqNum{}, err
	}
	defer s.releaseWrite()
	return s.head, nil
}

// Close waits for a commit in progress, then closes the store. Operations
// after Close fail with ErrStoreClosed. Close is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.syncer != nil {
			s.syncer.stop()
		}
		s.graph.close()
		s.wsem <- struct{}{}
		s.closed = true
		close(s.done)
		<-s.wsem
		s.closeErr = s.closeConns()
	})
	return s.closeErr
}

func (s *Store) closeConns() error {
	var errs []error
	for i := 0; i < s.nreaders; i++ {
		c := <-s.readers
		errs = append(errs, c.Close())
	}
	s.nreaders = 0
	if s.w != nil {
		errs = append(errs, s.w.Close())
		s.w = nil
	}
	if s.lock != nil {
		errs = append(errs, s.lock.unlock())
		s.lock = nil
	}
	return errors.Join(errs...)
}

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-"

// randomID returns an n-character id over the URL-safe alphabet, like the
// reference's nanoid.
func randomID(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	for i := range b {
		b[i] = idAlphabet[b[i]&63]
	}
	return string(b), nil
}
