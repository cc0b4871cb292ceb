package livestore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/sqlite"
	"github.com/livestore-go/livestore/syncproto"
)

// applyPage applies one pull page in one transaction: events the server
// confirms are marked confirmed; when the server's events differ from the
// local pending ones, the pending events (and client-only events after the
// first of them) are rolled back, the server's events applied, and the
// rolled-back events re-numbered after them (a rebase) and materialized
// again. Subscribers are notified once, of the final state.
func (y *syncer) applyPage(ctx context.Context, page syncproto.PullResponse) error {
	s := y.s
	if err := s.acquireWrite(ctx); err != nil {
		return err
	}
	defer s.releaseWrite()
	st := s.sync
	if page.BackendID != "" && st.BackendID != "" && page.BackendID != st.BackendID {
		return &syncproto.BackendIDMismatchError{Expected: page.BackendID, Received: st.BackendID}
	}
	var incoming []syncproto.PullItem
	for _, it := range page.Batch {
		if it.Event.SeqNum > st.Head {
			incoming = append(incoming, it)
		}
	}
	if len(incoming) == 0 && page.BackendID == st.BackendID {
		return nil
	}
	// A server that skips, reorders or misnumbers events (or numbers them
	// past what clients can hold) would do so again on every reconnection:
	// syncing stops, with the reason in SyncStatus, rather than store a log
	// that differs from the server's.
	if len(incoming) > 0 && incoming[0].Event.ParentSeqNum != st.Head {
		return errStopSync{fmt.Errorf("pull: gap: first event %d has parent %d, local upstream head is %d",
			incoming[0].Event.SeqNum, incoming[0].Event.ParentSeqNum, st.Head)}
	}
	evs := make([]syncproto.Event, len(incoming))
	for i, it := range incoming {
		evs[i] = it.Event
	}
	if err := syncproto.CheckChain(evs); err != nil {
		return errStopSync{fmt.Errorf("pull: %w", err)}
	}

	if err := s.w.Begin(); err != nil {
		return err
	}
	written := map[string]struct{}{}
	rebased, err := s.applyUpstream(ctx, incoming, page.BackendID, written)
	if err != nil {
		s.w.Rollback()
		// The local state is unchanged; a materializer that cannot apply
		// the server's events will fail again on retry.
		var merr *MaterializerError
		var uerr *UnknownEventError
		if errors.As(err, &merr) || errors.As(err, &uerr) || errors.Is(err, eventlog.ErrSeqNumExhausted) {
			return errStopSync{err}
		}
		return err
	}
	if err := s.w.Commit(); err != nil {
		s.w.Rollback()
		// The in-memory head and sync status were not changed yet.
		return fmt.Errorf("pull: commit: %w", err)
	}
	if rebased {
		y.mu.Lock()
		y.pushedUpTo = s.sync.Head
		y.mu.Unlock()
	}
	s.afterWrite(written)
	return nil
}

// applyUpstream does the work of applyPage inside the caller's transaction
// and, on success, updates s.head and s.sync. It reports whether it rebased.
func (s *Store) applyUpstream(ctx context.Context, incoming []syncproto.PullItem, backendID string, written map[string]struct{}) (bool, error) {
	st := s.sync
	upstreamHead := eventlog.SeqNum{Global: st.Head}
	// Local events after the upstream head, in log order.
	var local []eventlog.Event
	err := eventlog.Scan(s.w, upstreamHead, 0, func(ev eventlog.Event) error {
		local = append(local, ev)
		return nil
	})
	if err != nil {
		return false, err
	}
	var pending []int // indexes into local of pending synced events
	for i, ev := range local {
		if !ev.SeqNum.IsClientOnly() {
			pending = append(pending, i)
		}
	}
	// How many incoming events are our own pending ones, echoed back.
	m := 0
	for m < len(incoming) && m < len(pending) && sameEvent(incoming[m].Event, local[pending[m]]) {
		m++
	}
	newHead := st.Head
	if len(incoming) > 0 {
		newHead = incoming[len(incoming)-1].Event.SeqNum
	}
	for i := 0; i < m; i++ {
		if meta := metadataJSON(incoming[i].Metadata); meta != nil {
			seq := local[pending[i]].SeqNum
			if err := s.w.Exec(`UPDATE eventlog SET syncMetadataJson = ? WHERE seqNumGlobal = ? AND seqNumClient = ? AND seqNumRebaseGeneration = ?`,
				string(meta), seq.Global, seq.Client, seq.RebaseGeneration); err != nil {
				return false, err
			}
		}
	}
	rebased := m < len(incoming)
	head := s.head
	if rebased {
		// Roll back everything from the first pending event the server did
		// not confirm (client-only events before it stay where they are).
		cut := len(local)
		if m < len(pending) {
			cut = pending[m]
		}
		// keep is the last event that stays, with its real rebase generation
		// (the upstream head event may itself be a rebased local event).
		keep := s.head
		switch {
		case cut > 0:
			keep = local[cut-1].SeqNum
		case len(local) > 0:
			keep = local[0].ParentSeqNum
		}
		rolled := local[cut:]
		if err := s.rollbackAfter(keep, rolled, written); err != nil {
			return false, fmt.Errorf("rollback: %w", err)
		}
		if err := eventlog.DeleteAfter(s.w, keep); err != nil {
			return false, err
		}
		gen := s.head.RebaseGeneration
		if len(rolled) > 0 {
			gen++
		}
		// The server's events, confirmed: no changesets needed.
		prev := keep
		var applied []eventlog.Event
		for _, it := range incoming[m:] {
			ev := eventlog.Event{
				// Confirmed events are the same on every client: generation 0.
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
		if err := s.materializeGroup(applied, true, false, written); err != nil {
			return false, err
		}
		// The rolled-back events, re-numbered on top.
		re := make([]eventlog.Event, len(rolled))
		for i, ev := range rolled {
			ev.ParentSeqNum = prev
			next := prev.NextSynced
			if ev.SeqNum.IsClientOnly() {
				next = prev.NextClientOnly
			}
			seq, err := next()
			if err != nil {
				return false, fmt.Errorf("rebase %s (%s) onto the server's events: %w", ev.SeqNum, ev.Name, err)
			}
			ev.SeqNum = seq
			ev.SeqNum.RebaseGeneration = gen
			ev.SyncMetadata = nil
			re[i] = ev
			prev = ev.SeqNum
		}
		if err := s.materializeGroup(re, true, true, written); err != nil {
			return false, err
		}
		head = prev
	}
	st.Head = newHead
	if backendID != "" {
		st.BackendID = backendID
	}
	if err := eventlog.WriteSyncStatus(s.w, st); err != nil {
		return false, err
	}
	if err := s.dropSettledChangesets(st.Head); err != nil {
		return false, err
	}
	s.sync = st
	s.head = head
	return rebased, nil
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

type changesetGroup struct {
	key  eventlog.SeqNum
	data []byte
}

// rollbackAfter undoes the state changes of the events in rolled (all the
// local events after keep, in log order) by applying inverted changesets
// newest first. A changeset group that also covers events at or before keep
// is undone whole, and those events are materialized again.
func (s *Store) rollbackAfter(keep eventlog.SeqNum, rolled []eventlog.Event, written map[string]struct{}) error {
	if len(rolled) == 0 {
		return nil
	}
	var groups []changesetGroup
	err := s.w.Query(`SELECT seqNumGlobal, seqNumClient, seqNumRebaseGeneration, changeset FROM __livestore_session_changeset
ORDER BY seqNumGlobal DESC, seqNumClient DESC`, nil, func(r *sqlite.Row) error {
		g := changesetGroup{key: eventlog.SeqNum{Global: r.Int64(0), Client: r.Int64(1), RebaseGeneration: r.Int64(2)}}
		if !r.IsNull(3) {
			g.data = r.Bytes(3)
		}
		groups = append(groups, g)
		return nil
	})
	if err != nil {
		return err
	}
	first := rolled[0].SeqNum
	var replayFrom *eventlog.SeqNum
	for _, g := range groups {
		if g.key.Compare(first) < 0 {
			// This group holds the first rolled-back event and some kept
			// ones: undo it whole, then re-apply the kept ones.
			k := g.key
			replayFrom = &k
		}
		if err := s.invertGroup(g, written); err != nil {
			return err
		}
		if replayFrom != nil || g.key.Compare(first) == 0 {
			break
		}
	}
	if replayFrom == nil {
		if len(groups) == 0 || groups[len(groups)-1].key.Compare(first) > 0 {
			return fmt.Errorf("no changeset covers %s: cannot roll back", first)
		}
		return nil
	}
	var again []eventlog.Event
	err = eventlog.ScanRange(s.w, eventlog.SeqNum{Global: replayFrom.Global, Client: replayFrom.Client - 1}, keep, func(ev eventlog.Event) error {
		if ev.SeqNum.Compare(*replayFrom) >= 0 {
			again = append(again, ev)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.materializeGroup(again, false, false, written)
}

func (s *Store) invertGroup(g changesetGroup, written map[string]struct{}) error {
	if len(g.data) > 0 {
		tables, err := sqlite.ChangesetTables(g.data)
		if err != nil {
			return err
		}
		if err := s.w.ApplyInverse(g.data); err != nil {
			return fmt.Errorf("undo changes from %s on: %w", g.key, err)
		}
		for _, t := range tables {
			written[t] = struct{}{}
		}
	}
	return s.w.Exec(`DELETE FROM __livestore_session_changeset WHERE seqNumGlobal = ? AND seqNumClient = ? AND seqNumRebaseGeneration = ?`,
		g.key.Global, g.key.Client, g.key.RebaseGeneration)
}

// dropSettledChangesets deletes the changeset groups no rebase can need any
// more: those entirely before the first pending synced event. Client-only
// events before it sort before every future upstream event and are never
// rolled back.
func (s *Store) dropSettledChangesets(upstreamHead int64) error {
	firstPending, found, err := s.w.QueryInt64(`SELECT min(seqNumGlobal) FROM eventlog WHERE seqNumGlobal > ? AND seqNumClient = 0`, upstreamHead)
	if err != nil {
		return err
	}
	if !found || firstPending == 0 {
		return s.w.Exec(`DELETE FROM __livestore_session_changeset`)
	}
	// Keep the group holding the first pending event and all after it.
	var keyG, keyC int64
	var have bool
	err = s.w.Query(`SELECT seqNumGlobal, seqNumClient FROM __livestore_session_changeset
WHERE seqNumGlobal < ? OR (seqNumGlobal = ? AND seqNumClient = 0)
ORDER BY seqNumGlobal DESC, seqNumClient DESC LIMIT 1`, []any{firstPending, firstPending}, func(r *sqlite.Row) error {
		keyG, keyC, have = r.Int64(0), r.Int64(1), true
		return nil
	})
	if err != nil || !have {
		return err
	}
	return s.w.Exec(`DELETE FROM __livestore_session_changeset WHERE seqNumGlobal < ? OR (seqNumGlobal = ? AND seqNumClient < ?)`, keyG, keyG, keyC)
}
