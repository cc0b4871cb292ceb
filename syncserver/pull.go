package syncserver

import (
	"context"
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

	sentUpTo int64 // highest seqNum sent; guarded by hub.mu once registered
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
	c.srv.metrics.pulls.WithLabelValues(strconv.FormatBool(r.Live)).Inc()
	ctx, cancel := context.WithCancel(c.ctx)
	p := &pull{conn: c, id: req.ID, live: r.Live, ctx: ctx, cancel: cancel, acks: make(chan struct{}, 1), done: make(chan struct{})}
	c.mu.Lock()
	c.pulls[req.ID] = p
	c.mu.Unlock()
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
		return p.storageError(err)
	}
	if cursor != nil && cursor.BackendID != backendID {
		return &syncproto.BackendIDMismatchError{Expected: backendID, Received: cursor.BackendID}
	}
	var after int64
	if cursor != nil {
		after = cursor.EventSequenceNumber
	}
	upTo, err := c.srv.storage.Head(p.ctx, c.hub.storeID)
	if err != nil {
		return p.storageError(err)
	}
	unacked := false
	for first := true; ; first = false {
		if after < upTo {
			if unacked, err = p.sendRange(backendID, after, upTo, unacked); err != nil {
				return err
			}
			after = upTo
		} else if first {
			if err := p.sendPage(emptyPage(backendID), unacked); err != nil {
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

// pullWindow is how many events sendRange reads at a time. Each window is cut
// into pages of at most 100 events / 900,000 bytes, so a window's last page
// may be short: the reference (sync-cf's DO_PAGE_SIZE) reads 256 rows at a
// time, and clients see the same pages from both servers (260 events come as
// 100, 100, 56, 4).
const pullWindow = 256

// sendRange sends the events in (after, upTo] as pages with MoreKnown page
// info until the last, which has NoMore.
func (p *pull) sendRange(backendID string, after, upTo int64, unacked bool) (bool, error) {
	c := p.conn
	total, err := c.srv.storage.Count(p.ctx, c.hub.storeID, after, upTo)
	if err != nil {
		return unacked, p.storageError(err)
	}
	sent := int64(0)
	for after < upTo {
		events, err := c.srv.storage.Read(p.ctx, c.hub.storeID, after, upTo, pullWindow)
		if err != nil {
			return unacked, p.storageError(err)
		}
		if len(events) == 0 {
			break
		}
		base := sent
		pages, err := encodePages(events, backendID, func(n, _ int) syncproto.PageInfo {
			if remaining := total - base - int64(n); remaining > 0 {
				return syncproto.PageInfo{Kind: syncproto.MoreKnown, Remaining: remaining}
			}
			return syncproto.PageInfo{Kind: syncproto.NoMore}
		})
		if err != nil {
			return unacked, &syncproto.UnknownError{Message: "encode pull page: " + err.Error()}
		}
		for _, page := range pages {
			if err := p.sendPage(page, unacked); err != nil {
				return unacked, err
			}
			unacked = true
		}
		sent += int64(len(events))
		after = events[len(events)-1].SeqNum
		c.srv.metrics.eventsSent.Add(float64(len(events)))
	}
	return unacked, nil
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

func (p *pull) storageError(err error) error {
	if p.ctx.Err() != nil {
		return p.ctx.Err()
	}
	p.conn.log.Error("pull: storage", "err", err)
	return &syncproto.UnknownError{Message: "storage unavailable"}
}

func emptyPage(backendID string) []byte {
	b, _ := syncproto.Marshal(syncproto.PullResponse{Batch: []syncproto.PullItem{}, PageInfo: syncproto.PageInfo{Kind: syncproto.NoMore}, BackendID: backendID})
	return b
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
