package syncserver

import (
	"slices"

	"github.com/livestore-go/livestore/syncproto"
)

// Live pages that queue up for one client (a writer behind a fast
// pusher) go out as one page: one WebSocket message and one Ack instead of
// one per push, which matters when many pulls each get many pages a
// second. A page still holds at most syncproto.MaxEventsPerMessage events
// and syncproto.MaxPayloadBytes bytes, as a pull page always does.

// sendLiveChunk is sendChunk for a live page of events events, which the
// writer may merge with the live pages queued after it for the same pull.
func (c *conn) sendLiveChunk(id string, page []byte, events int) {
	c.out.push(outMsg{requestID: id, page: page, events: events})
}

// liveRun is how many of msgs, from the first on, can go out as one page:
// consecutive live pages of one pull that fit one page together.
func liveRun(msgs []outMsg) int {
	first := msgs[0]
	if first.events == 0 {
		return 1
	}
	events, size := first.events, len(first.page)
	n := 1
	for _, m := range msgs[1:] {
		if m.events == 0 || m.requestID != first.requestID {
			break
		}
		// The merged page loses one page's envelope per page merged,
		// so the sum of the pages' sizes bounds it.
		if events+m.events > syncproto.MaxEventsPerMessage || size+len(m.page) > syncproto.MaxPayloadBytes {
			break
		}
		events, size = events+m.events, size+len(m.page)
		n++
	}
	return n
}

// appendChunk appends to buf the Chunk that sends msgs[0] (a page), merged
// with as many of the live pages after it as liveRun allows, and returns
// it with how many of msgs it sends. pages is scratch space, returned for
// reuse.
func appendChunk(buf []byte, pages [][]byte, msgs []outMsg) (chunk []byte, scratch [][]byte, n int) {
	m := msgs[0]
	n = liveRun(msgs)
	if n == 1 {
		return syncproto.AppendChunk(buf, m.requestID, m.page), pages, 1
	}
	pages, size := pages[:0], 64+len(m.requestID)
	for _, m := range msgs[:n] {
		pages = append(pages, m.page)
		size += len(m.page)
	}
	chunk, ok := syncproto.AppendMergedChunk(slices.Grow(buf, size), m.requestID, pages)
	clear(pages) // keep no page alive
	if !ok {
		// Not a page merging understands: send the first alone.
		return syncproto.AppendChunk(buf, m.requestID, m.page), pages, 1
	}
	return chunk, pages, n
}
