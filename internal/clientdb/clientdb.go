// Package clientdb holds every SQL statement a client store runs on its own
// bookkeeping tables: the eventlog (`eventlog`), what the client knows of
// its sync server (`__livestore_sync_status`), the changesets that let a
// rebase roll pending events back (`__livestore_session_changeset`), and the
// records of the store's identity and of the definitions its state was built
// with (`__livestore_meta`, `__livestore_schema`,
// `__livestore_schema_event_defs`). The eventlog and sync-status tables have
// the layout of the reference LiveStore client, so that a JS client's
// eventlog reads the same way. It also holds the temporary triggers that
// record which rows of a state table a commit changed (rowwatch.go): they
// live in the connection's temp schema and write only a temporary table.
//
// The operations are named for what they do (append, scan, pending batch,
// head, sync status, changeset groups, reset, ...) so that the store's
// commit, rebase and sync code reads as algorithms over them. Each runs on
// the connection it is given, inside whatever transaction the caller holds;
// the package starts no transactions and takes no locks.
//
// What does not live here: the application's state tables and anything
// that writes them (materializers, rollback by changeset, rebuilds of
// state), and queries over state. Those belong to the root package.
package clientdb

import (
	"fmt"
	"time"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/sqlite"
)

// Names of the client's bookkeeping tables that tell a store's database
// from another SQLite file.
const (
	EventlogTable   = "eventlog"
	SyncStatusTable = "__livestore_sync_status"
	MetaTable       = "__livestore_meta"
)

// DB is the client's bookkeeping tables as seen through one connection. It
// is a small value: make one wherever a connection is at hand. A DB is not
// safe for concurrent use; its connection's owner serialises access.
type DB struct{ c *sqlite.Conn }

// On returns the bookkeeping tables of the database c is connected to.
func On(c *sqlite.Conn) DB { return DB{c: c} }

const ddl = `
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
CREATE TABLE IF NOT EXISTS eventlog (
  seqNumGlobal INTEGER NOT NULL,
  seqNumClient INTEGER NOT NULL,
  seqNumRebaseGeneration INTEGER NOT NULL,
  parentSeqNumGlobal INTEGER NOT NULL,
  parentSeqNumClient INTEGER NOT NULL,
  parentSeqNumRebaseGeneration INTEGER NOT NULL,
  name TEXT NOT NULL,
  argsJson TEXT NOT NULL,
  clientId TEXT NOT NULL,
  sessionId TEXT NOT NULL,
  schemaHash INTEGER NOT NULL,
  syncMetadataJson TEXT,
  PRIMARY KEY (seqNumGlobal, seqNumClient, seqNumRebaseGeneration)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS __livestore_sync_status (
  head INTEGER NOT NULL,
  backendId TEXT
);
`

// Create creates the bookkeeping tables that do not exist yet, and the
// sync status row (nothing confirmed, no backend) when there is none.
func (d DB) Create() error {
	if err := d.c.Exec(ddl); err != nil {
		return fmt.Errorf("create client tables: %w", err)
	}
	n, _, err := d.c.QueryInt64("SELECT count(*) FROM __livestore_sync_status")
	if err != nil {
		return fmt.Errorf("create client tables: %w", err)
	}
	if n == 0 {
		if err := d.c.Exec("INSERT INTO __livestore_sync_status (head, backendId) VALUES (0, NULL)"); err != nil {
			return fmt.Errorf("create client tables: %w", err)
		}
	}
	return nil
}

// Probe is what the database holds, seen from its table names.
type Probe struct {
	// Tables counts the database's tables, of any kind.
	Tables int64
	// Meta is set when the store's metadata table exists.
	Meta bool
	// Eventlog is set when both the eventlog and the sync status table
	// exist: the layout every LiveStore client writes.
	Eventlog bool
}

// Probe reads the database's table names. It is the first read of a file
// that may not be a store (or not a database: the error then satisfies
// sqlite.IsNotADatabase).
func (d DB) Probe() (Probe, error) {
	var p Probe
	var logs int
	err := d.c.Query("SELECT name FROM sqlite_master WHERE type = 'table'", nil, func(r *sqlite.Row) error {
		p.Tables++
		switch r.Text(0) {
		case MetaTable:
			p.Meta = true
		case EventlogTable, SyncStatusTable:
			logs++
		}
		return nil
	})
	if err != nil {
		return Probe{}, err
	}
	p.Eventlog = logs == 2
	return p, nil
}

// Meta is the store's identity as recorded in its metadata table.
type Meta struct {
	// ClientID identifies the client; empty before the first Open.
	ClientID string
	// FormatVersion is the version of the layout the store was written
	// in; empty before the first Open.
	FormatVersion string
}

// ReadMeta reads the store's recorded identity.
func (d DB) ReadMeta() (Meta, error) {
	var m Meta
	err := d.c.Query("SELECT key, value FROM __livestore_meta", nil, func(r *sqlite.Row) error {
		switch r.Text(0) {
		case "clientId":
			m.ClientID = r.Text(1)
		case "formatVersion":
			m.FormatVersion = r.Text(1)
		}
		return nil
	})
	if err != nil {
		return Meta{}, fmt.Errorf("read store metadata: %w", err)
	}
	return m, nil
}

// WriteMeta records the store's identity.
func (d DB) WriteMeta(m Meta) error {
	err := d.c.Exec("INSERT OR REPLACE INTO __livestore_meta (key, value) VALUES ('clientId', ?), ('formatVersion', ?)",
		m.ClientID, m.FormatVersion)
	if err != nil {
		return fmt.Errorf("write store metadata: %w", err)
	}
	return nil
}

// ReadSyncStatus reads what the client knows of its sync server.
func (d DB) ReadSyncStatus() (eventlog.SyncStatus, error) {
	var s eventlog.SyncStatus
	err := d.c.Query("SELECT head, backendId FROM __livestore_sync_status LIMIT 1", nil, func(r *sqlite.Row) error {
		s.Head = r.Int64(0)
		if !r.IsNull(1) {
			s.BackendID = r.Text(1)
		}
		return nil
	})
	if err != nil {
		return eventlog.SyncStatus{}, fmt.Errorf("read sync status: %w", err)
	}
	return s, nil
}

// WriteSyncStatus records s; an empty BackendID is stored as NULL.
func (d DB) WriteSyncStatus(s eventlog.SyncStatus) error {
	var backend any
	if s.BackendID != "" {
		backend = s.BackendID
	}
	if err := d.c.Exec("UPDATE __livestore_sync_status SET head = ?, backendId = ?", s.Head, backend); err != nil {
		return fmt.Errorf("write sync status: %w", err)
	}
	return nil
}

// TableHashes reads the state tables recorded as built, each with the hash
// of the definition it was built from. It includes [StaleMarker] when state
// was marked stale.
func (d DB) TableHashes() (map[string]int64, error) {
	out := map[string]int64{}
	err := d.c.Query("SELECT tableName, schemaHash FROM __livestore_schema", nil, func(r *sqlite.Row) error {
		out[r.Text(0)] = r.Int64(1)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read table hashes: %w", err)
	}
	return out, nil
}

// ForgetState forgets everything recorded about the state: the tables and
// event definitions it was built from and the changesets of its pending
// events. It precedes a rebuild of state, which records them anew.
func (d DB) ForgetState() error {
	err := d.c.Exec("DELETE FROM __livestore_schema; DELETE FROM __livestore_schema_event_defs; DELETE FROM __livestore_session_changeset;")
	if err != nil {
		return fmt.Errorf("forget state records: %w", err)
	}
	return nil
}

// RecordTable records that state table name was built from the definition
// with the given hash, at the given time.
func (d DB) RecordTable(name string, hash int64, at time.Time) error {
	err := d.c.Exec("INSERT INTO __livestore_schema (tableName, schemaHash, updatedAt) VALUES (?, ?, ?)",
		name, hash, recordTime(at))
	if err != nil {
		return fmt.Errorf("record table %s: %w", name, err)
	}
	return nil
}

// RecordEventDef records that state was built with the definition of event
// name that has the given hash, at the given time.
func (d DB) RecordEventDef(name string, hash int64, at time.Time) error {
	err := d.c.Exec("INSERT INTO __livestore_schema_event_defs (eventName, schemaHash, updatedAt) VALUES (?, ?, ?)",
		name, hash, recordTime(at))
	if err != nil {
		return fmt.Errorf("record event %s: %w", name, err)
	}
	return nil
}

// StaleMarker is the table name MarkStateStale records: no table of that
// name exists, and the rebuild it causes forgets it.
const StaleMarker = "__livestore_restored"

// MarkStateStale makes the next Open of the store rebuild all state from
// the eventlog, whatever its schema: the recorded table hashes are zeroed
// and [StaleMarker] is recorded, so that even a schema without tables
// differs from what is recorded.
func (d DB) MarkStateStale(at time.Time) error {
	if err := d.c.Exec("UPDATE __livestore_schema SET schemaHash = 0"); err != nil {
		return fmt.Errorf("mark state for rebuild: %w", err)
	}
	err := d.c.Exec("INSERT OR REPLACE INTO __livestore_schema (tableName, schemaHash, updatedAt) VALUES (?, 0, ?)",
		StaleMarker, recordTime(at))
	if err != nil {
		return fmt.Errorf("mark state for rebuild: %w", err)
	}
	return nil
}

func recordTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
