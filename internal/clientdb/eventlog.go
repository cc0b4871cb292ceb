package clientdb

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/sqlite"
)

// Append inserts e at the end of the log. Appending a sequence number the
// log holds fails. Empty args are stored as {}.
func (d DB) Append(e *eventlog.Event) error {
	var meta any
	if len(e.SyncMetadata) > 0 {
		meta = string(e.SyncMetadata)
	}
	args := string(e.Args)
	if args == "" {
		args = "{}"
	}
	err := d.c.Exec(`INSERT INTO eventlog (seqNumGlobal, seqNumClient, seqNumRebaseGeneration,
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

// Head is the sequence number of the last event, or eventlog.Root for an
// empty log.
func (d DB) Head() (eventlog.SeqNum, error) {
	var h eventlog.SeqNum
	err := d.c.Query(`SELECT seqNumGlobal, seqNumClient, seqNumRebaseGeneration FROM eventlog
ORDER BY seqNumGlobal DESC, seqNumClient DESC LIMIT 1`, nil, func(r *sqlite.Row) error {
		h = eventlog.SeqNum{Global: r.Int64(0), Client: r.Int64(1), RebaseGeneration: r.Int64(2)}
		return nil
	})
	if err != nil {
		return eventlog.SeqNum{}, fmt.Errorf("eventlog head: %w", err)
	}
	return h, nil
}

// Count is the number of events in the log.
func (d DB) Count() (int64, error) {
	n, _, err := d.c.QueryInt64("SELECT count(*) FROM eventlog")
	if err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// Counts are the events of the log by kind.
type Counts struct {
	// Events counts them all.
	Events int64
	// Pending counts the synced events after the upstream head.
	Pending int64
	// ClientOnly counts the events that never leave the client.
	ClientOnly int64
}

// Counts counts the log's events by kind, upstreamHead being the last
// global sequence number the sync server confirmed.
func (d DB) Counts(upstreamHead int64) (Counts, error) {
	var n Counts
	err := d.c.Query(`SELECT count(*), count(*) FILTER (WHERE seqNumClient = 0 AND seqNumGlobal > ?),
 count(*) FILTER (WHERE seqNumClient <> 0) FROM eventlog`, []any{upstreamHead}, func(r *sqlite.Row) error {
		n = Counts{Events: r.Int64(0), Pending: r.Int64(1), ClientOnly: r.Int64(2)}
		return nil
	})
	if err != nil {
		return Counts{}, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// PendingCount is the number of synced events after upstreamHead: those
// the sync server has not confirmed.
func (d DB) PendingCount(upstreamHead int64) (int64, error) {
	n, _, err := d.c.QueryInt64(`SELECT count(*) FROM eventlog WHERE seqNumGlobal > ? AND seqNumClient = 0`, upstreamHead)
	if err != nil {
		return 0, fmt.Errorf("count pending events: %w", err)
	}
	return n, nil
}

// CountAfter is the number of events whose global sequence number is after
// global, client-only events among them.
func (d DB) CountAfter(global int64) (int64, error) {
	n, _, err := d.c.QueryInt64("SELECT count(*) FROM eventlog WHERE seqNumGlobal > ?", global)
	if err != nil {
		return 0, fmt.Errorf("count events after e%d: %w", global, err)
	}
	return n, nil
}

const selectEvents = `SELECT seqNumGlobal, seqNumClient, seqNumRebaseGeneration,
  parentSeqNumGlobal, parentSeqNumClient, parentSeqNumRebaseGeneration,
  name, argsJson, clientId, sessionId, schemaHash, syncMetadataJson`

// readEvent reads the columns of selectEvents.
func readEvent(r *sqlite.Row) eventlog.Event {
	e := eventlog.Event{
		SeqNum:       eventlog.SeqNum{Global: r.Int64(0), Client: r.Int64(1), RebaseGeneration: r.Int64(2)},
		ParentSeqNum: eventlog.SeqNum{Global: r.Int64(3), Client: r.Int64(4), RebaseGeneration: r.Int64(5)},
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
// events (limit ≤ 0 means all). Returning an error from fn stops the scan
// with that error.
func (d DB) Scan(after eventlog.SeqNum, limit int, fn func(eventlog.Event) error) error {
	q := selectEvents + ` FROM eventlog WHERE seqNumGlobal > ? OR (seqNumGlobal = ? AND seqNumClient > ?)
ORDER BY seqNumGlobal, seqNumClient`
	args := []any{after.Global, after.Global, after.Client}
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	return d.c.Query(q, args, func(r *sqlite.Row) error { return fn(readEvent(r)) })
}

// ScanRange calls fn for every event e with after < e ≤ upTo, in log order.
func (d DB) ScanRange(after, upTo eventlog.SeqNum, fn func(eventlog.Event) error) error {
	q := selectEvents + ` FROM eventlog WHERE (seqNumGlobal > ? OR (seqNumGlobal = ? AND seqNumClient > ?))
  AND (seqNumGlobal < ? OR (seqNumGlobal = ? AND seqNumClient <= ?))
ORDER BY seqNumGlobal, seqNumClient`
	args := []any{after.Global, after.Global, after.Client, upTo.Global, upTo.Global, upTo.Client}
	return d.c.Query(q, args, func(r *sqlite.Row) error { return fn(readEvent(r)) })
}

// PendingBatch reads the first synced events after global sequence number
// after, at most limit of them, in log order: the next events to push.
func (d DB) PendingBatch(after int64, limit int) ([]eventlog.Event, error) {
	var out []eventlog.Event
	err := d.c.Query(selectEvents+` FROM eventlog
WHERE seqNumGlobal > ? AND seqNumClient = 0 ORDER BY seqNumGlobal LIMIT ?`,
		[]any{after, limit}, func(r *sqlite.Row) error {
			out = append(out, readEvent(r))
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("read pending events after e%d: %w", after, err)
	}
	return out, nil
}

// SetSyncMetadata stores what the sync server attached to the event
// numbered seq when it confirmed it.
func (d DB) SetSyncMetadata(seq eventlog.SeqNum, meta json.RawMessage) error {
	err := d.c.Exec(`UPDATE eventlog SET syncMetadataJson = ? WHERE seqNumGlobal = ? AND seqNumClient = ? AND seqNumRebaseGeneration = ?`,
		string(meta), seq.Global, seq.Client, seq.RebaseGeneration)
	if err != nil {
		return fmt.Errorf("store sync metadata of %s: %w", seq, err)
	}
	return nil
}

// DeleteAfter removes every event after s (pending events rolled back for a
// rebase).
func (d DB) DeleteAfter(s eventlog.SeqNum) error {
	err := d.c.Exec(`DELETE FROM eventlog WHERE seqNumGlobal > ? OR (seqNumGlobal = ? AND seqNumClient > ?)`,
		s.Global, s.Global, s.Client)
	if err != nil {
		return fmt.Errorf("delete events after %s: %w", s, err)
	}
	return nil
}

// DeleteEvents empties the log.
func (d DB) DeleteEvents() error {
	if err := d.c.Exec("DELETE FROM eventlog"); err != nil {
		return fmt.Errorf("clear eventlog: %w", err)
	}
	return nil
}

// Confirmation selects events of a Page by whether the sync server
// confirmed them.
type Confirmation int

// Confirmation filters. Client-only events are neither confirmed nor
// pending.
const (
	// AnyConfirmation selects every event.
	AnyConfirmation Confirmation = iota
	// OnlyConfirmed selects the synced events at or before the upstream head.
	OnlyConfirmed
	// OnlyPending selects the synced events after the upstream head.
	OnlyPending
)

// PageQuery selects a page of the log.
type PageQuery struct {
	// After starts the page after this event.
	After eventlog.SeqNum
	// From and To, when set, bound the events selected, both included.
	From, To *eventlog.SeqNum
	// Name, when set, selects the events of this name only.
	Name string
	// Confirmation selects by sync state.
	Confirmation Confirmation
	// Limit is the most events read; 0 or less means all.
	Limit int
}

// Page calls fn, in log order, for each event q selects, with whether the
// sync server confirmed it (by the recorded upstream head). The page is read
// along the log's primary key from q.After, so its cost grows with the page
// and the events the filters skip, not with the log.
func (d DB) Page(q PageQuery, fn func(ev eventlog.Event, confirmed bool) error) error {
	var b strings.Builder
	b.WriteString(selectEvents + `, seqNumClient = 0 AND seqNumGlobal <= h.head
FROM eventlog, (SELECT head FROM __livestore_sync_status LIMIT 1) AS h
WHERE seqNumGlobal >= ? AND (seqNumGlobal > ? OR seqNumClient > ?)`)
	// The bare bound on seqNumGlobal lets SQLite seek along the primary key
	// instead of reading from the start of the log.
	args := []any{q.After.Global, q.After.Global, q.After.Client}
	if q.From != nil {
		b.WriteString(` AND seqNumGlobal >= ? AND (seqNumGlobal > ? OR seqNumClient >= ?)`)
		args = append(args, q.From.Global, q.From.Global, q.From.Client)
	}
	if q.To != nil {
		b.WriteString(` AND seqNumGlobal <= ? AND (seqNumGlobal < ? OR seqNumClient <= ?)`)
		args = append(args, q.To.Global, q.To.Global, q.To.Client)
	}
	if q.Name != "" {
		b.WriteString(` AND name = ?`)
		args = append(args, q.Name)
	}
	switch q.Confirmation {
	case OnlyConfirmed:
		b.WriteString(` AND seqNumClient = 0 AND seqNumGlobal <= h.head`)
	case OnlyPending:
		b.WriteString(` AND seqNumClient = 0 AND seqNumGlobal > h.head`)
	}
	b.WriteString(` ORDER BY seqNumGlobal, seqNumClient`)
	if q.Limit > 0 {
		b.WriteString(` LIMIT ?`)
		args = append(args, q.Limit)
	}
	return d.c.Query(b.String(), args, func(r *sqlite.Row) error {
		return fn(readEvent(r), r.Int64(12) != 0)
	})
}
