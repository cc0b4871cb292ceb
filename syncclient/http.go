package syncclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

// Defaults of [HTTPOptions] fields left zero.
const (
	DefaultPollInterval   = 5 * time.Second
	DefaultMaxPollBackoff = 30 * time.Second
	DefaultRequestTimeout = 30 * time.Second
)

// HTTPOptions configure [HTTPBackend].
type HTTPOptions struct {
	// Header is added to every request (for example Authorization).
	Header http.Header
	// HTTPClient sends the requests; nil means a client of each connection's
	// own, whose idle connections are closed with it.
	HTTPClient *http.Client
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
	// PollInterval is the time between the requests of a live pull that
	// has caught up; a successful push of the same connection makes its
	// live pulls ask at once. A pull whose last page says more events
	// remain asks again at once. Default 5 s, as the reference client.
	PollInterval time.Duration
	// MaxPollBackoff bounds the retries of a pull's failing request (the
	// network, or an HTTP status 408, 429 or 5xx): the delay before each
	// retry doubles from PollInterval, and once it would exceed
	// MaxPollBackoff the pull fails with the error. Default 30 s.
	MaxPollBackoff time.Duration
	// RequestTimeout bounds the wait for a response's headers and for each
	// message of its body. Default 30 s.
	RequestTimeout time.Duration
	// MaxMessageBytes bounds one message of a response (about: the
	// decoder reads ahead). Default 16 MiB.
	MaxMessageBytes int64
}

// HTTPStatusError is the failure of a request that the server answered with
// an HTTP error and no protocol answer (for example 401 or 403 from an auth
// check, or 503 when the server's connection limit is reached).
type HTTPStatusError struct {
	StatusCode int
	Body       string
}

func (e *HTTPStatusError) Error() string {
	return fmt.Sprintf("syncclient: HTTP %d: %s", e.StatusCode, e.Body)
}

// retryable reports whether a request failing with err may succeed later.
func retryable(err error) bool {
	var se *HTTPStatusError
	if errors.As(err, &se) {
		return se.StatusCode == http.StatusRequestTimeout || se.StatusCode == http.StatusTooManyRequests || se.StatusCode >= 500
	}
	var pe *protocolError
	return !errors.As(err, &pe)
}

// protocolError is an answer that breaks the protocol: retrying does not help.
type protocolError struct{ err error }

func (e *protocolError) Error() string { return "syncclient: " + e.err.Error() }
func (e *protocolError) Unwrap() error { return e.err }

// HTTPBackend returns a [syncproto.Backend] (the root package's SyncBackend)
// that speaks the HTTP transport of @livestore/sync-cf to the server at url
// (http:// or https://; ws:// and wss:// are taken as those): `livestore
// serve`, or the reference Cloudflare server. Every call is one POST of an
// Effect RPC request; a live pull asks again every PollInterval, so no
// connection stays open between requests. Connect sends a Ping, so that an
// unreachable server or refused credentials fail there. Push and the
// pulls fail with the errors of the WebSocket client:
// *syncproto.ServerAheadError, *syncproto.BackendIDMismatchError,
// *syncproto.UnknownError, or [HTTPStatusError] and network errors.
func HTTPBackend(url string, opts HTTPOptions) syncproto.Backend {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.MaxPollBackoff <= 0 {
		opts.MaxPollBackoff = DefaultMaxPollBackoff
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	return &httpBackend{url: url, opts: opts}
}

type httpBackend struct {
	url  string
	opts HTTPOptions
}

// Connect pings the server for storeID and returns the connection.
func (b *httpBackend) Connect(ctx context.Context, storeID string, payload json.RawMessage) (syncproto.Conn, error) {
	u, err := syncURL(b.url, storeID, payload, "http")
	if err != nil {
		return nil, err
	}
	client, own := b.opts.HTTPClient, false
	if client == nil {
		client, own = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}, true
	}
	cctx, cancel := context.WithCancel(context.Background())
	c := &httpConn{
		url: u, storeID: storeID, payload: payload, opts: b.opts, client: client, ownClient: own,
		log: b.opts.Logger.With("store", storeID), ctx: cctx, cancel: cancel,
		live: make(map[*httpStream]struct{}),
	}
	if err := c.ping(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// httpConn is a connection of the HTTP transport: the requests of one store,
// numbered like the reference client's ("0", "1", …).
type httpConn struct {
	url       string
	storeID   string
	payload   json.RawMessage
	opts      HTTPOptions
	client    *http.Client
	ownClient bool
	log       *slog.Logger
	ctx       context.Context // ends with Close: cancels every request
	cancel    context.CancelFunc
	nextID    atomic.Uint64

	mu   sync.Mutex
	live map[*httpStream]struct{} // live pulls, asked to poll after a push
}

func (c *httpConn) ping(ctx context.Context) error {
	payload, err := syncproto.Marshal(syncproto.PingRequest{StoreID: c.storeID, Payload: c.payload})
	if err != nil {
		return fmt.Errorf("syncclient: encode %s: %w", syncproto.TagHTTPPing, err)
	}
	exit, err := c.call(ctx, syncproto.TagHTTPPing, payload)
	if err != nil {
		return fmt.Errorf("syncclient: ping: %w", err)
	}
	return exit.Err()
}

// Push sends batch in requests of at most 100 events and 900,000 bytes, as
// the reference client splits them, one after the other (see
// [Client.Push]). After a successful push the connection's live pulls ask
// the server at once.
func (c *httpConn) Push(ctx context.Context, batch []syncproto.Event, backendID *string) error {
	if len(batch) == 0 {
		return nil
	}
	payloads, err := syncproto.EncodePush(batch, c.storeID, c.payload, backendID)
	if err != nil {
		return &syncproto.UnknownError{Message: err.Error()}
	}
	defer c.wakeLive()
	for _, payload := range payloads {
		exit, err := c.call(ctx, syncproto.TagHTTPPush, payload)
		if err != nil {
			return fmt.Errorf("syncclient: push: %w", err)
		}
		if err := exit.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (c *httpConn) wakeLive() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.live {
		s.signal()
	}
}

// Pull returns the stream of a pull; its requests are sent by Next.
func (c *httpConn) Pull(ctx context.Context, cursor *syncproto.Cursor, live bool) (syncproto.PullStream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.ctx.Err() != nil {
		return nil, ErrClosed
	}
	sctx, cancel := context.WithCancel(c.ctx)
	s := &httpStream{c: c, live: live, cursor: cursor, ctx: sctx, cancel: cancel, wake: make(chan struct{}, 1)}
	if live {
		c.mu.Lock()
		c.live[s] = struct{}{}
		c.mu.Unlock()
	}
	return s, nil
}

// Close cancels the connection's requests; its streams end with ErrClosed.
func (c *httpConn) Close() error {
	c.cancel()
	if c.ownClient {
		c.client.CloseIdleConnections()
	}
	return nil
}

func (c *httpConn) newID() string { return strconv.FormatUint(c.nextID.Add(1)-1, 10) }

// call sends one request and reads its whole answer, returning its Exit.
// payload is encoded by syncproto (Marshal, EncodePush).
func (c *httpConn) call(ctx context.Context, tag string, payload json.RawMessage) (exit *syncproto.Exit, err error) {
	if c.ctx.Err() != nil {
		return nil, ErrClosed
	}
	defer func() {
		if err != nil && c.ctx.Err() != nil {
			err = ErrClosed
		}
	}()
	id := c.newID()
	ctx, cancel := mergeCancel(ctx, c.ctx)
	defer cancel()
	ans, err := c.post(ctx, cancel, id, tag, payload)
	if err != nil {
		return nil, err
	}
	defer ans.close()
	for {
		msg, err := ans.next()
		if err != nil {
			return nil, err
		}
		switch m := msg.(type) {
		case *syncproto.Exit:
			if m.RequestID == id {
				return m, nil
			}
		case *syncproto.Defect:
			return nil, &protocolError{&syncproto.DefectError{Message: syncproto.DefectMessage(m.Defect)}}
		}
	}
}

// mergeCancel returns a context that ends when ctx ends or when also does.
func mergeCancel(ctx, also context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(also, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// post sends a request and returns its answer, once the response's headers
// arrived (within RequestTimeout). cancel cancels ctx: the answer uses it to
// bound the reading of each message. payload is encoded by syncproto
// (Marshal, EncodePush), so the envelope copies it as it is.
func (c *httpConn) post(ctx context.Context, cancel context.CancelFunc, id, tag string, payload json.RawMessage) (*answer, error) {
	rpc := &syncproto.Request{ID: id, Tag: tag, Payload: payload, Headers: [][2]string{}}
	traceRequest(ctx, rpc)
	body := syncproto.AppendEncodedRequest(nil, rpc)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("syncclient: %s: %w", tag, err)
	}
	for k, vs := range c.opts.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Livestore-Store-Id", c.storeID)
	timer := time.AfterFunc(c.opts.RequestTimeout, cancel)
	resp, err := c.client.Do(req)
	if err != nil {
		timer.Stop()
		return nil, err
	}
	timer.Stop()
	if resp.StatusCode != http.StatusOK && !isJSON(resp.Header) {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		_ = resp.Body.Close()
		return nil, &HTTPStatusError{StatusCode: resp.StatusCode, Body: string(bytes.TrimSpace(b))}
	}
	return newAnswer(resp, timer, c.opts), nil
}

// isJSON reports a JSON answer; servers answer some refusals (such as an
// oversize body, 413) with the protocol's messages.
func isJSON(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// syncURL returns base with the query parameters of a sync request:
// storeId, transport and, if payload is set, payload (the JSON
// URI-component-encoded, then query-encoded, as the reference does). For
// the HTTP transport the scheme ws or wss becomes http or https.
func syncURL(base, storeID string, payload json.RawMessage, transport string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("syncclient: url: %w", err)
	}
	switch u.Scheme {
	case "http", "https":
	case "ws", "wss":
		if transport == "http" {
			u.Scheme = "http" + u.Scheme[2:]
		}
	default:
		return "", fmt.Errorf("syncclient: url %q: scheme must be http, https, ws or wss", base)
	}
	q := u.Query()
	q.Set("storeId", storeID)
	q.Set("transport", transport)
	if payload != nil {
		var compact bytes.Buffer
		if err := json.Compact(&compact, payload); err != nil {
			return "", fmt.Errorf("syncclient: payload: %w", err)
		}
		q.Set("payload", encodeURIComponent(compact.String()))
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}
