// Package pgstore keeps the sync server's event logs in PostgreSQL, so that
// several server processes on one database behave as one server.
//
// The order of each store is enforced by PostgreSQL, not by the processes:
// an append updates the store's head row only where the head still equals
// the batch's first parentSeqNum, and inserts the events in the same
// statement, so of two concurrent pushes on one head exactly one wins (the
// other finds the head moved and gets *syncproto.ServerAheadError). Events
// have the primary key (store_id, seq_num) as a second guard. Each append
// also sends NOTIFY on a channel per schema; [Store.Watch] LISTENs on it, so
// every server process delivers every append to its live pulls.
//
// Appends of concurrent pushes (to different stores) are committed together
// in one transaction, so that one WAL flush serves many pushes; an append
// that fails, or finds its head moved, costs only its own push.
//
// A store's row is written by its first accepted append, in the same
// statement as its events, with the backend id derived from a secret kept in
// the schema (table livestore_meta), so every process on the schema reports
// the same id for a store that does not exist yet. [OpenReadOnly] opens a
// schema for tools, on connections that refuse writes.
package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// Options configure [Open]. The zero value is ready to use.
type Options struct {
	// Schema holds the tables (created if missing); default "public".
	// Servers that should share data use the same schema.
	Schema string
	// MaxGroup bounds the appends committed in one transaction; default
	// 64.
	MaxGroup int
}

// Store is a [syncserver.Storage] and [syncserver.Watcher] on PostgreSQL.
// It is safe for concurrent use; Close it when done.
type Store struct {
	pool     *pgxpool.Pool
	connStr  string
	schema   string
	secret   []byte // nil only for a read-only schema written before secrets were kept
	channel  string
	stores   string // qualified table names
	events   string
	meta     string
	appendQ  string
	createQ  string
	notifyQ  string
	headQ    string
	readQ    string
	countQ   string
	backendQ string
	insertQ  string
	w        *writer // nil when read-only
}

var (
	_ syncserver.Storage      = (*Store)(nil)
	_ syncserver.Watcher      = (*Store)(nil)
	_ syncserver.StoreCreator = (*Store)(nil)
)

// validSchema accepts lower-case identifiers of at most 48 bytes, so that the
// NOTIFY channel name derived from it stays within PostgreSQL's 63 bytes.
func validSchema(name string) bool {
	if name == "" || len(name) > 48 || name[0] >= '0' && name[0] <= '9' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Open connects to the database at connString (a PostgreSQL URL or DSN) and
// creates the schema and tables if needed. It fails, with a
// *syncserver.StorageError of kind StorageReadOnly, when it cannot write to
// them (a read-only server or transaction, or a user without the rights).
func Open(ctx context.Context, connString string, opts Options) (*Store, error) {
	if opts.Schema == "" {
		opts.Schema = "public"
	}
	if !validSchema(opts.Schema) {
		return nil, fmt.Errorf("pgstore: schema name %q: use lower-case letters, digits and _ (at most 48)", opts.Schema)
	}
	pool, err := pgxpool.New(ctx, connString)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect: %w", err)
	}
	s := newStore(pool, connString, opts.Schema)
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if opts.MaxGroup <= 0 {
		opts.MaxGroup = 64
	}
	s.startWriter(opts.MaxGroup)
	return s, nil
}

// OpenReadOnly connects to the database at connString for reading the
// stores in opts.Schema, for tools. It creates and changes nothing: its
// connections run with default_transaction_read_only, so writes fail with
// a *syncserver.StorageError of kind StorageReadOnly. It fails when the
// schema holds no sync storage.
func OpenReadOnly(ctx context.Context, connString string, opts Options) (*Store, error) {
	if opts.Schema == "" {
		opts.Schema = "public"
	}
	if !validSchema(opts.Schema) {
		return nil, fmt.Errorf("pgstore: schema name %q: use lower-case letters, digits and _ (at most 48)", opts.Schema)
	}
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect: %w", err)
	}
	s := newStore(pool, connString, opts.Schema)
	if err := s.checkTables(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// ErrNotStorage is matched (errors.Is) by the error of [OpenReadOnly] for a
// schema without the sync server's tables.
var ErrNotStorage = errors.New("not a livestore sync storage")

func (s *Store) checkTables(ctx context.Context) error {
	var stores, events, meta bool
	err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL, to_regclass($3) IS NOT NULL`,
		s.stores, s.events, s.meta).Scan(&stores, &events, &meta)
	if err != nil {
		return storageErr(fmt.Sprintf("open schema %q read-only", s.schema), err)
	}
	if !stores || !events {
		return fmt.Errorf("pgstore: schema %q is %w (no livestore_stores and livestore_events tables)", s.schema, ErrNotStorage)
	}
	if !meta {
		return nil
	}
	err = s.pool.QueryRow(ctx, `SELECT value FROM `+s.meta+` WHERE key = $1`, secretKey).Scan(&s.secret)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return storageErr(fmt.Sprintf("open schema %q read-only", s.schema), err)
	}
	return nil
}

func newStore(pool *pgxpool.Pool, connString, schema string) *Store {
	q := pgx.Identifier{schema}.Sanitize()
	s := &Store{
		pool:    pool,
		connStr: connString,
		schema:  schema,
		channel: "livestore_sync_" + schema,
		stores:  q + ".livestore_stores",
		events:  q + ".livestore_events",
		meta:    q + ".livestore_meta",
	}
	// The head moves only where it still equals the batch's parent; the
	// events are inserted only if it moved. Both happen in one statement.
	s.appendQ = `WITH moved AS (
		UPDATE ` + s.stores + ` SET head = $3 WHERE store_id = $1 AND head = $2 RETURNING store_id)
	INSERT INTO ` + s.events + ` (store_id, seq_num, parent_seq_num, name, args, client_id, session_id, created_at)
	SELECT moved.store_id, e.seq_num, e.parent_seq_num, e.name, e.args, e.client_id, e.session_id, $10
	FROM moved, unnest($4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[])
		AS e(seq_num, parent_seq_num, name, args, client_id, session_id)`
	// A missing store is created by its first batch, in one statement: the
	// row is inserted only if no one else created it meanwhile, the events
	// only if the row was.
	s.createQ = `WITH created AS (
		INSERT INTO ` + s.stores + ` (store_id, backend_id, head, created_at) SELECT $1, $11, $3, $10 WHERE $2::bigint = 0
		ON CONFLICT (store_id) DO NOTHING RETURNING store_id)
	INSERT INTO ` + s.events + ` (store_id, seq_num, parent_seq_num, name, args, client_id, session_id, created_at)
	SELECT created.store_id, e.seq_num, e.parent_seq_num, e.name, e.args, e.client_id, e.session_id, $10
	FROM created, unnest($4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[])
		AS e(seq_num, parent_seq_num, name, args, client_id, session_id)`
	// The notifications of a group's appends, in one transaction: each
	// store's only if its head is still the append's (else a later
	// append's notification says more).
	s.notifyQ = `SELECT pg_notify($1, n.note) FROM unnest($2::text[], $3::text[], $4::bigint[]) AS n(note, store_id, head)
		JOIN ` + s.stores + ` s ON s.store_id = n.store_id AND s.head = n.head`
	s.headQ = `SELECT head FROM ` + s.stores + ` WHERE store_id = $1`
	s.readQ = `SELECT seq_num, parent_seq_num, name, args, client_id, session_id, created_at FROM ` + s.events + `
		WHERE store_id = $1 AND seq_num > $2 AND seq_num <= $3 ORDER BY seq_num LIMIT $4`
	s.countQ = `SELECT count(*) FROM ` + s.events + ` WHERE store_id = $1 AND seq_num > $2 AND seq_num <= $3`
	s.backendQ = `SELECT backend_id FROM ` + s.stores + ` WHERE store_id = $1`
	s.insertQ = `INSERT INTO ` + s.stores + ` (store_id, backend_id) VALUES ($1, $2) ON CONFLICT (store_id) DO NOTHING`
	return s
}

// secretKey names the backend-id secret in the meta table.
const secretKey = "backend_id_secret"

func (s *Store) migrate(ctx context.Context) error {
	// Processes starting together must not race on CREATE ... IF NOT EXISTS.
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('livestore-go/pgstore/migrate'))`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
			CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{s.schema}.Sanitize()+`;
			CREATE TABLE IF NOT EXISTS `+s.stores+` (
				store_id   text PRIMARY KEY,
				backend_id text NOT NULL,
				head       bigint NOT NULL DEFAULT 0,
				created_at timestamptz NOT NULL DEFAULT now()
			);
			CREATE TABLE IF NOT EXISTS `+s.events+` (
				store_id       text NOT NULL,
				seq_num        bigint NOT NULL,
				parent_seq_num bigint NOT NULL,
				name           text NOT NULL,
				args           text,
				client_id      text NOT NULL,
				session_id     text NOT NULL,
				created_at     timestamptz NOT NULL,
				PRIMARY KEY (store_id, seq_num)
			);
			CREATE TABLE IF NOT EXISTS `+s.meta+` (
				key   text PRIMARY KEY,
				value bytea NOT NULL
			)`)
		if err != nil {
			return err
		}
		if err := dropEventsForeignKey(ctx, tx, s.schema); err != nil {
			return err
		}
		// Statements that write nothing but need every right appends need,
		// so that a user who may only read fails here, not at the first push.
		_, err = tx.Exec(ctx, `
			INSERT INTO `+s.stores+` (store_id, backend_id) SELECT '', '' WHERE false;
			UPDATE `+s.stores+` SET head = head WHERE false;
			INSERT INTO `+s.events+` SELECT * FROM `+s.events+` WHERE false`)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.meta+` (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`,
			secretKey, syncserver.NewBackendIDSecret()); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT value FROM `+s.meta+` WHERE key = $1`, secretKey).Scan(&s.secret)
	})
	if err != nil {
		op := fmt.Sprintf("open schema %q: create and write the tables", s.schema)
		if isCode(err, insufficientPrivilege) {
			return &syncserver.StorageError{Kind: syncserver.StorageReadOnly, Op: "pgstore: " + op, Err: err}
		}
		return storageErr(op, err)
	}
	return nil
}

// dropEventsForeignKey drops the foreign key from events to stores that
// schemas created by earlier versions have. Appends insert events only in
// the statement that moved (or created) their store's row, so the key
// guarded nothing, and its check of every inserted row cost about a third
// of PostgreSQL's time per appended event.
func dropEventsForeignKey(ctx context.Context, tx pgx.Tx, schema string) error {
	var names []string
	rows, err := tx.Query(ctx, `SELECT c.conname FROM pg_constraint c
		JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
		WHERE n.nspname = $1 AND t.relname = 'livestore_events' AND c.contype = 'f'`, schema)
	if err != nil {
		return err
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		names = append(names, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, name := range names {
		// A user who may write but does not own the table keeps the key:
		// appends are slower, not wrong.
		sp, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		q := `ALTER TABLE ` + pgx.Identifier{schema, "livestore_events"}.Sanitize() + ` DROP CONSTRAINT ` + pgx.Identifier{name}.Sanitize()
		if _, err := sp.Exec(ctx, q); err != nil {
			if !isCode(err, insufficientPrivilege) {
				_ = sp.Rollback(ctx)
				return fmt.Errorf("drop foreign key %s: %w", name, err)
			}
			if err := sp.Rollback(ctx); err != nil {
				return err
			}
			continue
		}
		if err := sp.Commit(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Close waits for the appends under way and closes the connection pool.
func (s *Store) Close() error {
	s.stopWriter()
	s.pool.Close()
	return nil
}

// BackendID implements [syncserver.Storage]; it never writes.
func (s *Store) BackendID(ctx context.Context, storeID string) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, s.backendQ, storeID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		id, err = syncserver.BackendIDFor(s.secret, storeID)
	}
	if err != nil {
		return "", storageErr(fmt.Sprintf("backend id of store %q", storeID), err)
	}
	return id, nil
}

// CreateStore implements [syncserver.StoreCreator].
func (s *Store) CreateStore(ctx context.Context, storeID, backendID string) error {
	if backendID == "" {
		return fmt.Errorf("pgstore: create store %q: empty backend id", storeID)
	}
	op := fmt.Sprintf("create store %q", storeID)
	if _, err := s.pool.Exec(ctx, s.insertQ, storeID, backendID); err != nil {
		return storageErr(op, err)
	}
	var existing string
	if err := s.pool.QueryRow(ctx, s.backendQ, storeID).Scan(&existing); err != nil {
		return storageErr(op, err)
	}
	if existing != backendID {
		return &syncserver.BackendIDConflictError{StoreID: storeID, Existing: existing, Wanted: backendID}
	}
	return nil
}

// Head implements [syncserver.Storage].
func (s *Store) Head(ctx context.Context, storeID string) (int64, error) {
	var head int64
	err := s.pool.QueryRow(ctx, s.headQ, storeID).Scan(&head)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, storageErr(fmt.Sprintf("head of store %q", storeID), err)
	}
	return head, nil
}

// Append implements [syncserver.Storage]: the conditional head update (or,
// for a batch based on e0, the creation of the missing store) and the
// insert, in one statement. Appends of concurrent pushes are committed
// together (see runGroup); the notification follows the commit.
func (s *Store) Append(ctx context.Context, storeID string, batch []syncproto.Event, createdAt time.Time) error {
	if len(batch) == 0 {
		return nil
	}
	j, err := s.newAppendJob(ctx, storeID, batch, createdAt)
	if err != nil {
		return err
	}
	if s.w == nil {
		return s.appendAlone(ctx, j, false)
	}
	return s.enqueue(j)
}

// Read implements [syncserver.Storage].
func (s *Store) Read(ctx context.Context, storeID string, after, upTo int64, limit int) ([]syncserver.StoredEvent, error) {
	op := fmt.Sprintf("read store %q", storeID)
	rows, err := s.pool.Query(ctx, s.readQ, storeID, after, upTo, limit)
	if err != nil {
		return nil, storageErr(op, err)
	}
	defer rows.Close()
	var out []syncserver.StoredEvent
	for rows.Next() {
		var ev syncserver.StoredEvent
		var args *string
		if err := rows.Scan(&ev.SeqNum, &ev.ParentSeqNum, &ev.Name, &args, &ev.ClientID, &ev.SessionID, &ev.CreatedAt); err != nil {
			return nil, storageErr(op, err)
		}
		if args != nil {
			ev.Args = json.RawMessage(*args)
		}
		ev.CreatedAt = ev.CreatedAt.UTC()
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, storageErr(op, err)
	}
	return out, nil
}

// Count implements [syncserver.Storage].
func (s *Store) Count(ctx context.Context, storeID string, after, upTo int64) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, s.countQ, storeID, after, upTo).Scan(&n); err != nil {
		return 0, storageErr(fmt.Sprintf("count events of store %q", storeID), err)
	}
	return n, nil
}

type notification struct {
	StoreID string `json:"s"`
	Head    int64  `json:"h"`
}

// Watch implements [syncserver.Watcher] with LISTEN on a dedicated
// connection. After LISTEN is in place it reports changed("", 0), since
// appends may have happened while no one listened. It returns when ctx ends
// or the connection fails (the server then calls it again).
func (s *Store) Watch(ctx context.Context, changed func(storeID string, head int64)) error {
	conn, err := pgx.Connect(ctx, s.connStr)
	if err != nil {
		return fmt.Errorf("pgstore: watch: connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return fmt.Errorf("pgstore: watch: listen: %w", err)
	}
	changed("", 0)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("pgstore: watch: %w", err)
		}
		var note notification
		if json.Unmarshal([]byte(n.Payload), &note) != nil || note.StoreID == "" {
			changed("", 0)
			continue
		}
		changed(note.StoreID, note.Head)
	}
}

// DropSchema removes the schema and everything in it. Tests use it to clean
// up; it is not used by the server.
func (s *Store) DropSchema(ctx context.Context) error {
	if s.schema == "public" {
		return errors.New("pgstore: refusing to drop schema public")
	}
	_, err := s.pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s.schema}.Sanitize()+" CASCADE")
	return err
}

// Stores implements [syncserver.StoreLister].
func (s *Store) Stores(ctx context.Context) ([]syncserver.StoreInfo, error) {
	rows, err := s.pool.Query(ctx, "SELECT store_id, backend_id, head, created_at FROM "+s.stores+" ORDER BY store_id")
	if err != nil {
		return nil, storageErr("list stores", err)
	}
	defer rows.Close()
	var out []syncserver.StoreInfo
	for rows.Next() {
		var si syncserver.StoreInfo
		if err := rows.Scan(&si.StoreID, &si.BackendID, &si.Head, &si.CreatedAt); err != nil {
			return nil, storageErr("list stores", err)
		}
		out = append(out, si)
	}
	if err := rows.Err(); err != nil {
		return nil, storageErr("list stores", err)
	}
	return out, nil
}
