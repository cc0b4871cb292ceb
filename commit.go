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
func (s *Store) Commit(ctx context.Context, events ...Event) error {
	if len(events) == 0 {
		return nil
	}
	type prepared struct {
		def   Definition
		args  json.RawMessage
		value any
	}
	batch := make([]prepared, len(events))
	for i, ev := range events {
		def, ok := s.schema.events[ev.Name]
		if !ok {
			return &UnknownEventError{Name: ev.Name}
		}
		if _, ok := s.schema.materializers[ev.Name]; !ok {
			return &UnknownEventError{Name: ev.Name, Reason: "no materializer"}
		}
		raw, value, err := encodeArgs(def, ev)
		if err != nil {
			return fmt.Errorf("livestore: commit: %w", err)
		}
		batch[i] = prepared{def, raw, value}
	}
	if err := s.acquireWrite(ctx); err != nil {
		return err
	}
	written := map[string]struct{}{}
	err := func() error {
		defer s.releaseWrite()
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.w.Begin(); err != nil {
			return fmt.Errorf("livestore: commit: %w", err)
		}
		head := s.head
		evs := make([]eventlog.Event, len(batch))
		values := make([]any, len(batch))
		for i, p := range batch {
			values[i] = p.value
			ev := eventlog.Event{
				ParentSeqNum: head,
				Name:         p.def.Name(),
				Args:         p.args,
				ClientID:     s.clientID,
				SessionID:    s.sessionID,
				SchemaHash:   p.def.hash(),
			}
			next := head.NextSynced
			if p.def.IsClientOnly() {
				next = head.NextClientOnly
			}
			seq, err := next()
			if err != nil {
				s.w.Rollback()
				return fmt.Errorf("livestore: commit %s: %w", ev.Name, err)
			}
			ev.SeqNum = seq
			evs[i] = ev
			head = ev.SeqNum
		}
		if err := s.materializeGroupValues(evs, values, true, s.keepChangesets(), written); err != nil {
			s.w.Rollback()
			return err
		}
		if err := s.w.Commit(); err != nil {
			s.w.Rollback()
			return fmt.Errorf("livestore: commit: %w", err)
		}
		s.head = head
		return nil
	}()
	if err != nil {
		return err
	}
	s.afterWrite(written)
	if s.syncer != nil {
		s.syncer.poke()
	}
	return nil
}

// materializeGroup materializes evs (already numbered), appending them to
// the eventlog first when appendLog is true. When keep is true the changes of
// the whole group are captured as one changeset, stored under the first
// event's sequence number, so the group can be rolled back later. Tables
// written are added to written (when not nil).
func (s *Store) materializeGroup(evs []eventlog.Event, appendLog, keep bool, written map[string]struct{}) error {
	return s.materializeGroupValues(evs, nil, appendLog, keep, written)
}

// materializeGroupValues is materializeGroup with the decoded arguments of
// evs given (values[i] for evs[i]), when the caller has them.
func (s *Store) materializeGroupValues(evs []eventlog.Event, values []any, appendLog, keep bool, written map[string]struct{}) error {
	run := func() error {
		for i := range evs {
			if appendLog {
				if err := eventlog.Append(s.w, &evs[i]); err != nil {
					return fmt.Errorf("livestore: commit: %w", err)
				}
			}
			var v any
			if values != nil {
				v = values[i]
			}
			if err := s.materialize(&evs[i], v, written); err != nil {
				return err
			}
		}
		return nil
	}
	if !keep || len(evs) == 0 {
		return run()
	}
	cs, err := s.w.Capture(s.tables, run)
	if err != nil {
		return err
	}
	var blob any
	if cs != nil {
		blob = cs
	}
	first := evs[0].SeqNum
	err = s.w.Exec(`INSERT OR REPLACE INTO __livestore_session_changeset
 (seqNumGlobal, seqNumClient, seqNumRebaseGeneration, changeset, debug) VALUES (?, ?, ?, ?, NULL)`,
		first.Global, first.Client, first.RebaseGeneration, blob)
	if err != nil {
		return fmt.Errorf("livestore: store changeset of %s: %w", first, err)
	}
	return nil
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

// keepChangesets reports whether new events must be revertible. They must
// whenever they could be rolled back by a rebase.
// A store without sync keeps none; if it is later opened with sync, Open
// rebuilds state to record them.
func (s *Store) keepChangesets() bool { return s.opts.Sync != nil }

// allTables marks a write that may have changed any table (a rebuild).
var allTables = map[string]struct{}{"*": {}}

// afterWrite is called, without the write lock, after state changed.
func (s *Store) afterWrite(tables map[string]struct{}) {
	s.graph.invalidate(tables)
}
