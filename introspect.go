package livestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/clientdb"
	"github.com/livestore-go/livestore/internal/sqlite"
	"github.com/livestore-go/livestore/syncproto"
)

// This file holds what tools looking into a live store (devtools) need
// beyond the application API: read-only SQL, a paged view of the eventlog
// with each event's sync state, import into an empty store, and the shape
// of the schema's tables.

// MaxReadOnlyValue is the largest string or blob a statement of
// QueryReadOnly builds or reads; larger ones fail with "string or blob too
// big", so that an expression such as randomblob(1e9) cannot make SQLite
// allocate a gigabyte.
const MaxReadOnlyValue = 64 << 20

// QueryReadOnly runs one reading SQL statement (SELECT, or a PRAGMA that
// reports) over the store's database, eventlog and system tables included,
// and calls fn with the values of each row: nil, int64, float64, string or
// []byte. It returns the names of the result columns. Statements that would
// write, attach databases, vacuum or change settings are refused before they
// change anything. The statement is interrupted when ctx ends; returning an
// error from fn stops it with that error.
func (s *Store) QueryReadOnly(ctx context.Context, query string, args []any, fn func(row []any) error) ([]string, error) {
	c, release, err := s.reader(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	restore := c.SetInterrupt(ctx)
	defer restore()
	old := c.SetMaxLength(MaxReadOnlyValue)
	defer c.SetMaxLength(old)
	return c.QueryReadOnly(query, args, func(r *sqlite.Row) error {
		row := make([]any, r.ColumnCount())
		for i := range row {
			row[i] = r.Value(i)
		}
		return fn(row)
	})
}

// EventStatus selects events by their sync state (EventLogQuery.Status).
type EventStatus int

// Event states.
const (
	// AllEvents selects every event.
	AllEvents EventStatus = iota
	// SyncedEvents selects the events the sync server confirmed.
	SyncedEvents
	// PendingEvents selects the synced events the server has not confirmed
	// yet (client-only events are never pending: they are never sent).
	PendingEvents
)

// EventLogQuery selects a page of the local eventlog (Store.EventLog).
type EventLogQuery struct {
	// After starts the page after this event; eventlog.Root starts at the
	// beginning.
	After eventlog.SeqNum
	// From and To, when set, bound the events selected, both included.
	From, To *eventlog.SeqNum
	// Name, when set, selects the events of this name only.
	Name string
	// Status selects by sync state.
	Status EventStatus
	// Limit is the most events returned; 0 or less means 100.
	Limit int
}

// LoggedEvent is an event of the local eventlog with its sync state.
type LoggedEvent struct {
	eventlog.Event
	// Synced is true when the sync server confirmed the event. Client-only
	// events are never synced.
	Synced bool
}

// EventLog returns the events matching q after q.After, oldest first, and
// whether more match after the last one. The page is read in one snapshot
// along the eventlog's primary key from q.After, so its cost grows with the
// page (and the events a Name or Status filter skips), not with the log.
func (s *Store) EventLog(ctx context.Context, q EventLogQuery) ([]LoggedEvent, bool, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	page := clientdb.PageQuery{After: q.After, From: q.From, To: q.To, Name: q.Name, Limit: limit + 1}
	switch q.Status {
	case SyncedEvents:
		page.Confirmation = clientdb.OnlyConfirmed
	case PendingEvents:
		page.Confirmation = clientdb.OnlyPending
	}
	out := make([]LoggedEvent, 0, min(limit, 1000))
	more := false
	err := s.withReader(ctx, func(c *sqlite.Conn) error {
		return clientdb.On(c).Page(page, func(ev eventlog.Event, confirmed bool) error {
			if len(out) == limit {
				more = true
				return nil
			}
			out = append(out, LoggedEvent{Event: ev, Synced: confirmed})
			return nil
		})
	})
	if err != nil {
		return nil, false, fmt.Errorf("livestore: read eventlog after %s: %w", q.After, err)
	}
	return out, more, nil
}

// ErrStoreNotEmpty is returned by ImportEvents when the store's eventlog
// already holds events.
var ErrStoreNotEmpty = errors.New("livestore: the store is not empty")

// ImportEvents fills an empty store with evs, the lines of a `livestore
// export` or a recovery file in log order: they are appended with their
// sequence numbers, clients and sessions, and materialized, in one
// transaction. Each line's parentSeqNum must be the seqNum of the line
// before (0 for the first).
//
// An event that carries a backendId stays confirmed when the store has not
// met a sync server yet or met that same one; otherwise (and for lines
// without a backendId) it is pending and is pushed to the store's sync
// server. It fails with ErrStoreNotEmpty when the eventlog holds events,
// and changes nothing on any error.
func (s *Store) ImportEvents(ctx context.Context, evs []RecoveryEvent) (int, error) {
	if err := s.acquireWrite(ctx); err != nil {
		return 0, err
	}
	n, err := s.importLocked(ctx, evs)
	s.releaseWrite()
	if err != nil {
		return 0, fmt.Errorf("livestore: import: %w", err)
	}
	s.afterWrite(allTables)
	if s.syncer != nil {
		s.syncer.poke()
	}
	return n, nil
}

func (s *Store) importLocked(ctx context.Context, evs []RecoveryEvent) (int, error) {
	count, err := s.db.Count()
	if err != nil {
		return 0, err
	}
	if count > 0 {
		return 0, fmt.Errorf("%w: its eventlog holds %d events (import only into an empty store)", ErrStoreNotEmpty, count)
	}
	log, st, err := s.importedLog(evs)
	if err != nil {
		return 0, err
	}
	if err := s.w.Begin(); err != nil {
		return 0, err
	}
	old := s.sync
	err = func() error {
		for i := range log {
			if err := s.db.Append(&log[i]); err != nil {
				return err
			}
		}
		if err := s.db.WriteSyncStatus(st); err != nil {
			return err
		}
		// rebuildState tells confirmed events from pending ones by s.sync.
		s.sync = st
		if err := s.rebuildState(ctx); err != nil {
			return fmt.Errorf("materialize: %w", err)
		}
		return s.w.Commit()
	}()
	if err != nil {
		s.w.Rollback()
		s.sync = old
		return 0, err
	}
	if len(log) > 0 {
		s.head = log[len(log)-1].SeqNum
	}
	return len(log), nil
}

// importedLog checks the lines of an import and returns the eventlog they
// make, with the sync status that marks the confirmed ones.
func (s *Store) importedLog(evs []RecoveryEvent) ([]eventlog.Event, eventlog.SyncStatus, error) {
	st := eventlog.SyncStatus{BackendID: s.sync.BackendID}
	confirming := true
	var log []eventlog.Event
	prev := int64(0)
	for i, line := range evs {
		if line.ParentSeqNum != prev || line.SeqNum <= prev {
			return nil, st, fmt.Errorf("line %d (%s e%d): parentSeqNum %d does not follow the line before (e%d)", i+1, line.Name, line.SeqNum, line.ParentSeqNum, prev)
		}
		if line.Name == "" {
			return nil, st, fmt.Errorf("line %d: no event name", i+1)
		}
		args := line.Args
		if len(args) == 0 {
			args = json.RawMessage("{}")
		}
		ev := eventlog.Event{
			SeqNum:       eventlog.SeqNum{Global: line.SeqNum},
			ParentSeqNum: eventlog.SeqNum{Global: line.ParentSeqNum},
			Name:         line.Name, Args: args, ClientID: line.ClientID, SessionID: line.SessionID,
		}
		if def, ok := s.schema.events[line.Name]; ok {
			ev.SchemaHash = def.hash()
		}
		// Confirmed events form a prefix of the log, all from one server.
		confirmed := confirming && line.BackendID != "" && (st.BackendID == "" || st.BackendID == line.BackendID)
		if confirmed {
			st.BackendID, st.Head = line.BackendID, line.SeqNum
			if line.CreatedAt != "" {
				ev.SyncMetadata, _ = json.Marshal(syncproto.SyncMetadata{CreatedAt: line.CreatedAt})
			}
		} else {
			confirming = false
		}
		log = append(log, ev)
		prev = line.SeqNum
	}
	return log, st, nil
}

// IsPrimaryKey reports whether the column is (part of) the primary key.
func (c Column) IsPrimaryKey() bool { return c.primaryKey }

// IsNullable reports whether the column accepts NULL.
func (c Column) IsNullable() bool { return c.nullable }

// IsClientDocument reports whether t is the table of a ClientDocument.
func (t *Table) IsClientDocument() bool { return t.doc != nil }

// SetDocumentEvent returns the event that merges the fields of value (a
// JSON object; any other JSON value replaces the document) into document id
// of a client-document table, as ClientDocumentTable.Set does. It fails for
// other tables and for a value that is not JSON.
func (t *Table) SetDocumentEvent(id string, value json.RawMessage) (Event, error) {
	if t.doc == nil {
		return Event{}, fmt.Errorf("livestore: table %s is not a client-document table", t.name)
	}
	if !json.Valid(value) {
		return Event{}, fmt.Errorf("livestore: client document %s/%s: value is not valid JSON", t.name, id)
	}
	return Event{Name: t.doc.setDefinition().Name(), Args: clientDocSetArgs{ID: id, Value: value}}, nil
}
