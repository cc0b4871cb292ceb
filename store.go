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
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/clientdb"
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
	// TracerProvider, when set, receives the store's spans: livestore.open
	// (with livestore.boot), livestore.commit (with a livestore.materialize
	// per event), livestore.query for each run of a reactive query, and
	// livestore.sync.push, .pull and .rebase. A push is a child of the
	// commit that made its first event, and its span context travels to
	// the sync server in the request. Nil means no tracing, at no cost.
	TracerProvider trace.TracerProvider
	// MeterProvider, when set, receives the store's metrics, each carrying
	// the store id: livestore.commit.duration (seconds),
	// livestore.query.runs, and for a synced store livestore.sync.pending
	// (events) and livestore.sync.rebases. Nil means no metrics.
	MeterProvider metric.MeterProvider
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
//
// Lock order. A goroutine that holds one of these locks takes only locks
// further down the list:
//
//  1. graph.mu: a refresh pass of the reactive graph. It reads state on a
//     read connection or, in an in-memory store, on the write connection
//     under wsem.
//  2. wsem, the write lock: the write connection and what mirrors the
//     database (head, sync status).
//  3. syncer.mu: the sync processor's connection state, read by SyncStatus
//     under wsem.
//  4. tel.parents.mu: the commit spans of pending events (a leaf, taken
//     under wsem by commits and rebases and alone by pushes).
//
// Beside that chain, graph.pendMu, graph.liveMu and graph.obsMu (and an
// observer's mu after obsMu) are leaves: they are taken under graph.mu or under wsem (the
// sync processor announces the writes of a pull before it releases wsem),
// and nothing is taken under them; so is commits.mu, the queue of Commit
// calls (taken alone, or under wsem by a group's leader). A read connection
// taken from readers is held for one read and no lock is taken while it is
// held.
type Store struct {
	// Set by Open and never changed.
	schema    *Schema
	opts      Options
	log       *slog.Logger
	storeID   string
	clientID  string
	sessionID string
	tables    []string // state table names, for session capture
	graph     *graph
	syncer    *syncer // nil without sync
	tel       *instruments
	// readers is the pool of read connections (nil for in-memory stores:
	// reads use w under wsem). A connection is owned by whoever took it
	// from the channel until it is put back.
	readers chan *sqlite.Conn

	// wsem is the write lock: a one-slot semaphore so waiting honours ctx.
	wsem chan struct{}
	// Guarded by wsem; once closed is set nobody acquires wsem again, and
	// Close closes w without it.
	w    *sqlite.Conn
	db   clientdb.DB // the bookkeeping tables, on w
	head eventlog.SeqNum
	sync eventlog.SyncStatus // as recorded in the database
	// watched are the tables whose row triggers are installed on w, when
	// watchKnown (keys.go); a rebuild drops them with their tables.
	watched    []string
	watchKnown bool
	closed     bool

	// Used by Open and Close only (closeConns).
	nreaders int // read connections to close
	lock     *dirLock

	done      chan struct{} // closed by Close
	closeOnce sync.Once
	closeErr  error // set inside closeOnce

	// Safe for concurrent use on their own.
	commits  commitQueue // Commit calls waiting for a group (groupcommit.go)
	decoders decoderCache
	access   sync.Map // SQL text → sqlite.Access
}

// Open opens (or creates) the store in opts.Dir, or an in-memory store when
// Dir is empty. When the schema's table definitions differ from the ones the
// state was built with, state is rebuilt from the eventlog before Open
// returns.
func Open(ctx context.Context, schema *Schema, opts Options) (_ *Store, err error) {
	if schema == nil {
		return nil, errors.New("livestore: open: nil schema")
	}
	storeID := opts.StoreID
	if storeID == "" {
		storeID = "default"
	}
	tel, err := newInstruments(opts, storeID)
	if err != nil {
		return nil, err
	}
	ctx, span := tel.start(ctx, spanOpen)
	defer func() {
		if err != nil {
			tel.close()
		}
		endSpan(span, err)
	}()
	s := &Store{
		schema:  schema,
		opts:    opts,
		log:     opts.Logger,
		storeID: storeID,
		tel:     tel,
		wsem:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		tables:  schema.tableNames(),
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.sessionID, err = randomID(6); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.closeConns()
		}
	}()
	path, err := s.openWriter(ctx)
	if err != nil {
		return nil, err
	}
	if opts.Dir != "" {
		if err := s.openReaders(path); err != nil {
			return nil, err
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

// formatVersion is stored in __livestore_meta; a store written by an
// incompatible future version is refused rather than misread.
const formatVersion = "1"

// openWriter locks the store directory (when there is one), opens the write
// connection on its database and brings the database up to date (init). It
// returns the database's path.
func (s *Store) openWriter(ctx context.Context) (string, error) {
	path := ":memory:"
	if dir := s.opts.Dir; dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("livestore: open: %w", err)
		}
		lock, err := lockDir(dir)
		if err != nil {
			return "", err
		}
		s.lock = lock
		path = filepath.Join(dir, DBFileName)
	}
	wopts := sqlite.OpenOptions{Capture: true}
	if s.opts.Durability == DurabilityProcess {
		wopts.Synchronous = "NORMAL"
	}
	w, err := sqlite.Open(path, wopts)
	if err != nil {
		if sqlite.IsNotADatabase(err) {
			return "", fmt.Errorf("livestore: open %s: %w: %v", path, ErrNotAStore, err)
		}
		return "", fmt.Errorf("livestore: open %s: %w", path, err)
	}
	s.w, s.db = w, clientdb.On(w)
	if err := s.init(ctx); err != nil {
		return "", fmt.Errorf("livestore: open %s: %w", path, err)
	}
	return path, nil
}

// openReaders fills the pool of read connections on the database at path.
func (s *Store) openReaders(path string) error {
	n := s.opts.ReadConns
	if n <= 0 {
		n = 4
	}
	s.readers = make(chan *sqlite.Conn, n)
	for i := 0; i < n; i++ {
		c, err := sqlite.Open(path, sqlite.OpenOptions{})
		if err != nil {
			return fmt.Errorf("livestore: open reader: %w", err)
		}
		s.nreaders++
		s.readers <- c
		if err := c.Exec("PRAGMA query_only=1"); err != nil {
			return fmt.Errorf("livestore: open reader: %w", err)
		}
	}
	return nil
}

func (s *Store) init(ctx context.Context) (err error) {
	ctx, span := s.tel.start(ctx, spanBoot)
	defer func() { endSpan(span, err) }()
	// Reading the schema first distinguishes "not a database" from other
	// failures with a clear error.
	probe, err := s.db.Probe()
	if err != nil {
		if sqlite.IsNotADatabase(err) {
			return fmt.Errorf("%w: %v", ErrNotAStore, err)
		}
		return err
	}
	if probe.Tables > 0 && !probe.Meta {
		return fmt.Errorf("%w: the database has tables but no livestore metadata", ErrNotAStore)
	}
	if err := s.w.Begin(); err != nil {
		return err
	}
	if err := s.initTx(); err != nil {
		s.w.Rollback()
		return err
	}
	if err := s.w.Commit(); err != nil {
		return err
	}
	stale, err := s.stateIsStale()
	if err != nil || !stale {
		s.booted(span, false)
		return err
	}
	if err := s.w.Begin(); err != nil {
		return err
	}
	if err := s.rebuildState(ctx); err != nil {
		s.w.Rollback()
		return fmt.Errorf("rebuild state: %w", err)
	}
	s.booted(span, true)
	return s.w.Commit()
}

// initTx creates the bookkeeping tables and the client's identity when
// they are missing, and reads the head and sync status, inside the
// caller's transaction.
func (s *Store) initTx() error {
	if err := s.db.Create(); err != nil {
		return err
	}
	meta, err := s.db.ReadMeta()
	if err != nil {
		return err
	}
	if meta.FormatVersion != "" && meta.FormatVersion != formatVersion {
		return fmt.Errorf("%w: format version %s (this build reads %s)", ErrNotAStore, meta.FormatVersion, formatVersion)
	}
	s.clientID = meta.ClientID
	if s.clientID == "" {
		if s.clientID, err = randomID(6); err != nil {
			return err
		}
		if err := s.db.WriteMeta(clientdb.Meta{ClientID: s.clientID, FormatVersion: formatVersion}); err != nil {
			return err
		}
	}
	if s.head, err = s.db.Head(); err != nil {
		return err
	}
	if s.sync, err = s.db.ReadSyncStatus(); err != nil {
		return err
	}
	return nil
}

// stateIsStale reports whether state must be rebuilt: when the recorded
// table hashes differ from the schema's, or when a synced store holds
// pending events without the changesets a rebase needs.
func (s *Store) stateIsStale() (bool, error) {
	stored, err := s.db.TableHashes()
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
	if s.opts.Sync == nil {
		return false, nil
	}
	// Events committed while the store had no sync were stored without
	// changesets; a rebuild records them so a rebase can roll them back.
	pending, err := s.db.CountAfter(s.sync.Head)
	if err != nil || pending == 0 {
		return false, err
	}
	groups, err := s.db.HasChangesets()
	return !groups, err
}

// rebuildState drops all state and replays the eventlog, inside the caller's
// transaction.
func (s *Store) rebuildState(ctx context.Context) error {
	if err := s.recreateTables(); err != nil {
		return err
	}
	return s.replayLog(ctx)
}

// recreateTables drops the state tables (those recorded and the schema's)
// and creates the schema's empty, recording their definitions.
func (s *Store) recreateTables() error {
	recorded, err := s.db.TableHashes()
	if err != nil {
		return err
	}
	old := make([]string, 0, len(recorded)+len(s.schema.tables))
	for name := range recorded {
		old = append(old, name)
	}
	sort.Strings(old)
	for _, t := range s.schema.tables {
		old = append(old, t.name)
	}
	for _, name := range old {
		if err := s.w.Exec("DROP TABLE IF EXISTS " + quoteIdent(name)); err != nil {
			return err
		}
	}
	s.watchKnown = false // dropping a table drops its row triggers
	if err := s.db.ForgetState(); err != nil {
		return err
	}
	now := time.Now()
	for _, t := range s.schema.tables {
		for _, stmt := range t.ddl() {
			if err := s.w.Exec(stmt); err != nil {
				return fmt.Errorf("create table %s: %w", t.name, err)
			}
		}
		if err := s.db.RecordTable(t.name, t.hash(), now); err != nil {
			return err
		}
	}
	for _, name := range s.schema.eventNames {
		if err := s.db.RecordEventDef(name, s.schema.events[name].hash(), now); err != nil {
			return err
		}
	}
	return nil
}

// replayLog materializes the whole eventlog into empty state, reporting
// progress to Options.OnRematerialize. Confirmed events are replayed
// without capturing changes; the pending tail, which a rebase may roll
// back, is captured as one group.
func (s *Store) replayLog(ctx context.Context) error {
	total, err := s.db.Count()
	if err != nil {
		return err
	}
	report := s.opts.OnRematerialize
	if report == nil {
		report = func(done, total int64) {}
	}
	report(0, total)
	confirmed := eventlog.SeqNum{Global: s.sync.Head}
	var pending []eventlog.Event
	var done int64
	err = s.db.Scan(eventlog.Root, 0, func(ev eventlog.Event) error {
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
		if done%1000 == 0 {
			report(done, total)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// A replay gets no span per event, its pending tail included.
	if err := s.materializeGroup(s.tel.untraced(ctx), pending, nil, s.undoMode(), nil); err != nil {
		return err
	}
	report(total, total)
	return nil
}

// Rematerialize drops all state and rebuilds it from the eventlog, in one
// transaction: readers see the old state until it commits.
func (s *Store) Rematerialize(ctx context.Context) (err error) {
	ctx, span := s.tel.start(ctx, spanRematerialize)
	defer func() { endSpan(span, err) }()
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
		s.closeErr = errors.Join(s.closeConns(), s.tel.close())
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
