package livestore

import (
	"context"
	"iter"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/clientdb"
)

// Events iterates over the committed events after `after` (eventlog.Root for
// all), in log order. It reads in pages, so a long iteration does not hold a
// read snapshot; events committed while iterating are included when they
// sort after the last one yielded. An error (including ctx's) is yielded
// once, as the last element.
//
// Events is a one-off scan of the local log: it includes pending events (not
// yet accepted by the sync server, so a rebase may still renumber them) and
// client-only ones, and it ends at the log's head. To react to what the sync
// server has confirmed, live and from a durable cursor, use ConfirmedEvents.
func (s *Store) Events(ctx context.Context, after eventlog.SeqNum) iter.Seq2[eventlog.Event, error] {
	const page = 500
	return func(yield func(eventlog.Event, error) bool) {
		cursor := after
		for {
			var batch []eventlog.Event
			c, release, err := s.reader(ctx)
			if err != nil {
				yield(eventlog.Event{}, err)
				return
			}
			err = clientdb.On(c).Scan(cursor, page, func(ev eventlog.Event) error {
				batch = append(batch, ev)
				return nil
			})
			release()
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
				cursor = ev.SeqNum
			}
			if len(batch) < page {
				return
			}
		}
	}
}
