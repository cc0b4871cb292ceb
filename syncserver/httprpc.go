package syncserver

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

// The HTTP transport (transport=http) of @livestore/sync-cf: each request is
// a POST whose body is one Effect RPC message, answered with the JSON array
// of the server's messages for it. A pull's pages all come in its answer
// (up to MaxHTTPPullPages), followed by its Exit; a live pull is the client
// asking again, so a poller holds nothing on the server between requests.

// httpRequest is one request of the HTTP transport being served; Shutdown
// cancels it when its time is up.
type httpRequest struct{ cancel context.CancelFunc }

// serveHTTPRPC serves one request of the HTTP transport. It is admitted like
// a WebSocket connection (admitSync: Origin, limits, Auth) and counts as one
// under MaxConnections while it is served.
func (s *Server) serveHTTPRPC(w http.ResponseWriter, r *http.Request, storeID string, payload json.RawMessage) {
	if r.Method == http.MethodOptions {
		s.servePreflight(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		refuse(w, r, "the HTTP transport takes POST requests", http.StatusMethodNotAllowed)
		return
	}
	g, ok := s.admitSync(w, r, storeID, payload)
	if !ok {
		return
	}
	defer g.done()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	req := &httpRequest{cancel: cancel}
	if !track(s, s.reqs, req) {
		refuse(w, r, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	defer untrack(s, s.reqs, req)
	s.tel.connected(ctx, transportHTTP, 1)
	defer s.tel.connected(ctx, transportHTTP, -1)

	allowCORS(w, r)
	ans := &httpAnswer{w: w, rc: http.NewResponseController(w), timeout: s.opts.WriteTimeout}
	defer ans.finish()
	body, err := s.readBody(w, r, ans.rc)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		s.log.Info("oversize HTTP request body", "store", storeID, "remote", r.RemoteAddr, "limit", tooLarge.Limit)
		ans.status = http.StatusRequestEntityTooLarge
		ans.send(s.oversizeAnswer(body, fmt.Sprintf("request body exceeds the server's limit of %d bytes", tooLarge.Limit)))
		return
	case err != nil:
		s.log.Info("read HTTP request body", "store", storeID, "remote", r.RemoteAddr, "err", err)
		ans.status = http.StatusBadRequest
		ans.send(syncproto.StringDefect("read request body: " + err.Error()))
		return
	}
	rpc := httpRPC{srv: s, ctx: ctx, grant: g, log: s.log.With("store", storeID, "remote", r.RemoteAddr), ans: ans}
	rpc.handle(body)
}

// readBody reads the request's body, at most MaxMessageBytes of it, within
// HTTPBodyTimeout. A longer body fails with an *http.MaxBytesError, after
// its first bytes, which are returned. After a failure the connection is
// closed with the answer: what is left of the body is not read.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, rc *http.ResponseController) ([]byte, error) {
	limit := int64(s.opts.MaxMessageBytes)
	if r.ContentLength > limit {
		// Known to be too long: read only a prefix, to name the request.
		w.Header().Set("Connection", "close")
		b, _ := io.ReadAll(io.LimitReader(r.Body, 512))
		return b, &http.MaxBytesError{Limit: limit}
	}
	_ = rc.SetReadDeadline(time.Now().Add(s.opts.HTTPBodyTimeout)) // not supported by every ResponseWriter
	var buf bytes.Buffer
	buf.Grow(int(max(min(r.ContentLength, limit), 512)))
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		w.Header().Set("Connection", "close")
		return buf.Bytes(), err
	}
	_ = rc.SetReadDeadline(time.Time{})
	return buf.Bytes(), nil
}

// httpRPC is the handling of one request's message.
type httpRPC struct {
	srv   *Server
	ctx   context.Context
	grant grant
	log   *slog.Logger
	ans   *httpAnswer
}

// handle answers one client message, as the WebSocket transport would, but
// for the procedures of the SyncHttpRpc group.
func (q *httpRPC) handle(data []byte) {
	s := q.srv
	msg, err := syncproto.DecodeClientMessage(data)
	if err != nil {
		s.metrics.protocolErrors.Inc()
		q.log.Info("protocol error", "err", err)
		q.ans.send(protocolErrorAnswer(err))
		return
	}
	switch m := msg.(type) {
	case *syncproto.Request:
		m.ID = canonicalRequestID(m.ID)
		if bad := s.checkRequestID(m.ID); bad != nil {
			q.ans.send(bad)
			return
		}
		q.request(m)
	case *syncproto.Ping:
		q.ans.send(&syncproto.Pong{})
	default:
		// Ack, Interrupt and Eof concern streams, which end with their
		// answer here: nothing to do, as in the reference.
	}
}

func (q *httpRPC) request(req *syncproto.Request) {
	s := q.srv
	switch req.Tag {
	case syncproto.TagHTTPPing:
		s.metrics.httpRequests.WithLabelValues("ping").Inc()
		if _, err := syncproto.DecodePingRequest(req.Payload); err != nil {
			q.ans.send(syncproto.ExitDie(req.ID, err.Error()))
			return
		}
		q.ans.send(syncproto.ExitSuccess(req.ID, syncproto.HTTPPong))
	case syncproto.TagHTTPPush:
		s.metrics.httpRequests.WithLabelValues("push").Inc()
		if q.grant.access.ReadOnly {
			s.metrics.pushes.WithLabelValues(pushRejected).Inc()
			q.ans.send(syncproto.ExitFail(req.ID, &syncproto.UnknownError{Message: "unauthorized: this connection may only pull"}))
			return
		}
		s.push(pushCall{ctx: q.ctx, hub: q.grant.hub, log: q.log, send: q.ans.send, transport: transportHTTP}, req)
	case syncproto.TagHTTPPull:
		s.metrics.httpRequests.WithLabelValues("pull").Inc()
		q.pull(req)
	default:
		s.metrics.protocolErrors.Inc()
		q.ans.send(syncproto.StringDefect("Unknown request tag: " + req.Tag))
	}
}

// pull answers a SyncHttpRpc.Pull: the pages after the cursor, at most
// MaxHTTPPullPages of them, then the Exit.
func (q *httpRPC) pull(req *syncproto.Request) {
	s := q.srv
	r, err := syncproto.DecodeHTTPPullRequest(req.Payload)
	if err != nil {
		q.ans.send(syncproto.ExitDie(req.ID, err.Error()))
		return
	}
	s.metrics.pulls.WithLabelValues("false").Inc()
	ctx, span := s.tel.startPull(q.ctx, req, q.grant.hub.storeID, transportHTTP, false, r.Cursor)
	p := &httpPull{pageReader: pageReader{srv: s, storeID: q.grant.hub.storeID, log: q.log, ctx: ctx}, id: req.ID, ans: q.ans}
	err = p.run(q.grant.hub, r.Cursor)
	endPull(ctx, span, p.sent, cmp.Or(err, q.ans.err))
	if q.ctx.Err() != nil || q.ans.err != nil {
		return // the client is gone, or the server's shutdown cut the request
	}
	if err != nil {
		q.ans.send(syncproto.ExitFail(req.ID, err))
		return
	}
	q.ans.send(syncproto.ExitSuccess(req.ID, nil))
}

// httpPull writes the pages of one pull into an answer, each as soon as it
// is read.
type httpPull struct {
	pageReader
	id  string
	ans *httpAnswer
	buf []byte
}

func (p *httpPull) run(h *hub, cursor *syncproto.Cursor) error {
	backendID, after, upTo, err := p.start(h, cursor)
	if err != nil {
		return err
	}
	if after >= upTo {
		return p.put(emptyPage(backendID), func() {})
	}
	_, err = p.sendRange(p, backendID, after, upTo, p.srv.opts.MaxHTTPPullPages)
	return err
}

// ready: the pages of an HTTP pull are not acknowledged.
func (p *httpPull) ready() error { return nil }

// put writes a Chunk of page to the client at once, then releases it.
func (p *httpPull) put(page []byte, release func()) error {
	defer release()
	p.buf = syncproto.AppendChunk(p.buf[:0], p.id, page)
	return p.ans.write(p.buf, true)
}

// httpAnswer writes the answer to one request: a JSON array of server
// messages, with status (200 unless set before the first message).
type httpAnswer struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	status  int
	started bool
	err     error // the first failed write; later messages are dropped
}

// send writes one message of the answer.
func (a *httpAnswer) send(msg any) {
	b, err := syncproto.Marshal(msg)
	if err != nil {
		a.err = fmt.Errorf("encode answer: %w", err)
		return
	}
	_ = a.write(b, false)
}

// write appends one encoded message to the answer, within the write
// timeout; with flush set it is sent at once (the pages of a pull).
// Otherwise the answer is sent when the handler returns, with a
// Content-Length if it is short.
func (a *httpAnswer) write(msg []byte, flush bool) error {
	if a.err != nil {
		return a.err
	}
	sep := ","
	if !a.started {
		a.started = true
		a.w.Header().Set("Content-Type", "application/json")
		if a.status != 0 {
			a.w.WriteHeader(a.status)
		}
		sep = "["
	}
	_ = a.rc.SetWriteDeadline(time.Now().Add(a.timeout))
	if _, err := io.WriteString(a.w, sep); err != nil {
		a.err = err
		return err
	}
	if _, err := a.w.Write(msg); err != nil {
		a.err = err
		return err
	}
	if flush {
		if err := a.rc.Flush(); err != nil {
			a.err = err
			return err
		}
	}
	return nil
}

// finish ends the array ("[]" if no message was sent).
func (a *httpAnswer) finish() {
	if a.err != nil {
		return
	}
	if !a.started {
		a.w.Header().Set("Content-Type", "application/json")
		if a.status != 0 {
			a.w.WriteHeader(a.status)
		}
		_, _ = io.WriteString(a.w, "[]")
		return
	}
	_ = a.rc.SetWriteDeadline(time.Now().Add(a.timeout))
	_, _ = io.WriteString(a.w, "]")
}

// allowCORS lets a browser page of another origin, one admitted by
// checkOrigin (OriginPatterns), read the answer. Credentials (cookies) are
// not allowed cross-origin: the payload or an Authorization header carries
// them.
func allowCORS(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" || sameOrigin(r, origin) {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
}

func sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(r.Host, u.Host)
}

// servePreflight answers a browser's CORS preflight for the HTTP transport:
// POST with the request headers it asks for, from an origin OriginPatterns
// allows. Others are refused with 403.
func (s *Server) servePreflight(w http.ResponseWriter, r *http.Request) {
	if err := s.checkOrigin(r); err != nil {
		s.metrics.refused.WithLabelValues(refusedOrigin).Inc()
		refuse(w, r, err.Error(), http.StatusForbidden)
		return
	}
	allowCORS(w, r)
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "POST")
	if asked := r.Header.Get("Access-Control-Request-Headers"); asked != "" && validHeaderList(asked) {
		h.Set("Access-Control-Allow-Headers", asked)
	}
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// validHeaderList reports whether v is a comma-separated list of header
// names (so that it can be echoed as one).
func validHeaderList(v string) bool {
	for _, name := range strings.Split(v, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			return false
		}
		for i := 0; i < len(name); i++ {
			c := name[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
