package livestore

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/sqlite"
)

// Commit appends events to the eventlog and materializes them into state, in
// one SQLite transaction: either all events are committed or none is, and
// when Commit returns nil the events are durable on disk (for a directory
// store). Synced events get the next global sequence number (e.g. e6 after
// e5), client-only events the next client number (e5.1).
//
// Commit fails with *UnknownEventError for an event the schema does not
// define, with an error naming the event when its args do not decode into the
// definition's type, with *MaterializerError when a materializer or its
// SQL fails, and with an error matching eventlog.ErrSeqNumExhausted when the
// log has used the last sequence number (2^53-1) that clients and servers
// can hold; in every case eventlog and state are left exactly as before.
//
// Concurrent Commit calls share transactions (group commit, see
// groupcommit.go): calls that arrive while another commit is being written
// are committed together, in the order they were queued, each with the
// all-or-nothing guarantee above, and made durable by one flush. A failing
// call fails alone; the others of its group commit.
func (s *Store) Commit(ctx context.Context, events ...Event) (err error) {
	if len(events) == 0 {
		return nil
	}
	ctx, run := s.tel.startCommit(ctx)
	defer func() { s.tel.endCommit(ctx, run, err) }()
	batch, err := s.prepare(events)
	if err != nil {
		return err
	}
	return s.submit(ctx, batch)
}

// prepared is an event of a commit, checked against the schema, with its
// args encoded and decoded.
type prepared struct {
	def   Definition
	args  json.RawMessage
	value any
}

// prepare checks events against the schema and encodes their args, before
// the write lock is taken.
func (s *Store) prepare(events []Event) ([]prepared, error) {
	batch := make([]prepared, len(events))
	for i, ev := range events {
		def, ok := s.schema.events[ev.Name]
		if !ok {
			return nil, &UnknownEventError{Name: ev.Name}
		}
		if _, ok := s.schema.materializers[ev.Name]; !ok {
			return nil, &UnknownEventError{Name: ev.Name, Reason: "no materializer"}
		}
		raw, value, err := encodeArgs(def, ev)
		if err != nil {
			return nil, fmt.Errorf("livestore: commit: %w", err)
		}
		batch[i] = prepared{def, raw, value}
	}
	return batch, nil
}

// number makes the events of batch, numbered on from the head, each the
// parent of the next, and returns them with their decoded args. The caller
// holds the write lock.
func (s *Store) number(batch []prepared) ([]eventlog.Event, []any, error) {
	head := s.head
	evs := make([]eventlog.Event, len(batch))
	values := make([]any, len(batch))
	for i, p := range batch {
		values[i] = p.value
		next := head.NextSynced
		if p.def.IsClientOnly() {
			next = head.NextClientOnly
		}
		seq, err := next()
		if err != nil {
			return nil, nil, fmt.Errorf("livestore: commit %s: %w", p.def.Name(), err)
		}
		evs[i] = eventlog.Event{
			SeqNum:       seq,
			ParentSeqNum: head,
			Name:         p.def.Name(),
			Args:         p.args,
			ClientID:     s.clientID,
			SessionID:    s.sessionID,
			SchemaHash:   p.def.hash(),
		}
		head = seq
	}
	return evs, values, nil
}

// groupMode says what materializeGroup does beside running the
// materializers.
type groupMode uint8

const (
	// replayOnly runs the materializers only: the events are in the log
	// already and their changes are not kept.
	replayOnly groupMode = 0
	// appendEvents appends the events to the eventlog first.
	appendEvents groupMode = 1
	// keepChangeset captures the changes of the whole group as one
	// changeset, stored under the first event's sequence number, so that a
	// rebase can roll the group back.
	keepChangeset groupMode = 2
)

// undoMode is keepChangeset when new events must be revertible: whenever a
// rebase could roll them back, that is in a synced store. A store without
// sync keeps none; if it is later opened with sync, Open rebuilds state to
// record them.
func (s *Store) undoMode() groupMode {
	if s.opts.Sync != nil {
		return keepChangeset
	}
	return replayOnly
}

// materializeGroup materializes evs (already numbered) as mode says, with
// the decoded arguments of evs given in values (values[i] for evs[i]) when
// the caller has them, else nil. Tables written are added to written (when
// not nil). When the operation in ctx is traced, each event gets a span.
func (s *Store) materializeGroup(ctx context.Context, evs []eventlog.Event, values []any, mode groupMode, written map[string]struct{}) error {
	_, err := s.materializeCapture(ctx, evs, values, mode, written)
	return err
}

// materializeCapture is materializeGroup returning the changeset it kept
// (nil when mode keeps none or nothing changed).
func (s *Store) materializeCapture(ctx context.Context, evs []eventlog.Event, values []any, mode groupMode, written map[string]struct{}) ([]byte, error) {
	run := func() error {
		for i := range evs {
			var v any
			if values != nil {
				v = values[i]
			}
			span := s.tel.startMaterialize(ctx, &evs[i])
			err := s.applyEvent(&evs[i], v, mode, written)
			endSpan(span, err)
			if err != nil {
				return err
			}
		}
		return nil
	}
	if mode&keepChangeset == 0 || len(evs) == 0 {
		return nil, run()
	}
	cs, err := s.w.Capture(s.tables, run)
	if err != nil {
		return nil, err
	}
	if err := s.db.SaveChangeset(evs[0].SeqNum, cs); err != nil {
		return nil, fmt.Errorf("livestore: %w", err)
	}
	return cs, nil
}

// applyEvent appends ev to the log when mode says so, and materializes it.
func (s *Store) applyEvent(ev *eventlog.Event, args any, mode groupMode, written map[string]struct{}) error {
	if mode&appendEvents != 0 {
		if err := s.db.Append(ev); err != nil {
			return fmt.Errorf("livestore: commit: %w", err)
		}
	}
	return s.materialize(ev, args, written)
}

// materialize runs ev's materializer and applies its writes on the write
// connection, inside the caller's transaction. Tables the writes touch are
// added to written (when not nil).
func (s *Store) materialize(ev *eventlog.Event, args any, written map[string]struct{}) (err error) {
	def, ok := s.schema.events[ev.Name]
	m, hasM := s.schema.materializers[ev.Name]
	if !ok || !hasM {
		uerr := &UnknownEventError{Name: ev.Name}
		if ok {
			uerr.Reason = "no materializer"
		}
		return s.unknownEvent(*ev, uerr)
	}
	if args == nil {
		if args, err = def.decode(ev.Args); err != nil {
			return &MaterializerError{Event: ev.Name, SeqNum: ev.SeqNum.String(), Err: err}
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = &MaterializerError{Event: ev.Name, SeqNum: ev.SeqNum.String(),
				Err: fmt.Errorf("materializer panicked: %v\n%s", r, debug.Stack())}
		}
	}()
	mc := &MaterializeContext{Event: *ev, store: s}
	stmts, err := m.fn(mc, args)
	if err != nil {
		return &MaterializerError{Event: ev.Name, SeqNum: ev.SeqNum.String(), Err: err}
	}
	for _, st := range stmts {
		if st == nil {
			continue
		}
		q, a, err := st.Build()
		if err == nil {
			err = s.w.Query(q, a, nil)
		}
		if err == nil && written != nil {
			err = s.noteWrites(q, written)
		}
		if err != nil {
			return &MaterializerError{Event: ev.Name, SeqNum: ev.SeqNum.String(), Err: err}
		}
	}
	return nil
}

// noteWrites adds the tables that query writes to written. The analysis is
// cached per SQL text.
func (s *Store) noteWrites(query string, written map[string]struct{}) error {
	acc, err := s.analyze(s.w, query)
	if err != nil {
		return err
	}
	for _, t := range acc.Writes {
		written[t] = struct{}{}
	}
	return nil
}

// analyze returns the tables query reads and writes, cached per SQL text.
func (s *Store) analyze(c *sqlite.Conn, query string) (sqlite.Access, error) {
	if v, ok := s.access.Load(query); ok {
		return v.(sqlite.Access), nil
	}
	acc, err := c.Analyze(query)
	if err != nil {
		return sqlite.Access{}, err
	}
	s.access.Store(query, acc)
	return acc, nil
}

// allTables marks a write that may have changed any table (a rebuild).
var allTables = map[string]struct{}{"*": {}}

// afterWrite is called after state changed, in the tables given as a
// whole.
func (s *Store) afterWrite(tables map[string]struct{}) {
	s.graph.invalidate(tables, nil)
}

// afterCommit is called after commits changed tables; the tables of rows
// changed only in the rows listed there.
func (s *Store) afterCommit(tables map[string]struct{}, rows rowChanges) {
	s.graph.invalidate(tables, rows)
}
