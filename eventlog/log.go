package eventlog

import (
	"encoding/json"
	"fmt"

	"github.com/livestore-go/livestore/internal/sqlite"
)

// Event is one event as the client eventlog stores it.
type Event struct {
	SeqNum       SeqNum          `json:"seqNum"`
	ParentSeqNum SeqNum          `json:"parentSeqNum"`
	Name         string          `json:"name"`
	Args         json.RawMessage `json:"args"`
	ClientID     string          `json:"clientId"`
	SessionID    string          `json:"sessionId"`
	// SchemaHash identifies the definition of the event when it was committed.
	SchemaHash int64 `json:"schemaHash,omitempty"`
	// SyncMetadata is what the sync server attached (e.g. createdAt), or nil.
	SyncMetadata json.RawMessage `json:"syncMetadata,omitempty"`
}

// Table names of the client eventlog.
const (
	Table           = "eventlog"
	SyncStatusTable = "__livestore_sync_status"
)

const ddl = `
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

// CreateTables creates the eventlog tables if they do not exist yet.
func CreateTables(c *sqlite.Conn) error {
	if err := c.Exec(ddl); err != nil {
		return fmt.Errorf("create eventlog tables: %w", err)
	}
	n, _, err := c.QueryInt64("SELECT count(*) FROM __livestore_sync_status")
	if err != nil {
		return fmt.Errorf("create eventlog tables: %w", err)
	}
	if n == 0 {
		if err := c.Exec("INSERT INTO __livestore_sync_status (head, backendId) VALUES (0, NULL)"); err != nil {
			return fmt.Errorf("create eventlog tables: %w", err)
		}
	}
	return nil
}

// Append inserts e. Appending a sequence number that exists fails.
func Append(c *sqlite.Conn, e *Event) error {
	var meta any
	if len(e.SyncMetadata) > 0 {
		meta = string(e.SyncMetadata)
	}
	args := string(e.Args)
	if args == "" {
		args = "{}"
	}
	err := c.Exec(`INSERT INTO eventlog (seqNumGlobal, seqNumClient, seqNumRebaseGeneration,
  parentSeqNumGlobal, parentSeqNumClient, parentSeqNumRebaseGeneration,
  name, argsJson, clientId, sessionId, schemaHash, syncMetadataJson)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
		e.SeqNum.Global, e.SeqNum.Client, e.SeqNum.RebaseGeneration,
		e.ParentSeqNum.Global, e.ParentSeqNum.Client, e.ParentSeqNum.RebaseGeneration,
		e.Name, args, e.ClientID, e.SessionID, e.SchemaHash, meta)
	if err != nil {
		return fmt.Errorf("append %s %s: %w", e.SeqNum, e.Name, err)
	}
	return nil
}

// Head is the sequence number of the last event, or Root for an empty log.
func Head(c *sqlite.Conn) (SeqNum, error) {
	var h SeqNum
	err := c.Query(`SELECT seqNumGlobal, seqNumClient, seqNumRebaseGeneration FROM eventlog
ORDER BY seqNumGlobal DESC, seqNumClient DESC LIMIT 1`, nil, func(r *sqlite.Row) error {
		h = SeqNum{Global: r.Int64(0), Client: r.Int64(1), RebaseGeneration: r.Int64(2)}
		return nil
	})
	if err != nil {
		return SeqNum{}, fmt.Errorf("eventlog head: %w", err)
	}
	return h, nil
}

// Count is the number of events in the log.
func Count(c *sqlite.Conn) (int64, error) {
	n, _, err := c.QueryInt64("SELECT count(*) FROM eventlog")
	return n, err
}

const selectCols = `SELECT seqNumGlobal, seqNumClient, seqNumRebaseGeneration,
  parentSeqNumGlobal, parentSeqNumClient, parentSeqNumRebaseGeneration,
  name, argsJson, clientId, sessionId, schemaHash, syncMetadataJson FROM eventlog `

func scanEvent(r *sqlite.Row) Event {
	e := Event{
		SeqNum:       SeqNum{Global: r.Int64(0), Client: r.Int64(1), RebaseGeneration: r.Int64(2)},
		ParentSeqNum: SeqNum{Global: r.Int64(3), Client: r.Int64(4), RebaseGeneration: r.Int64(5)},
		Name:         r.Text(6),
		Args:         json.RawMessage(r.Text(7)),
		ClientID:     r.Text(8),
		SessionID:    r.Text(9),
		SchemaHash:   r.Int64(10),
	}
	if !r.IsNull(11) {
		e.SyncMetadata = json.RawMessage(r.Text(11))
	}
	return e
}

// Scan calls fn for every event after `after`, in log order, at most limit
// events (limit ≤ 0 means all). Returning an error from fn stops the scan.
func Scan(c *sqlite.Conn, after SeqNum, limit int, fn func(Event) error) error {
	q := selectCols + `WHERE seqNumGlobal > ? OR (seqNumGlobal = ? AND seqNumClient > ?)
ORDER BY seqNumGlobal, seqNumClient`
	args := []any{after.Global, after.Global, after.Client}
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	return c.Query(q, args, func(r *sqlite.Row) error { return fn(scanEvent(r)) })
}

// ScanRange calls fn for every event e with after < e ≤ upTo, in log order.
func ScanRange(c *sqlite.Conn, after, upTo SeqNum, fn func(Event) error) error {
	q := selectCols + `WHERE (seqNumGlobal > ? OR (seqNumGlobal = ? AND seqNumClient > ?))
  AND (seqNumGlobal < ? OR (seqNumGlobal = ? AND seqNumClient <= ?))
ORDER BY seqNumGlobal, seqNumClient`
	args := []any{after.Global, after.Global, after.Client, upTo.Global, upTo.Global, upTo.Client}
	return c.Query(q, args, func(r *sqlite.Row) error { return fn(scanEvent(r)) })
}

// DeleteAfter removes every event after s (used when pending events are
// rolled back for a rebase or a reset).
func DeleteAfter(c *sqlite.Conn, s SeqNum) error {
	err := c.Exec(`DELETE FROM eventlog WHERE seqNumGlobal > ? OR (seqNumGlobal = ? AND seqNumClient > ?)`,
		s.Global, s.Global, s.Client)
	if err != nil {
		return fmt.Errorf("delete events after %s: %w", s, err)
	}
	return nil
}

// SyncStatus is what the client knows of the sync server.
type SyncStatus struct {
	// Head is the last global sequence number confirmed by the server.
	Head int64
	// BackendID identifies the server's store database; empty until known.
	BackendID string
}

// ReadSyncStatus reads the stored sync status.
func ReadSyncStatus(c *sqlite.Conn) (SyncStatus, error) {
	var s SyncStatus
	err := c.Query("SELECT head, backendId FROM __livestore_sync_status LIMIT 1", nil, func(r *sqlite.Row) error {
		s.Head = r.Int64(0)
		if !r.IsNull(1) {
			s.BackendID = r.Text(1)
		}
		return nil
	})
	if err != nil {
		return SyncStatus{}, fmt.Errorf("read sync status: %w", err)
	}
	return s, nil
}

// WriteSyncStatus stores s.
func WriteSyncStatus(c *sqlite.Conn, s SyncStatus) error {
	var backend any
	if s.BackendID != "" {
		backend = s.BackendID
	}
	if err := c.Exec("UPDATE __livestore_sync_status SET head = ?, backendId = ?", s.Head, backend); err != nil {
		return fmt.Errorf("write sync status: %w", err)
	}
	return nil
}
