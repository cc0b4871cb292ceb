package syncserver

import (
	"context"
	"fmt"
	"strconv"

	"github.com/livestore-go/livestore/syncproto"
)

// pull is one open SyncWsRpc.Pull stream. Its goroutine sends the events
// after the cursor, one page per client Ack; a live pull then registers with
// the hub, which sends later events without waiting for Acks.
type pull struct {
	conn   *conn
	id     string
	live   bool
	ctx    context.Context
	cancel context.CancelFunc
	acks   chan struct{} // one pending Ack at most
	done   chan struct{} // closed when the goroutine has returned

	// Encoded bytes and count of the events read so far, to guess how
	// many events the next page holds and read no more than those.
	readBytes, readEvents int
}

func (p *pull) ack() {
	select {
	case p.acks <- struct{}{}:
	default:
	}
}

func (c *conn) startPull(req *syncproto.Request) {
	r, err := syncproto.DecodePullRequest(req.Payload)
	if err != nil {
		c.send(syncproto.ExitDie(req.ID, err.Error()))
		return
	}
	// As in the reference, the connection's URL names the store; the
	// payload's storeId is not checked.
	ctx, cancel := context.WithCancel(c.ctx)
	p := &pull{conn: c, id: req.ID, live: r.Live, ctx: ctx, cancel: cancel, acks: make(chan struct{}, 1), done: make(chan struct{})}
	c.mu.Lock()
	if max := c.srv.opts.MaxPullsPerConnection; len(c.pulls) >= max {
		c.mu.Unlock()
		cancel()
		c.srv.metrics.pullsRefused.Inc()
		c.log.Info("pull refused: too many pulls open on the connection", "limit", max)
		c.send(syncproto.ExitFail(req.ID, &syncproto.UnknownError{Message: fmt.Sprintf("too many pulls open on this connection (limit %d); interrupt one first", max)}))
		return
	}
	c.pulls[req.ID] = p
	c.mu.Unlock()
	c.srv.metrics.pulls.WithLabelValues(strconv.FormatBool(r.Live)).Inc()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(p.done)
		err := p.run(r.Cursor)
		if err == nil && p.live {
			return // registered; stays open until Interrupt or disconnect
		}
		if p.ctx.Err() != nil {
			return // interrupted or disconnected: whoever ended it answers
		}
		if !c.forget(p) {
			return
		}
		if err != nil {
			c.send(syncproto.ExitFail(p.id, err))
			return
		}
		c.send(syncproto.ExitSuccess(p.id, nil))
	}()
}

// forget removes p from the open pulls; false if someone else already did.
func (c *conn) forget(p *pull) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pulls[p.id] != p {
		return false
	}
	delete(c.pulls, p.id)
	return true
}

// run sends the backlog and, for a live pull, registers it. A returned error
// is the failure to answer (a tagged protocol error or an UnknownError).
func (p *pull) run(cursor *syncproto.Cursor) error {
	c := p.conn
	backendID, err := c.hub.backend(p.ctx)
	if err != nil {
		return p.storageError("pull: load store", err)
	}
	if cursor != nil && cursor.BackendID != backendID {
		return &syncproto.BackendIDMismatchError{Expected: backendID, Received: cursor.BackendID}
	}
	enc, err := syncproto.NewPageEncoder(backendID)
	if err != nil {
		return &syncproto.UnknownError{Message: "encode pull page: " + err.Error()}
	}
	var after int64
	if cursor != nil {
		after = cursor.EventSequenceNumber
	}
	upTo, err := c.srv.storage.Head(p.ctx, c.hub.storeID)
	c.srv.storageDone(p.ctx, err, false)
	if err != nil {
		return p.storageError("pull: read head", err)
	}
	unacked := false
	for first := true; ; first = false {
		if after < upTo {
			if unacked, err = p.sendRange(enc, after, upTo, unacked); err != nil {
				return err
			}
			after = upTo
		} else if first {
			if err := p.sendPage(enc.Page(nil, syncproto.PageInfo{Kind: syncproto.NoMore}), unacked); err != nil {
				return err
			}
			unacked = true
		}
		if !p.live {
			// The stream ends only after the client acknowledged its last page.
			return p.waitAck()
		}
		ok, head := c.hub.subscribe(p, after)
		if ok {
			return p.ctx.Err()
		}
		upTo = head
	}
}

// pullWindow is the reference's unit of reading (sync-cf's DO_PAGE_SIZE: it
// reads 256 rows at a time and cuts each window into pages of at most 100
// events / 900,000 bytes), so a window's last page may be short: 260 events
// come as 100, 100, 56, 4. Clients see the same pages from both servers, but
// this server reads only the events of the page it is about to send.
const pullWindow = 256

// sendRange sends the events in (after, upTo] as pages with MoreKnown page
// info until the last, which has NoMore. Each page is read from storage
// only after the previous one was acknowledged, and holds bytes of the
// server's pull budget until it is written to the socket: an unacknowledged
// pull holds no events.
func (p *pull) sendRange(enc *syncproto.PageEncoder, after, upTo int64, unacked bool) (bool, error) {
	c := p.conn
	total, err := c.srv.storage.Count(p.ctx, c.hub.storeID, after, upTo)
	c.srv.storageDone(p.ctx, err, false)
	if err != nil {
		return unacked, p.storageError("pull: count events", err)
	}
	var sent int64
	windowLeft := 0
	for after < upTo {
		if unacked {
			if err := p.waitAck(); err != nil {
				return unacked, err
			}
		}
		if windowLeft == 0 {
			windowLeft = pullWindow
		}
		held, err := c.srv.pullBudget.acquire(p.ctx, syncproto.MaxPayloadBytes)
		if err != nil {
			return unacked, err
		}
		items, last, exhausted, err := p.readPage(enc, after, upTo, min(windowLeft, syncproto.MaxEventsPerMessage))
		if err != nil || len(items) == 0 {
			c.srv.pullBudget.release(held)
			return unacked, err
		}
		sent += int64(len(items))
		windowLeft -= len(items)
		info := syncproto.PageInfo{Kind: syncproto.NoMore}
		if remaining := total - sent; remaining > 0 {
			info = syncproto.PageInfo{Kind: syncproto.MoreKnown, Remaining: remaining}
		}
		page := enc.Page(items, info)
		if len(page) < held {
			c.srv.pullBudget.release(held - len(page))
			held = len(page)
		}
		c.sendPullChunk(p.id, page, func() { c.srv.pullBudget.release(held) })
		unacked = true
		c.srv.metrics.eventsSent.Add(float64(len(items)))
		after = last
		if exhausted {
			break
		}
	}
	return unacked, nil
}

// firstRead is how many events a pull reads for its first page, before it
// knows how large its events are: few, in case they are large.
const firstRead = 8

// readPage reads and encodes the events of the next page: at most
// maxEvents events after after (up to upTo), cut greedily at the byte limit
// as syncproto.Split cuts. It reads about as many events as it guesses fit
// from the size of the events read so far, so that large events are not read
// by the hundred only to be dropped. The guess can be wrong once: large
// events after many small ones are read by up to 100 (the Storage reads by
// count, not by bytes), and dropped at once. exhausted reports that no
// events remain in (last, upTo].
func (p *pull) readPage(enc *syncproto.PageEncoder, after, upTo int64, maxEvents int) (items [][]byte, last int64, exhausted bool, err error) {
	c := p.conn
	size := enc.Overhead()
	for len(items) < maxEvents {
		n := maxEvents - len(items)
		if p.readEvents == 0 {
			n = min(n, firstRead)
		} else if avg := p.readBytes / p.readEvents; avg > 0 {
			n = min(n, (syncproto.MaxPayloadBytes-size)/avg+1)
		}
		events, err := c.srv.storage.Read(p.ctx, c.hub.storeID, after, upTo, n)
		c.srv.storageDone(p.ctx, err, false)
		if err != nil {
			return nil, 0, false, p.storageError("pull: read events", err)
		}
		for _, ev := range events {
			item, err := enc.Item(&ev.Event, ev.CreatedAt)
			if err != nil {
				return nil, 0, false, &syncproto.UnknownError{Message: "encode pull page: " + err.Error()}
			}
			p.readBytes += len(item)
			p.readEvents++
			add := len(item)
			if len(items) > 0 {
				add++ // comma
			}
			if size+add > syncproto.MaxPayloadBytes {
				if len(items) == 0 {
					return nil, 0, false, &syncproto.UnknownError{Message: fmt.Sprintf("encode pull page: event %d is too large for a pull page (%d bytes, limit %d)", ev.SeqNum, size+add, syncproto.MaxPayloadBytes)}
				}
				return items, last, false, nil
			}
			items = append(items, item)
			size += add
			last = ev.SeqNum
		}
		if len(events) < n {
			return items, last, true, nil
		}
		after = last
	}
	return items, last, false, nil
}

// sendPage waits for the Ack of the previous page, if one is outstanding,
// then queues page.
func (p *pull) sendPage(page []byte, unacked bool) error {
	if unacked {
		if err := p.waitAck(); err != nil {
			return err
		}
	}
	p.conn.sendChunk(p.id, page)
	return nil
}

func (p *pull) waitAck() error {
	select {
	case <-p.acks:
		return nil
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
}

// storageError is the answer to a failed storage operation (what names it).
func (p *pull) storageError(what string, err error) error {
	if p.ctx.Err() != nil {
		return p.ctx.Err()
	}
	return p.conn.srv.storageFailed(p.ctx, p.conn.log, what, err, false)
}

// interrupt ends an open pull and answers with the interruption Exit, as the
// reference does. Like the reference, it ignores ids of no open request.
func (c *conn) interrupt(id string) {
	c.mu.Lock()
	p := c.pulls[id]
	delete(c.pulls, id)
	c.mu.Unlock()
	if p == nil {
		return
	}
	p.cancel()
	<-p.done
	c.hub.unsubscribe(p)
	c.send(syncproto.ExitInterrupted(id))
}

// stopPulls ends every pull of a closing connection.
func (c *conn) stopPulls() {
	c.mu.Lock()
	pulls := make([]*pull, 0, len(c.pulls))
	for _, p := range c.pulls {
		pulls = append(pulls, p)
	}
	clear(c.pulls)
	c.mu.Unlock()
	for _, p := range pulls {
		p.cancel()
		c.hub.unsubscribe(p)
	}
}
