package syncserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/livestore-go/livestore/internal/heartbeat"
	"github.com/livestore-go/livestore/syncproto"
)

// conn is one client WebSocket. Its reader runs in the HTTP handler's
// goroutine and handles messages one at a time (pushes included, so a
// connection's pushes keep their order); one writer goroutine sends queued
// messages; each pull runs in its own goroutine until it has caught up.
type conn struct {
	srv    *Server
	ws     *websocket.Conn
	hub    *hub
	log    *slog.Logger
	out    *outbox
	access Access

	ctx    context.Context // ends when the connection ends
	cancel context.CancelFunc
	wg     sync.WaitGroup // writer and pull goroutines

	mu     sync.Mutex       // guards the three fields below; last in the lock order (see hub)
	pulls  map[string]*pull // open pulls by request id
	kill   *time.Timer      // set when the client fell too far behind
	expiry *time.Timer      // set when the connection's access expires

	stateMu     sync.Mutex // guards the fields below; held alone
	busy        bool       // handling a message
	draining    bool       // closing: finish the current message, then close with closeCode
	closeCode   websocket.StatusCode
	closeReason string
}

func newConn(s *Server, ws *websocket.Conn, h *hub, id uint64, access Access) *conn {
	ctx, cancel := context.WithCancel(s.ctx)
	c := &conn{
		srv:    s,
		ws:     ws,
		hub:    h,
		log:    s.log.With("conn", id, "store", h.storeID),
		access: access,
		ctx:    ctx,
		cancel: cancel,
		pulls:  make(map[string]*pull),
	}
	c.out = newOutbox(s.opts.MaxPendingBytes, c.overflowed)
	// Messages over the limit are read to the end and answered; only
	// messages far beyond it are cut off by the WebSocket library.
	ws.SetReadLimit(int64(max(4*s.opts.MaxMessageBytes, 16<<20)))
	return c
}

// run serves the connection until it ends, then stops everything it started.
func (c *conn) run() {
	c.log.Debug("connected")
	c.wg.Add(1)
	go c.writeLoop()
	if every := c.srv.opts.PingInterval; every > 0 {
		c.wg.Add(1)
		go c.pingLoop(every)
	}
	if exp := c.access.Expires; !exp.IsZero() {
		c.mu.Lock()
		c.expiry = time.AfterFunc(time.Until(exp), c.expired)
		c.mu.Unlock()
	}
	// Reads and writes run without a context of their own (one per message
	// costs a timer or a callback registration each, which adds up over
	// thousands of live pulls): the connection's end closes the socket
	// instead, which ends them.
	stopClosing := context.AfterFunc(c.ctx, func() { _ = c.ws.CloseNow() })
	defer stopClosing()
	err := c.readLoop()
	c.cancel()
	c.stopPulls()
	c.out.close()
	c.wg.Wait()
	c.mu.Lock()
	if c.kill != nil {
		c.kill.Stop()
	}
	if c.expiry != nil {
		c.expiry.Stop()
	}
	c.mu.Unlock()
	_ = c.ws.CloseNow()
	c.log.Debug("disconnected", "reason", err)
}

// keepReadBuffer is the largest read buffer a connection keeps between
// messages. Clients send small messages but for pushes of large batches; an
// idle connection must not hold the buffer of its largest message.
const keepReadBuffer = 64 << 10

func (c *conn) readLoop() error {
	limit := c.srv.opts.MaxMessageBytes
	buf := new(bytes.Buffer)
	for {
		if buf.Cap() > keepReadBuffer {
			buf = new(bytes.Buffer)
		}
		_, r, err := c.ws.Reader(context.Background()) // see run
		if err != nil {
			if c.ctx.Err() != nil {
				return c.ctx.Err()
			}
			return err
		}
		buf.Reset()
		n, err := io.Copy(buf, io.LimitReader(r, int64(limit)+1))
		if err != nil {
			return err
		}
		if n > int64(limit) {
			rest, err := io.Copy(io.Discard, r)
			if err != nil {
				return err
			}
			c.handleOversize(buf.Bytes(), n+rest)
			continue
		}
		c.handle(buf.Bytes())
	}
}

// pingLoop sends a WebSocket ping every interval and aborts the connection
// when its pong does not arrive within the following interval. The pong is
// read by readLoop, which always runs.
func (c *conn) pingLoop(every time.Duration) {
	defer c.wg.Done()
	err := heartbeat.Run(c.ctx, every, c.ws.Ping)
	if err != nil && c.ctx.Err() == nil {
		c.srv.metrics.pingTimeouts.Inc()
		c.log.Info("client did not answer a ping; disconnecting", "after", every, "err", err)
		c.abort()
	}
}

// begin marks the connection busy; false means it is draining and the
// message must be dropped.
func (c *conn) begin() bool {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if c.draining {
		return false
	}
	c.busy = true
	return true
}

func (c *conn) end() {
	c.stateMu.Lock()
	c.busy = false
	draining, code, reason := c.draining, c.closeCode, c.closeReason
	c.stateMu.Unlock()
	if draining {
		c.out.closeAfterFlush(code, reason)
	}
}

// drain closes the connection once the message being handled (if any) is
// answered. It does not block.
func (c *conn) drain() {
	c.closeAfterMessage(websocket.StatusGoingAway, "server is shutting down")
}

// expired closes the connection when its access ends: the client must
// connect again with new credentials. A message being handled is answered
// first; later messages are not handled.
func (c *conn) expired() {
	c.log.Info("credentials expired; disconnecting")
	c.closeAfterMessage(websocket.StatusPolicyViolation, "credentials expired")
}

// closeAfterMessage makes the connection handle no more messages and close
// with code and reason once the message being handled (if any) is answered
// and the queued messages are sent. The first call decides the code.
func (c *conn) closeAfterMessage(code websocket.StatusCode, reason string) {
	c.stateMu.Lock()
	if c.draining {
		c.stateMu.Unlock()
		return
	}
	c.draining, c.closeCode, c.closeReason = true, code, reason
	busy := c.busy
	c.stateMu.Unlock()
	if !busy {
		c.out.closeAfterFlush(code, reason)
	}
}

// abort ends the connection at once.
func (c *conn) abort() {
	c.cancel()
	_ = c.ws.CloseNow()
}

func (c *conn) handle(data []byte) {
	if !c.begin() {
		return
	}
	defer c.end()
	msg, err := syncproto.DecodeClientMessage(data)
	if err != nil {
		c.protocolError(err)
		return
	}
	switch m := msg.(type) {
	case *syncproto.Request:
		m.ID = canonicalRequestID(m.ID)
		c.handleRequest(m)
	case *syncproto.Ack:
		c.mu.Lock()
		p := c.pulls[canonicalRequestID(m.RequestID)]
		c.mu.Unlock()
		if p != nil {
			p.ack()
		}
	case *syncproto.Interrupt:
		c.interrupt(canonicalRequestID(m.RequestID))
	case *syncproto.Ping:
		c.send(&syncproto.Pong{})
	case *syncproto.Eof:
		// The client sends nothing more; its open requests still run.
	}
}

// protocolError answers an undecodable message (see protocolErrorAnswer).
func (c *conn) protocolError(err error) {
	c.srv.metrics.protocolErrors.Inc()
	c.log.Info("protocol error", "err", err)
	c.send(protocolErrorAnswer(err))
}

// protocolErrorAnswer is the answer to an undecodable message: an Exit with
// a defect for the request it names, if any, else a Defect, as the
// reference answers.
func protocolErrorAnswer(err error) syncproto.ServerMessage {
	var me *syncproto.MessageError
	if !errors.As(err, &me) {
		me = &syncproto.MessageError{Err: err}
	}
	switch {
	case me.Syntax:
		return &syncproto.Defect{Defect: syncproto.EncodeDefect("SyntaxError", me.Err.Error())}
	case me.RequestID != "":
		return syncproto.ExitDie(canonicalRequestID(me.RequestID), me.Err.Error())
	case me.Tag != "":
		return syncproto.StringDefect("Unknown request tag: " + me.Tag)
	default:
		return syncproto.StringDefect(me.Err.Error())
	}
}

// handleOversize answers a message over MaxMessageBytes (see
// oversizeAnswer).
func (c *conn) handleOversize(prefix []byte, size int64) {
	if !c.begin() {
		return
	}
	defer c.end()
	c.log.Info("oversize message", "bytes", size)
	c.send(c.srv.oversizeAnswer(prefix, fmt.Sprintf("message of %d bytes exceeds the server's limit of %d bytes", size, c.srv.opts.MaxMessageBytes)))
}

// oversizeAnswer is the answer to a message too large to decode: if its
// beginning names a request, that request fails with an UnknownError saying
// msg; else a Defect says it.
func (s *Server) oversizeAnswer(prefix []byte, msg string) syncproto.ServerMessage {
	s.metrics.protocolErrors.Inc()
	if id, ok := requestIDPrefix(prefix); ok {
		s.metrics.pushes.WithLabelValues(pushRejected).Inc()
		return syncproto.ExitFail(id, &syncproto.UnknownError{Message: msg})
	}
	return syncproto.StringDefect(msg)
}

// requestIDPrefix finds the id of a Request envelope in the beginning of a
// message that is too large to decode: clients write "_tag" and "id" first.
func requestIDPrefix(b []byte) (string, bool) {
	if len(b) > 512 {
		b = b[:512]
	}
	if !bytes.Contains(b, []byte(`"_tag":"Request"`)) {
		return "", false
	}
	i := bytes.Index(b, []byte(`"id":"`))
	if i < 0 {
		return "", false
	}
	rest := b[i+len(`"id":"`):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return "", false
	}
	id := string(rest[:j])
	return id, syncproto.ValidRequestID(id)
}

func (c *conn) handleRequest(req *syncproto.Request) {
	if bad := c.srv.checkRequestID(req.ID); bad != nil {
		c.send(bad)
		return
	}
	c.mu.Lock()
	_, inUse := c.pulls[req.ID]
	c.mu.Unlock()
	if inUse {
		c.srv.metrics.protocolErrors.Inc()
		c.send(syncproto.ExitDie(req.ID, fmt.Sprintf("request id %q is already in use by an open pull", req.ID)))
		return
	}
	switch req.Tag {
	case syncproto.TagPush:
		if c.access.ReadOnly {
			c.srv.metrics.pushes.WithLabelValues(pushRejected).Inc()
			c.send(syncproto.ExitFail(req.ID, &syncproto.UnknownError{Message: "unauthorized: this connection may only pull"}))
			return
		}
		c.push(req)
	case syncproto.TagPull:
		c.startPull(req)
	default:
		// The reference answers with a Defect for the connection, not an
		// Exit for the request.
		c.srv.metrics.protocolErrors.Inc()
		c.send(syncproto.StringDefect("Unknown request tag: " + req.Tag))
	}
}

// checkRequestID returns the answer to a request whose id is not a decimal
// integer string, or nil if the id is one. (The reference's RPC server dies
// on such ids and never answers.)
func (s *Server) checkRequestID(id string) *syncproto.Exit {
	if syncproto.ValidRequestID(id) {
		return nil
	}
	s.metrics.protocolErrors.Inc()
	return syncproto.ExitDie(id, fmt.Sprintf("invalid request id %q: must be a decimal integer string such as \"0\"", id))
}

// canonicalRequestID is the form in which the reference echoes a request id:
// it parses ids as big integers, so "007" is request "7" (in its answers and
// for Acks and Interrupts) and "-0" is "0". Ids that are not decimal integer
// strings are returned unchanged.
func canonicalRequestID(id string) string {
	if !syncproto.ValidRequestID(id) {
		return id
	}
	neg := id[0] == '-'
	digits := strings.TrimLeft(strings.TrimPrefix(id, "-"), "0")
	switch {
	case digits == "":
		return "0"
	case neg:
		return "-" + digits
	case len(digits) == len(id):
		return id
	default:
		return digits
	}
}

// send queues a message for the client.
func (c *conn) send(msg any) {
	b, err := syncproto.Marshal(msg)
	if err != nil {
		c.log.Error("encode message", "err", err)
		return
	}
	c.sendRaw(b)
}

func (c *conn) sendRaw(b []byte) {
	c.out.push(outMsg{data: b})
}

// sendChunk queues a Chunk of one encoded page for request id. The page is
// shared, not copied: live updates send one page to many clients.
func (c *conn) sendChunk(id string, page []byte) {
	c.out.push(outMsg{requestID: id, page: page})
}

// sendPullChunk is sendChunk for a page that holds bytes of the pull
// budget: release is called once the page is written or dropped.
func (c *conn) sendPullChunk(id string, page []byte, release func()) {
	c.out.push(outMsg{requestID: id, page: page, release: release})
}

// overflowed is called (once, with the outbox locked) when the client's
// queue passed MaxPendingBytes. The writer sends a 1008 close after the
// message it is writing; if that write does not finish soon, the client is
// not reading at all and the connection is cut.
func (c *conn) overflowed() {
	c.log.Warn("client is not reading fast enough; disconnecting", "limit", c.srv.opts.MaxPendingBytes)
	c.mu.Lock()
	c.kill = time.AfterFunc(2*time.Second, c.cancel)
	c.mu.Unlock()
}

func (c *conn) writeLoop() {
	defer c.wg.Done()
	var buf []byte     // reused to assemble Chunks
	var pages [][]byte // reused to merge live pages
	// A write that does not finish within WriteTimeout closes the socket,
	// which fails the write.
	watchdog := time.AfterFunc(time.Hour, func() { _ = c.ws.CloseNow() })
	watchdog.Stop()
	defer watchdog.Stop()
	for {
		msgs, closeCode, closeReason, ok := c.out.take(c.ctx)
		for i := 0; i < len(msgs); {
			data, n := msgs[i].data, 1
			if msgs[i].page != nil {
				buf, pages, n = appendChunk(buf[:0], pages, msgs[i:])
				data = buf
			}
			watchdog.Reset(c.srv.opts.WriteTimeout)
			err := c.ws.Write(context.Background(), websocket.MessageText, data) // see run
			watchdog.Stop()
			releaseAll(msgs[i : i+n])
			i += n
			if err != nil {
				releaseAll(msgs[i:])
				if c.ctx.Err() == nil {
					c.log.Info("write failed; disconnecting", "err", err)
				}
				c.cancel()
				return
			}
		}
		if cap(buf) > keepReadBuffer {
			buf = nil // an idle connection keeps no page-sized buffer
		}
		if !ok {
			if closeCode != 0 {
				// Close waits for the client's close frame, which the reader
				// receives; then the reader ends the connection.
				_ = c.ws.Close(closeCode, closeReason)
			}
			return
		}
	}
}

// outbox is the queue of messages for one client. It never blocks its
// producers: a client whose queue exceeds the limit is disconnected.
type outbox struct {
	onOverflow  func()     // called with mu held: takes conn.mu (see hub for the lock order)
	mu          sync.Mutex // guards the fields below
	queue       []outMsg
	bytes       int
	limit       int
	closed      bool
	closeCode   websocket.StatusCode
	closeReason string
	wake        chan struct{}
}

func newOutbox(limit int, onOverflow func()) *outbox {
	return &outbox{limit: limit, onOverflow: onOverflow, wake: make(chan struct{}, 1)}
}

// outMsg is a queued message: data, or a Chunk of page for requestID.
type outMsg struct {
	data      []byte
	requestID string
	page      []byte
	events    int    // of a live page, which may merge with the next (see liveRun); else 0
	release   func() // if set, called once when the message is written or dropped
}

func (m outMsg) done() {
	if m.release != nil {
		m.release()
	}
}

func releaseAll(msgs []outMsg) {
	for _, m := range msgs {
		m.done()
	}
}

func (m outMsg) size() int {
	if m.page != nil {
		return len(m.page) + len(m.requestID) + 48
	}
	return len(m.data)
}

// push queues m; false if the outbox is closed or just overflowed.
func (o *outbox) push(m outMsg) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		m.done()
		return false
	}
	n := m.size()
	if o.bytes+n > o.limit && len(o.queue) > 0 {
		m.done()
		releaseAll(o.queue)
		o.closed = true
		o.queue, o.bytes = nil, 0
		o.closeCode, o.closeReason = websocket.StatusPolicyViolation, "client is not reading fast enough"
		o.signal()
		o.onOverflow()
		return false
	}
	o.queue = append(o.queue, m)
	o.bytes += n
	o.signal()
	return true
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// closeAfterFlush makes the writer send what is queued, then close the
// WebSocket with code and reason.
func (o *outbox) closeAfterFlush(code websocket.StatusCode, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return
	}
	o.closed, o.closeCode, o.closeReason = true, code, reason
	o.signal()
}

// close stops the writer without a close frame (the connection is gone).
// Messages still queued are dropped.
func (o *outbox) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	releaseAll(o.queue)
	o.queue, o.bytes = nil, 0
	o.signal()
}

// take waits for queued messages. ok is false when the outbox is closed and
// everything queued has been returned; closeCode is then the close status to
// send (0 for none).
func (o *outbox) take(ctx context.Context) (msgs []outMsg, closeCode websocket.StatusCode, closeReason string, ok bool) {
	for {
		o.mu.Lock()
		if len(o.queue) > 0 {
			msgs, o.queue, o.bytes = o.queue, nil, 0
			o.mu.Unlock()
			return msgs, 0, "", true
		}
		if o.closed {
			code, reason := o.closeCode, o.closeReason
			o.mu.Unlock()
			return nil, code, reason, false
		}
		o.mu.Unlock()
		select {
		case <-o.wake:
		case <-ctx.Done():
			return nil, 0, "", false
		}
	}
}

// isoNow is the createdAt of a batch stored now.
func isoNow() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
