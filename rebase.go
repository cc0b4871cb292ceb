package livestore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/clientdb"
	"github.com/livestore-go/livestore/internal/sqlite"
	"github.com/livestore-go/livestore/syncproto"
)

// This file is the rebase: applying the server's events to a log that may
// hold pending local events, inside one transaction of the caller's.
//
//  1. The local events after the upstream head are read (localTail).
//  2. Incoming events that are our own pending ones echoed back are
//     confirmed where they are (confirmEchoes).
//  3. When the server sent other events, the local events from the first
//     pending one it did not echo are rolled back (rollBack), the server's
//     events applied after what stays (applyConfirmed), and the rolled-back
//     events renumbered on top (renumber) and materialized again.
//  4. The new upstream head is recorded (recordUpstream).

// applyUpstream applies incoming, the server's events after the upstream
// head, inside the caller's transaction and, on success, updates s.head and
// s.sync. It reports whether it rebased. The caller holds the write lock.
func (s *Store) applyUpstream(ctx context.Context, incoming []syncproto.PullItem, backendID string, written map[string]struct{}) (bool, error) {
	tail, err := s.localTail()
	if err != nil {
		return false, err
	}
	echoed := tail.echoes(incoming)
	if err := s.confirmEchoes(tail, incoming[:echoed]); err != nil {
		return false, err
	}
	head := s.head
	rebased := echoed < len(incoming)
	if rebased {
		if head, err = s.rebase(ctx, tail, echoed, incoming[echoed:], written); err != nil {
			return false, err
		}
	}
	upstreamHead := s.sync.Head
	if len(incoming) > 0 {
		upstreamHead = incoming[len(incoming)-1].Event.SeqNum
	}
	if err := s.recordUpstream(upstreamHead, backendID, head); err != nil {
		return false, err
	}
	return rebased, nil
}

// localTail is the local events after the upstream head.
type localTail struct {
	events  []eventlog.Event // in log order
	pending []int            // indexes into events of the pending synced ones
}

// localTail reads the local events after the upstream head.
func (s *Store) localTail() (localTail, error) {
	var t localTail
	err := s.db.Scan(eventlog.SeqNum{Global: s.sync.Head}, 0, func(ev eventlog.Event) error {
		if !ev.SeqNum.IsClientOnly() {
			t.pending = append(t.pending, len(t.events))
		}
		t.events = append(t.events, ev)
		return nil
	})
	return t, err
}

// echoes is how many leading incoming events are the tail's pending events,
// echoed back by the server in the same order.
func (t localTail) echoes(incoming []syncproto.PullItem) int {
	m := 0
	for m < len(incoming) && m < len(t.pending) && sameEvent(incoming[m].Event, t.events[t.pending[m]]) {
		m++
	}
	return m
}

// split cuts the tail before its first pending event that the server did
// not echo (client-only events before it stay where they are). It returns
// the last event that stays, with its real rebase generation, and the
// events after it. head is the local head, which stays when the tail is
// empty.
func (t localTail) split(echoed int, head eventlog.SeqNum) (keep eventlog.SeqNum, rolled []eventlog.Event) {
	cut := len(t.events)
	if echoed < len(t.pending) {
		cut = t.pending[echoed]
	}
	keep = head
	switch {
	case cut > 0:
		keep = t.events[cut-1].SeqNum
	case len(t.events) > 0:
		// The upstream head event may itself be a rebased local event.
		keep = t.events[0].ParentSeqNum
	}
	return keep, t.events[cut:]
}

// confirmEchoes stores the sync metadata the server attached to the pending
// events it echoed (echoes[i] is the i-th pending event of the tail).
func (s *Store) confirmEchoes(tail localTail, echoes []syncproto.PullItem) error {
	for i, it := range echoes {
		if meta := metadataJSON(it.Metadata); meta != nil {
			if err := s.db.SetSyncMetadata(tail.events[tail.pending[i]].SeqNum, meta); err != nil {
				return err
			}
		}
	}
	return nil
}

// rebase puts the server's events upstream (the incoming events after the
// echoed ones) under the local events that follow them: it rolls those
// back, applies upstream, and applies them again renumbered on top, one
// rebase generation later. It returns the new local head.
func (s *Store) rebase(ctx context.Context, tail localTail, echoed int, upstream []syncproto.PullItem, written map[string]struct{}) (_ eventlog.SeqNum, err error) {
	keep, rolled := tail.split(echoed, s.head)
	ctx, span := s.tel.startRebase(ctx, len(rolled), len(upstream))
	defer func() { endSpan(span, err) }()
	if err := s.rollBack(ctx, keep, rolled, written); err != nil {
		return eventlog.SeqNum{}, fmt.Errorf("rollback: %w", err)
	}
	if err := s.db.DeleteAfter(keep); err != nil {
		return eventlog.SeqNum{}, err
	}
	top, err := s.applyConfirmed(ctx, keep, upstream, written)
	if err != nil {
		return eventlog.SeqNum{}, err
	}
	if len(rolled) == 0 {
		return top, nil
	}
	re, failed, err := renumber(rolled, top, s.head.RebaseGeneration+1)
	if err != nil {
		ev := rolled[failed]
		return eventlog.SeqNum{}, fmt.Errorf("rebase %s (%s) onto the server's events: %w", ev.SeqNum, ev.Name, err)
	}
	if err := s.materializeGroup(ctx, re, nil, appendEvents|keepChangeset, written); err != nil {
		return eventlog.SeqNum{}, err
	}
	s.tel.rebased(span, rolled, re)
	return re[len(re)-1].SeqNum, nil
}

// applyConfirmed appends the server's events after keep and materializes
// them. Confirmed events are the same on every client: they take rebase
// generation 0, and no changeset is kept for them. It returns the last
// one's sequence number (keep when there are none).
func (s *Store) applyConfirmed(ctx context.Context, keep eventlog.SeqNum, upstream []syncproto.PullItem, written map[string]struct{}) (eventlog.SeqNum, error) {
	prev := keep
	applied := make([]eventlog.Event, 0, len(upstream))
	for _, it := range upstream {
		ev := eventlog.Event{
			SeqNum:       eventlog.SeqNum{Global: it.Event.SeqNum},
			ParentSeqNum: prev,
			Name:         it.Event.Name,
			Args:         it.Event.Args,
			ClientID:     it.Event.ClientID,
			SessionID:    it.Event.SessionID,
			SyncMetadata: metadataJSON(it.Metadata),
		}
		if d, ok := s.schema.events[ev.Name]; ok {
			ev.SchemaHash = d.hash()
		}
		applied = append(applied, ev)
		prev = ev.SeqNum
	}
	if err := s.materializeGroup(ctx, applied, nil, appendEvents, written); err != nil {
		return eventlog.SeqNum{}, err
	}
	return prev, nil
}

// renumber returns evs numbered anew after prev, in order, each the parent
// of the next, in rebase generation gen and without sync metadata (a
// renumbered event is pending). When a number cannot be given it returns
// the index in evs of the event that lacks one.
func renumber(evs []eventlog.Event, prev eventlog.SeqNum, gen int64) ([]eventlog.Event, int, error) {
	out := make([]eventlog.Event, len(evs))
	for i, ev := range evs {
		next := prev.NextSynced
		if ev.SeqNum.IsClientOnly() {
			next = prev.NextClientOnly
		}
		seq, err := next()
		if err != nil {
			return nil, i, err
		}
		seq.RebaseGeneration = gen
		ev.SeqNum, ev.ParentSeqNum, ev.SyncMetadata = seq, prev, nil
		out[i] = ev
		prev = seq
	}
	return out, 0, nil
}

// recordUpstream records the new upstream head (and the backend, when the
// page named one), drops the changesets no rebase can need any more, and
// sets s.sync and s.head.
func (s *Store) recordUpstream(upstreamHead int64, backendID string, head eventlog.SeqNum) error {
	st := s.sync
	st.Head = upstreamHead
	if backendID != "" {
		st.BackendID = backendID
	}
	if err := s.db.WriteSyncStatus(st); err != nil {
		return err
	}
	if err := s.db.PruneChangesets(st.Head); err != nil {
		return err
	}
	s.sync, s.head = st, head
	return nil
}

// sameEvent reports whether an upstream event is the echo of a local one.
func sameEvent(u syncproto.Event, l eventlog.Event) bool {
	if u.SeqNum != l.SeqNum.Global || u.Name != l.Name || u.ClientID != l.ClientID || u.SessionID != l.SessionID {
		return false
	}
	if bytes.Equal(u.Args, l.Args) {
		return true
	}
	var a, b any
	if json.Unmarshal(u.Args, &a) != nil || json.Unmarshal(l.Args, &b) != nil {
		return false
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func metadataJSON(m *syncproto.SyncMetadata) json.RawMessage {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	return b
}

// rollBack undoes the state changes of the events in rolled (all the local
// events after keep, in log order) by applying inverted changesets newest
// first. A changeset group that also covers events at or before keep is
// undone whole, and those events are materialized again.
func (s *Store) rollBack(ctx context.Context, keep eventlog.SeqNum, rolled []eventlog.Event, written map[string]struct{}) error {
	if len(rolled) == 0 {
		return nil
	}
	straddling, err := s.undoGroupsFrom(rolled[0].SeqNum, written)
	if err != nil || straddling == nil {
		return err
	}
	return s.replayKept(ctx, *straddling, keep, written)
}

// undoGroupsFrom undoes the changeset groups newest first, down to the one
// that holds the event first. When that group began before first it also
// held kept events: it is undone whole, and its key returned so that they
// can be materialized again.
func (s *Store) undoGroupsFrom(first eventlog.SeqNum, written map[string]struct{}) (*eventlog.SeqNum, error) {
	groups, err := s.db.ChangesetGroups()
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		if err := s.undoGroup(g, written); err != nil {
			return nil, err
		}
		switch c := g.Key.Compare(first); {
		case c < 0:
			return &g.Key, nil
		case c == 0:
			return nil, nil
		}
	}
	return nil, fmt.Errorf("no changeset covers %s: cannot roll back", first)
}

// undoGroup applies the inverse of g's changes and forgets g.
func (s *Store) undoGroup(g clientdb.ChangesetGroup, written map[string]struct{}) error {
	if len(g.Changeset) > 0 {
		tables, err := sqlite.ChangesetTables(g.Changeset)
		if err != nil {
			return err
		}
		if err := s.w.ApplyInverse(g.Changeset); err != nil {
			return fmt.Errorf("undo changes from %s on: %w", g.Key, err)
		}
		for _, t := range tables {
			written[t] = struct{}{}
		}
	}
	return s.db.DeleteChangeset(g.Key)
}

// replayKept materializes again the kept events from `from` to keep, both
// included, after the group that held them was undone whole.
func (s *Store) replayKept(ctx context.Context, from, keep eventlog.SeqNum, written map[string]struct{}) error {
	var again []eventlog.Event
	err := s.db.ScanRange(eventlog.SeqNum{Global: from.Global, Client: from.Client - 1}, keep, func(ev eventlog.Event) error {
		if ev.SeqNum.Compare(from) >= 0 {
			again = append(again, ev)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.materializeGroup(ctx, again, nil, replayOnly, written)
}
