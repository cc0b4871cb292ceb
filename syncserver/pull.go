package syncserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"go.opentelemetry.io/otel/trace"

	"github.com/livestore-go/livestore/syncproto"
)

// pull is one open SyncWsRpc.Pull stream. Its goroutine sends the events
// after the cursor, one page per client Ack; a live pull then registers with
// the hub, which sends later events without waiting for Acks.
type pull struct {
	pageReader
	conn    *conn
	id      string
	live    bool
	cancel  context.CancelFunc
	acks    chan struct{} // one pending Ack at most
	done    chan struct{} // closed when the goroutine has returned
	unacked bool          // a page was sent and its Ack has not come yet
	span    trace.Span    // the pull's span; live updates link to it

	sentUpTo int64 // highest seqNum sent; guarded by hub.mu once registered
}

// pageReader reads the pages of one pull (of either transport) from storage.
type pageReader struct {
	srv     *Server
	storeID string
	log     *slog.Logger
	ctx     context.Context

	// Encoded bytes and count of the events read so far, to guess how
	// many events the next page holds and read no more than those.
	readBytes, readEvents int
	// sent counts the events put into pages.
	sent int
}

// pageSink is where a pageReader puts the pages it reads.
type pageSink interface {
	// ready returns once the next page may be read: for a WebSocket pull,
	// when the client acknowledged the page before.
	ready() error
	// put sends page; release must be called once it is written or dropped.
	put(page []byte, release func()) error
}

// ready waits for the Ack of the page sent before, if any.
func (p *pull) ready() error {
	if !p.unacked {
		return nil
	}
	if err := p.waitAck(); err != nil {
		return err
	}
	p.unacked = false
	return nil
}

// put queues page; the client's Ack for it lets the next one be read.
func (p *pull) put(page []byte, release func()) error {
	p.conn.sendPullChunk(p.id, page, release)
	p.unacked = true
	return nil
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
	sctx, span := c.srv.tel.startPull(c.ctx, req, c.hub.storeID, transportWS, r.Live, r.Cursor)
	ctx, cancel := context.WithCancel(sctx)
	p := &pull{
		pageReader: pageReader{srv: c.srv, storeID: c.hub.storeID, log: c.log, ctx: ctx},
		conn:       c, id: req.ID, live: r.Live, cancel: cancel, acks: make(chan struct{}, 1), done: make(chan struct{}),
		span: span,
	}
	c.mu.Lock()
	if max := c.srv.opts.MaxPullsPerConnection; len(c.pulls) >= max {
		c.mu.Unlock()
		endPull(ctx, span, 0, errors.New("too many pulls open on the connection"))
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
		endPull(p.ctx, p.span, p.sent, err)
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
	backendID, after, upTo, err := p.start(c.hub, cursor)
	if err != nil {
		return err
	}
	for first := true; ; first = false {
		if after < upTo {
			if _, err := p.sendRange(p, backendID, after, upTo, 0); err != nil {
				return err
			}
			after = upTo
		} else if first {
			if err := p.ready(); err != nil {
				return err
			}
			p.conn.sendChunk(p.id, emptyPage(backendID))
			p.unacked = true
		}
		if !p.live {
			// The stream ends only after the client acknowledged its last page.
			return p.ready()
		}
		ok, head := c.hub.subscribe(p, after)
		if ok {
			return p.ctx.Err()
		}
		upTo = head
	}
}

// start checks a pull's cursor against the store (BackendIDMismatchError
// for another backend's) and returns the store's backend id, the seqNum the
// pull starts after, and the store's head: the pull sends (after, upTo].
func (r *pageReader) start(h *hub, cursor *syncproto.Cursor) (backendID string, after, upTo int64, err error) {
	backendID, err = h.backend(r.ctx)
	if err != nil {
		return "", 0, 0, r.storageError("pull: load store", err)
	}
	if cursor != nil && cursor.BackendID != backendID {
		return "", 0, 0, &syncproto.BackendIDMismatchError{Expected: backendID, Received: cursor.BackendID}
	}
	if cursor != nil {
		after = cursor.EventSequenceNumber
	}
	upTo, err = r.srv.storage.Head(r.ctx, r.storeID)
	r.srv.storageDone(r.ctx, err, false)
	if err != nil {
		return "", 0, 0, r.storageError("pull: read head", err)
	}
	return backendID, after, upTo, nil
}

// pullWindow is the reference's unit of reading (sync-cf's DO_PAGE_SIZE: it
// reads 256 rows at a time and cuts each window into pages of at most 100
// events / 900,000 bytes), so a window's last page may be short: 260 events
// come as 100, 100, 56, 4. Clients see the same pages from both servers, but
// this server reads only the events of the page it is about to send.
const pullWindow = 256

// sendRange puts the events in (after, upTo] into sink as pages with
// MoreKnown page info until the last, which has NoMore; with maxPages > 0 it
// stops after that many pages (the last then says how many remain). Each
// page is read from storage only once sink is ready for it, and holds bytes
// of the server's pull budget until it is written: a WebSocket pull waiting
// for an Ack holds no events. It returns the seqNum of the last event put.
func (r *pageReader) sendRange(sink pageSink, backendID string, after, upTo int64, maxPages int) (int64, error) {
	s := r.srv
	total, err := s.storage.Count(r.ctx, r.storeID, after, upTo)
	s.storageDone(r.ctx, err, false)
	if err != nil {
		return after, r.storageError("pull: count events", err)
	}
	enc, err := syncproto.NewPageEncoder(backendID)
	if err != nil {
		return after, &syncproto.UnknownError{Message: "encode pull page: " + err.Error()}
	}
	var sent int64
	windowLeft := 0
	for pages := 0; after < upTo && (maxPages <= 0 || pages < maxPages); pages++ {
		if err := sink.ready(); err != nil {
			return after, err
		}
		if windowLeft == 0 {
			windowLeft = pullWindow
		}
		held, err := s.pullBudget.acquire(r.ctx, syncproto.MaxPayloadBytes)
		if err != nil {
			return after, err
		}
		items, last, exhausted, err := r.readPage(enc, after, upTo, min(windowLeft, syncproto.MaxEventsPerMessage))
		if err != nil || len(items) == 0 {
			s.pullBudget.release(held)
			return after, err
		}
		sent += int64(len(items))
		windowLeft -= len(items)
		info := syncproto.PageInfo{Kind: syncproto.NoMore}
		if remaining := total - sent; remaining > 0 {
			info = syncproto.PageInfo{Kind: syncproto.MoreKnown, Remaining: remaining}
		}
		page := enc.Page(items, info)
		if len(page) < held {
			s.pullBudget.release(held - len(page))
			held = len(page)
		}
		if err := sink.put(page, func() { s.pullBudget.release(held) }); err != nil {
			return after, err
		}
		s.metrics.eventsSent.Add(float64(len(items)))
		s.tel.eventsOut(r.ctx, r.storeID, len(items))
		r.sent += len(items)
		after = last
		if exhausted {
			break
		}
	}
	return after, nil
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
func (r *pageReader) readPage(enc *syncproto.PageEncoder, after, upTo int64, maxEvents int) (items [][]byte, last int64, exhausted bool, err error) {
	s := r.srv
	size := enc.Overhead()
	for len(items) < maxEvents {
		n := maxEvents - len(items)
		if r.readEvents == 0 {
			n = min(n, firstRead)
		} else if avg := r.readBytes / r.readEvents; avg > 0 {
			n = min(n, (syncproto.MaxPayloadBytes-size)/avg+1)
		}
		events, err := s.storage.Read(r.ctx, r.storeID, after, upTo, n)
		s.storageDone(r.ctx, err, false)
		if err != nil {
			return nil, 0, false, r.storageError("pull: read events", err)
		}
		for _, ev := range events {
			item, err := enc.Item(&ev.Event, ev.CreatedAt)
			if err != nil {
				return nil, 0, false, &syncproto.UnknownError{Message: "encode pull page: " + err.Error()}
			}
			r.readBytes += len(item)
			r.readEvents++
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

func (p *pull) waitAck() error {
	select {
	case <-p.acks:
		return nil
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
}

// storageError is the answer to a failed storage operation (what names it).
func (r *pageReader) storageError(what string, err error) error {
	if r.ctx.Err() != nil {
		return r.ctx.Err()
	}
	return r.srv.storageFailed(r.ctx, r.log, what, err, false)
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

// emptyPage is the page of a pull with nothing to send: no events, NoMore.
func emptyPage(backendID string) []byte {
	enc, err := syncproto.NewPageEncoder(backendID)
	if err != nil {
		return nil
	}
	return enc.Page(nil, syncproto.PageInfo{Kind: syncproto.NoMore})
}
