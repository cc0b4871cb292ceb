package livestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"time"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/clientdb"
	"github.com/livestore-go/livestore/internal/sqlite"
	"github.com/livestore-go/livestore/syncproto"
)

// This file holds what tools looking into a live store (devtools) need
// beyond the application API: read-only SQL, a paged view of the eventlog
// with each event's sync state, import into an empty store, the shape of
// the schema's tables, and the nodes and last refresh of the reactive graph.

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

// NodeInfo describes a reactive node, for devtools.
type NodeInfo struct {
	ID    int64  `json:"id"`
	Kind  string `json:"kind"` // "db", "computed" or "signal"
	Label string `json:"label,omitempty"`
	SQL   string `json:"sql,omitempty"`
	// Args are the values bound to the SQL's parameters.
	Args         []any         `json:"args,omitempty"`
	Tables       []string      `json:"tables,omitempty"`
	RunCount     int64         `json:"runCount"`
	LastDuration time.Duration `json:"lastDurationNs"`
	// MeanDuration is the mean time of all runs.
	MeanDuration time.Duration `json:"meanDurationNs"`
	Subscribers  int           `json:"subscribers"`
	Dependencies []int64       `json:"dependencies,omitempty"`
	Stale        bool          `json:"stale"`
	// LastResult is the JSON of the last value: its first PreviewItems
	// elements when it is a slice, at most PreviewBytes long (else a JSON
	// string holding the start of it). ResultCut says it was shortened.
	LastResult json.RawMessage `json:"lastResult,omitempty"`
	ResultCut  bool            `json:"resultCut,omitempty"`
	// Error is the last run's failure, if it failed.
	Error string `json:"error,omitempty"`
}

// Bounds of NodeInfo.LastResult.
const (
	PreviewItems = 10
	PreviewBytes = 4 << 10
)

// ReactiveNodes lists the nodes of the store's reactive graph.
func (s *Store) ReactiveNodes() []NodeInfo {
	g := s.graph
	g.mu.Lock()
	out := make([]NodeInfo, 0, len(g.nodes))
	values := make([]any, 0, len(g.nodes))
	for _, n := range g.nodes {
		info := NodeInfo{ID: n.id, Kind: n.kind.String(), Label: n.label, SQL: n.sql, Tables: n.tables,
			Args: n.args, RunCount: n.runs, LastDuration: n.lastDur, Subscribers: len(n.subs), Stale: !n.valid}
		if n.runs > 0 {
			info.MeanDuration = n.totalDur / time.Duration(n.runs)
		}
		if n.err != nil {
			info.Error = n.err.Error()
		}
		for d := range n.deps {
			info.Dependencies = append(info.Dependencies, d.id)
		}
		sort.Slice(info.Dependencies, func(i, j int) bool { return info.Dependencies[i] < info.Dependencies[j] })
		out = append(out, info)
		v := n.value
		if !n.everRun && n.kind != signalNode {
			v = nil
		}
		values = append(values, v)
	}
	g.mu.Unlock()
	// Values are replaced, never changed in place, so they are encoded
	// outside the lock: a large result does not hold up refreshes.
	for i := range out {
		if values[i] != nil {
			out[i].LastResult, out[i].ResultCut = preview(values[i])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// preview encodes the start of v as JSON within the bounds of
// NodeInfo.LastResult.
func preview(v any) (json.RawMessage, bool) {
	cut := false
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.Len() > PreviewItems {
		v, cut = rv.Slice(0, PreviewItems).Interface(), true
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(fmt.Sprintf("%v (not JSON: %v)", v, err))
	}
	if len(b) > PreviewBytes {
		text := []rune(string(b[:PreviewBytes]))
		b, _ = json.Marshal(string(text[:len(text)-1]) + "…")
		cut = true
	}
	return b, cut
}

// RefreshInfo describes the last refresh pass of the reactive graph: the
// one that followed the latest writes.
type RefreshInfo struct {
	// Pass numbers the passes; 0 means none ran yet.
	Pass uint64 `json:"pass"`
	// Tables are the tables written since the pass before ("*": all).
	Tables []string `json:"tables"`
	// Reran lists the ids of the nodes the pass re-ran (see NodeInfo.ID).
	Reran []int64 `json:"reran"`
	// At is when the pass ended.
	At time.Time `json:"at"`
}

// LastRefresh describes the reactive graph's last refresh pass.
func (s *Store) LastRefresh() RefreshInfo {
	g := s.graph
	g.mu.Lock()
	defer g.mu.Unlock()
	return RefreshInfo{Pass: g.lastPass, Tables: append([]string{}, g.lastTables...),
		Reran: append([]int64{}, g.lastReran...), At: g.lastAt}
}
