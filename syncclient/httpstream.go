package syncclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

// answer reads the answer to one request of the HTTP transport, a JSON
// array of server messages, one message at a time.
type answer struct {
	body    io.ReadCloser
	dec     *json.Decoder
	lim     *messageLimit
	timer   *time.Timer // cancels the request when a message takes too long
	timeout time.Duration
	started bool
}

func newAnswer(resp *http.Response, timer *time.Timer, opts HTTPOptions) *answer {
	lim := &messageLimit{r: resp.Body, max: opts.MaxMessageBytes}
	return &answer{body: resp.Body, dec: json.NewDecoder(lim), lim: lim, timer: timer, timeout: opts.RequestTimeout}
}

// next returns the next message of the answer, io.EOF after the last.
func (a *answer) next() (syncproto.ServerMessage, error) {
	a.timer.Reset(a.timeout)
	defer a.timer.Stop()
	a.lim.n = 0
	if !a.started {
		tok, err := a.dec.Token()
		if err != nil {
			return nil, fmt.Errorf("syncclient: read answer: %w", err)
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return nil, &protocolError{fmt.Errorf("answer is not a JSON array (starts with %v)", tok)}
		}
		a.started = true
	}
	if !a.dec.More() {
		if _, err := a.dec.Token(); err != nil {
			return nil, fmt.Errorf("syncclient: read answer: %w", err)
		}
		return nil, io.EOF
	}
	var raw json.RawMessage
	if err := a.dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("syncclient: read answer: %w", err)
	}
	msg, err := syncproto.DecodeServerMessage(raw)
	if err != nil {
		return nil, &protocolError{err}
	}
	return msg, nil
}

func (a *answer) close() {
	a.timer.Stop()
	_ = a.body.Close()
}

// messageLimit fails reads once n passes max; the answer resets n for each
// message.
type messageLimit struct {
	r   io.Reader
	n   int64
	max int64
}

func (l *messageLimit) Read(p []byte) (int, error) {
	if l.n > l.max {
		return 0, &protocolError{fmt.Errorf("a message of the answer exceeds %d bytes", l.max)}
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	return n, err
}

// httpStream is a pull of the HTTP transport: one request, or for a live
// pull one request after another, each starting after the last event
// delivered. Next is meant for one goroutine (which alone touches the
// request being read); Close may be called from any.
type httpStream struct {
	c      *httpConn
	live   bool
	cursor *syncproto.Cursor // where the next request starts
	ctx    context.Context   // ends with Close or the connection's Close
	cancel context.CancelFunc
	wake   chan struct{} // a push of the connection asks for a request now

	pending  []syncproto.PullResponse // pages read, not yet returned
	id       string                   // of the request being read
	ans      *answer                  // nil between requests
	cancelRq context.CancelFunc       // cancels the request being read
	answered bool                     // a request has been answered
	more     bool                     // its last page said more events remain
	failures int                      // failed requests in a row
}

func (s *httpStream) signal() { poke(s.wake) }

// Next returns the next page: io.EOF once a non-live pull has delivered the
// server's events, the pull's error (such as
// *syncproto.BackendIDMismatchError), or ErrStreamClosed after Close.
func (s *httpStream) Next(ctx context.Context) (syncproto.PullResponse, error) {
	for {
		if len(s.pending) > 0 {
			p := s.pending[0]
			s.pending = s.pending[1:]
			if n := len(p.Batch); n > 0 {
				s.cursor = &syncproto.Cursor{BackendID: p.BackendID, EventSequenceNumber: p.Batch[n-1].Event.SeqNum}
			}
			return p, nil
		}
		if err := s.stopped(); err != nil {
			return syncproto.PullResponse{}, err
		}
		if s.ans != nil {
			if err := s.read(ctx); err != nil {
				return syncproto.PullResponse{}, err
			}
			continue
		}
		if s.answered && !s.more && !s.live {
			return syncproto.PullResponse{}, io.EOF
		}
		if err := s.wait(ctx); err != nil {
			return syncproto.PullResponse{}, err
		}
		if err := s.request(); err != nil {
			return syncproto.PullResponse{}, err
		}
	}
}

// stopped returns the error of a closed stream or connection.
func (s *httpStream) stopped() error {
	if s.ctx.Err() == nil {
		return nil
	}
	s.drop()
	if s.c.ctx.Err() != nil {
		return ErrClosed
	}
	return ErrStreamClosed
}

// wait waits before the next request: not at all for the first, nor when
// the server said more events remain; a poll interval for a live pull that
// has caught up (less if a push wakes it); the backoff after failures.
func (s *httpStream) wait(ctx context.Context) error {
	var d time.Duration
	switch {
	case s.failures > 0:
		d = s.c.opts.PollInterval << (s.failures - 1)
	case s.answered && !s.more:
		d = s.c.opts.PollInterval
	default:
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.wake:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.ctx.Done():
		return s.stopped()
	}
	return nil
}

// request sends the next request of the pull.
func (s *httpStream) request() error {
	payload, err := syncproto.Marshal(syncproto.HTTPPullRequest{StoreID: s.c.storeID, Payload: s.c.payload, Cursor: s.cursor})
	if err != nil {
		return s.failed(fmt.Errorf("syncclient: encode %s: %w", syncproto.TagHTTPPull, err))
	}
	id := s.c.newID()
	rctx, cancel := context.WithCancel(s.ctx)
	ans, err := s.c.post(rctx, cancel, id, syncproto.TagHTTPPull, payload)
	if err != nil {
		cancel()
		return s.failed(err)
	}
	s.ans, s.id, s.cancelRq = ans, id, cancel
	return nil
}

// read reads the next message of the answer: pages are queued, the Exit
// ends the request.
func (s *httpStream) read(ctx context.Context) error {
	stop := context.AfterFunc(ctx, s.cancelRq) // the request is sent again later
	msg, err := s.ans.next()
	stop()
	if err != nil {
		s.drop()
		if e := s.stopped(); e != nil {
			return e
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, io.EOF) {
			err = &protocolError{errors.New("answer to a pull ended without its Exit")}
		}
		return s.failed(err)
	}
	switch m := msg.(type) {
	case *syncproto.Chunk:
		if m.RequestID != s.id {
			return nil
		}
		for _, v := range m.Values {
			p, err := syncproto.DecodePullResponse(v)
			if err != nil {
				s.drop()
				return &protocolError{err}
			}
			s.pending = append(s.pending, p)
			s.more = p.PageInfo.Kind == syncproto.MoreKnown
		}
	case *syncproto.Exit:
		if m.RequestID != s.id {
			return nil
		}
		s.drop()
		if err := m.Err(); err != nil {
			return err
		}
		s.answered, s.failures = true, 0
	case *syncproto.Defect:
		s.drop()
		return &syncproto.DefectError{Message: syncproto.DefectMessage(m.Defect)}
	}
	return nil
}

// failed counts a failed request: a retryable failure is retried after a
// delay doubling from PollInterval, until that passes MaxPollBackoff.
func (s *httpStream) failed(err error) error {
	if e := s.stopped(); e != nil {
		return e
	}
	s.failures++
	if !retryable(err) || s.c.opts.PollInterval<<(s.failures-1) > s.c.opts.MaxPollBackoff {
		return fmt.Errorf("syncclient: pull: %w", err)
	}
	s.c.log.Debug("pull request failed; retrying", "err", err, "failures", s.failures)
	return nil
}

// drop ends the request being read, if any.
func (s *httpStream) drop() {
	if s.ans != nil {
		s.cancelRq()
		s.ans.close()
		s.ans, s.cancelRq = nil, nil
	}
}

// Close ends the pull and its request in flight (cancelled, the reader
// then closes it).
func (s *httpStream) Close() error {
	s.cancel()
	s.c.mu.Lock()
	delete(s.c.live, s)
	s.c.mu.Unlock()
	return nil
}
