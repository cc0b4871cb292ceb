package livestore

import (
	"context"
	"fmt"
	"iter"
	"slices"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/clientdb"
)

// ConfirmedEventsOptions selects what ConfirmedEvents yields.
type ConfirmedEventsOptions struct {
	// After is the global sequence number of the last event the consumer
	// handled; only later events are yielded. 0 starts from the first event.
	After int64
	// Names, when not empty, limits the stream to events of these names.
	// The cursor still moves past the other events.
	Names []string
}

// confirmedPage bounds how many global sequence numbers one read covers, so
// a consumer far behind does not hold a read snapshot for long.
const confirmedPage = 500

// ConfirmedEvents is a live stream of the events the sync server has
// confirmed: those at or below the upstream head the store has recorded,
// never pending (not yet accepted) or client-only events. It yields them in
// global order after opts.After, then waits for new confirmations, waking on
// the store's writes and sync status changes, until ctx ends (ctx.Err() is
// yielded once, last) or the store closes (ErrStoreClosed, last).
//
// Confirmed events never change — a rebase only moves pending events — so
// an event is never yielded twice and, with the global seqNum of the last
// handled event kept as the cursor, a consumer restarted with it resumes
// exactly where it stopped. The one exception is a sync server that lost its
// data (a new backend id, see SyncOptions.OnBackendIDMismatch): its global
// sequence numbers start again, and a cursor kept from the old server means
// nothing to the new one. A store without sync confirms nothing: the
// stream waits until ctx ends or the store closes. Events, in contrast, is a
// one-off scan of the whole local log, pending and client-only events
// included.
func (s *Store) ConfirmedEvents(ctx context.Context, opts ConfirmedEventsOptions) iter.Seq2[eventlog.Event, error] {
	return func(yield func(eventlog.Event, error) bool) {
		wake := make(chan struct{}, 1)
		nudge := func() {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
		// Register before the first read so no confirmation between the
		// read and the wait is missed.
		stopObs, err := s.Observe(func(Change) { nudge() })
		if err != nil {
			yield(eventlog.Event{}, err)
			return
		}
		defer stopObs()
		if sig := s.SyncStatusSignal(); sig != nil {
			// A push acknowledged by the server moves the upstream head
			// without writing state; the status signal reports it.
			unsub, err := Subscribe(ctx, s, sig, func(SyncStatus) { nudge() })
			if err != nil {
				yield(eventlog.Event{}, err)
				return
			}
			defer unsub()
		}
		cursor := opts.After
		for {
			batch, upTo, more, err := s.readConfirmed(ctx, cursor, opts.Names)
			if err != nil {
				yield(eventlog.Event{}, err)
				return
			}
			for _, ev := range batch {
				if err := ctx.Err(); err != nil {
					yield(eventlog.Event{}, err)
					return
				}
				if !yield(ev, nil) {
					return
				}
			}
			if upTo > cursor {
				cursor = upTo
			}
			if more {
				continue
			}
			select {
			case <-wake:
			case <-ctx.Done():
				yield(eventlog.Event{}, ctx.Err())
				return
			case <-s.done:
				yield(eventlog.Event{}, ErrStoreClosed)
				return
			}
		}
	}
}

// readConfirmed reads, in one snapshot, the confirmed events with global
// seqNum in (after, upTo], upTo being at most confirmedPage past after, and
// whether more confirmed events follow upTo.
func (s *Store) readConfirmed(ctx context.Context, after int64, names []string) (evs []eventlog.Event, upTo int64, more bool, err error) {
	r, release, err := s.snapshotReader(ctx)
	if err != nil {
		return nil, 0, false, err
	}
	defer release()
	st, err := clientdb.On(r.c).ReadSyncStatus()
	if err != nil {
		return nil, 0, false, fmt.Errorf("read confirmed events: %w", err)
	}
	if st.Head <= after {
		return nil, after, false, nil
	}
	upTo = min(st.Head, after+confirmedPage)
	err = clientdb.On(r.c).ScanRange(eventlog.SeqNum{Global: after}, eventlog.SeqNum{Global: upTo}, func(ev eventlog.Event) error {
		if ev.SeqNum.IsClientOnly() || (len(names) > 0 && !slices.Contains(names, ev.Name)) {
			return nil
		}
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		return nil, 0, false, fmt.Errorf("read confirmed events after %d: %w", after, err)
	}
	return evs, upTo, upTo < st.Head, nil
}
