// Package syncclient is a client of the LiveStore sync protocol (the
// WebSocket and HTTP transports of @livestore/sync-cf, see package
// syncproto). It talks to this module's sync server and to the reference
// Cloudflare server alike. [WebSocketBackend] and [HTTPBackend] are the
// backends a store syncs with (syncproto.Backend, the root package's
// SyncBackend); the package holds no sync engine.
//
// A [Client] is one WebSocket connection to one store. It pulls ([Client.Pull]
// returns a stream of pages; live streams stay open for new events) and
// pushes ([Client.Push], whose failures are *syncproto.ServerAheadError,
// *syncproto.BackendIDMismatchError or *syncproto.UnknownError). It pings
// the server every 10 s and considers the connection lost when a Pong does
// not come back in time. A Client does not reconnect: when [Client.Done] is
// closed, dial again.
package syncclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/livestore-go/livestore/internal/heartbeat"
	"github.com/livestore-go/livestore/syncproto"
)

// Defaults of [Options] fields left zero.
const (
	DefaultPingInterval     = 10 * time.Second
	DefaultWriteTimeout     = 30 * time.Second
	DefaultHandshakeTimeout = 30 * time.Second
	DefaultMaxMessageBytes  = 16 << 20
)

// Options configure [Dial]. StoreID is required.
type Options struct {
	// StoreID names the store to sync.
	StoreID string
	// Payload is the app's sync payload (for example an auth token), sent in
	// the URL and with every request, as the reference client does.
	Payload json.RawMessage
	// Header is added to the WebSocket upgrade request.
	Header http.Header
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
	// PingInterval is the time between Pings; the connection is considered
	// lost if a Pong does not arrive within it. Default 10 s; negative
	// disables pinging.
	PingInterval time.Duration
	// WriteTimeout bounds the sending of one message. Default 30 s.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds the WebSocket upgrade in Dial (connecting,
	// sending the request, reading the response), also when Dial's context
	// has no deadline: a server or network that swallows the request must
	// not keep a reconnecting client waiting forever. Default 30 s.
	HandshakeTimeout time.Duration
	// MaxMessageBytes bounds one incoming message. Default 16 MiB.
	MaxMessageBytes int64
	// HTTPClient is used for the upgrade request; nil means the default.
	HTTPClient *http.Client
}

// ErrClosed is returned by operations on a Client after Close.
var ErrClosed = errors.New("syncclient: client closed")

// ErrPingTimeout is the error of a connection whose server stopped answering
// Pings.
var ErrPingTimeout = errors.New("syncclient: no pong from server")

// DialError is the failure of a WebSocket upgrade that the server answered
// with an HTTP error (for example 403 from an auth check or 429 for too many
// connections).
type DialError struct {
	StatusCode int
	Body       string
	Err        error
}

func (e *DialError) Error() string {
	if e.StatusCode == 0 {
		return "syncclient: dial: " + e.Err.Error()
	}
	return fmt.Sprintf("syncclient: dial: HTTP %d: %s", e.StatusCode, e.Body)
}

func (e *DialError) Unwrap() error { return e.Err }

// Client is a connection to one store of a sync server. Its methods are safe
// for concurrent use. It owns one reader goroutine (and one pinger), stopped
// by Close.
type Client struct {
	ws      *websocket.Conn
	opts    Options
	log     *slog.Logger
	ctx     context.Context // ends when the connection ends
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	nextID  atomic.Uint64
	done    chan struct{}
	closing atomic.Bool

	mu      sync.Mutex
	err     error
	calls   map[string]chan *syncproto.Exit
	streams map[string]*PullStream
	pongs   []chan struct{}
}

// Dial connects to the sync server at rawURL (http, https, ws or wss; the
// query parameters storeId, transport and payload are added).
func Dial(ctx context.Context, rawURL string, opts Options) (*Client, error) {
	if opts.StoreID == "" {
		return nil, errors.New("syncclient: Options.StoreID is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	u, err := SyncURL(rawURL, opts.StoreID, opts.Payload)
	if err != nil {
		return nil, err
	}
	hctx, hcancel := context.WithTimeout(ctx, opts.HandshakeTimeout)
	defer hcancel() // the context bounds the handshake only, not the connection
	ws, resp, err := websocket.Dial(hctx, u, &websocket.DialOptions{HTTPHeader: opts.Header, HTTPClient: opts.HTTPClient})
	if err != nil {
		de := &DialError{Err: err}
		if resp != nil {
			de.StatusCode = resp.StatusCode
			if resp.Body != nil {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
				_ = resp.Body.Close()
				de.Body = string(bytes.TrimSpace(b))
			}
		}
		return nil, de
	}
	ws.SetReadLimit(opts.MaxMessageBytes)
	cctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		ws:      ws,
		opts:    opts,
		log:     opts.Logger.With("store", opts.StoreID),
		ctx:     cctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		calls:   make(map[string]chan *syncproto.Exit),
		streams: make(map[string]*PullStream),
	}
	c.wg.Add(1)
	go c.readLoop()
	if opts.PingInterval > 0 {
		c.wg.Add(1)
		go c.pingLoop()
	}
	return c, nil
}

// SyncURL returns the WebSocket URL the reference client uses for a store:
// base with storeId, transport=ws and, if payload is set, payload (the JSON
// URI-component-encoded, then query-encoded, as the reference does).
func SyncURL(base, storeID string, payload json.RawMessage) (string, error) {
	return syncURL(base, storeID, payload, "ws")
}

// encodeURIComponent escapes s like JavaScript's encodeURIComponent.
func encodeURIComponent(s string) string {
	const hex = "0123456789ABCDEF"
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '!' || c == '~' || c == '*' || c == '\'' || c == '(' || c == ')' {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	return string(b)
}

// Done is closed when the connection has ended (Close, a network error or a
// ping timeout); Err then tells why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it is open.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection and waits for the client's goroutines.
// Pending calls fail with ErrClosed.
func (c *Client) Close() error {
	if c.closing.Swap(true) {
		<-c.done
		c.wg.Wait()
		return nil
	}
	c.fail(ErrClosed)
	if err := c.ws.Close(websocket.StatusNormalClosure, ""); err != nil {
		c.log.Debug("close", "err", err)
	}
	c.cancel()
	c.wg.Wait()
	return nil
}

// fail ends the client with err (the first error wins) and fails everything
// pending.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	calls, streams, pongs := c.calls, c.streams, c.pongs
	c.calls, c.streams, c.pongs = map[string]chan *syncproto.Exit{}, map[string]*PullStream{}, nil
	c.mu.Unlock()
	for _, ch := range calls {
		close(ch)
	}
	for _, s := range streams {
		s.finish(err)
	}
	for _, ch := range pongs {
		close(ch)
	}
}

func (c *Client) readLoop() {
	defer c.wg.Done()
	defer close(c.done)
	for {
		_, data, err := c.ws.Read(c.ctx)
		if err != nil {
			c.fail(fmt.Errorf("syncclient: connection lost: %w", err))
			c.cancel()
			return
		}
		if id, values, ok := syncproto.CutChunk(data); ok {
			// Pages are decoded once, by the stream's reader (Next).
			c.mu.Lock()
			s := c.streams[id]
			c.mu.Unlock()
			if s != nil {
				s.push(values)
			}
			continue
		}
		msg, err := syncproto.DecodeServerMessage(data)
		if err != nil {
			c.log.Warn("undecodable message from server", "err", err)
			continue
		}
		c.dispatch(msg)
	}
}

func (c *Client) dispatch(msg syncproto.ServerMessage) {
	switch m := msg.(type) {
	case *syncproto.Chunk:
		c.mu.Lock()
		s := c.streams[m.RequestID]
		c.mu.Unlock()
		if s != nil {
			b, err := syncproto.Marshal(m.Values)
			if err == nil {
				s.push(b)
			}
		}
	case *syncproto.Exit:
		c.mu.Lock()
		call := c.calls[m.RequestID]
		delete(c.calls, m.RequestID)
		s := c.streams[m.RequestID]
		delete(c.streams, m.RequestID)
		c.mu.Unlock()
		if call != nil {
			call <- m
		}
		if s != nil {
			if err := m.Err(); err != nil {
				s.finish(err)
			} else {
				s.finish(io.EOF)
			}
		}
	case *syncproto.Defect:
		// Like the reference client: a defect fails every open request.
		err := &syncproto.DefectError{Message: syncproto.DefectMessage(m.Defect)}
		c.log.Warn("defect from server", "err", err)
		c.mu.Lock()
		calls, streams := c.calls, c.streams
		c.calls, c.streams = map[string]chan *syncproto.Exit{}, map[string]*PullStream{}
		c.mu.Unlock()
		for id, ch := range calls {
			ch <- &syncproto.Exit{RequestID: id, Cause: &syncproto.Cause{Tag: "Die", Defect: m.Defect}}
		}
		for _, s := range streams {
			s.finish(err)
		}
	case *syncproto.Pong:
		c.mu.Lock()
		pongs := c.pongs
		c.pongs = nil
		c.mu.Unlock()
		for _, ch := range pongs {
			close(ch)
		}
	}
}

func (c *Client) pingLoop() {
	defer c.wg.Done()
	// Only an unanswered ping ends the loop; other failures end the
	// connection by themselves.
	err := heartbeat.Run(c.ctx, c.opts.PingInterval, func(ctx context.Context) error {
		if err := c.Ping(ctx); errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	})
	if err != nil {
		c.log.Warn("server stopped answering pings; closing")
		c.fail(ErrPingTimeout)
		_ = c.ws.CloseNow()
		c.cancel()
	}
}

// write sends one message, bounded by WriteTimeout (not by the caller's
// context: abandoning a write half-way would break the connection).
func (c *Client) write(msg any) error {
	var b []byte
	var err error
	if req, ok := msg.(*syncproto.Request); ok {
		b = syncproto.AppendEncodedRequest(nil, req) // every payload here comes from syncproto's encoders
	} else {
		b, err = syncproto.Marshal(msg)
	}
	if err != nil {
		return fmt.Errorf("syncclient: encode: %w", err)
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.WriteTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		if cerr := c.Err(); cerr != nil {
			return cerr
		}
		return fmt.Errorf("syncclient: send: %w", err)
	}
	return nil
}

// Ping sends a Ping and waits for the server's Pong.
func (c *Client) Ping(ctx context.Context) error {
	ch := make(chan struct{})
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	c.pongs = append(c.pongs, ch)
	c.mu.Unlock()
	if err := c.write(&syncproto.Ping{}); err != nil {
		return err
	}
	select {
	case <-ch:
		return c.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) newRequest(tag string, payload any) (*syncproto.Request, error) {
	b, err := syncproto.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("syncclient: encode %s: %w", tag, err)
	}
	return c.request(tag, b), nil
}

// request is a Request with the next id and an encoded payload.
func (c *Client) request(tag string, payload json.RawMessage) *syncproto.Request {
	return &syncproto.Request{ID: strconv.FormatUint(c.nextID.Add(1)-1, 10), Tag: tag, Payload: payload, Headers: [][2]string{}}
}

// Push sends batch (global events, chained, the first based on the head the
// client last saw) to the server, in requests of at most 100 events and
// 900,000 bytes, one after the other. backendID is the backend the client
// last pulled from (nil if it has not pulled yet). Failures are
// *syncproto.ServerAheadError, *syncproto.BackendIDMismatchError or
// *syncproto.UnknownError (use errors.As). When a later request of a split
// batch fails, the earlier ones were stored. If ctx ends while waiting, the
// outcome of the request in flight is unknown; pull to find out.
func (c *Client) Push(ctx context.Context, batch []syncproto.Event, backendID *string) error {
	if len(batch) == 0 {
		return nil
	}
	payloads, err := syncproto.EncodePush(batch, c.opts.StoreID, c.opts.Payload, backendID)
	if err != nil {
		return &syncproto.UnknownError{Message: err.Error()}
	}
	for _, payload := range payloads {
		req := c.request(syncproto.TagPush, payload)
		traceRequest(ctx, req)
		exit, err := c.call(ctx, req)
		if err != nil {
			return err
		}
		if err := exit.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) call(ctx context.Context, req *syncproto.Request) (*syncproto.Exit, error) {
	ch := make(chan *syncproto.Exit, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	c.calls[req.ID] = ch
	c.mu.Unlock()
	if err := c.write(req); err != nil {
		c.forgetCall(req.ID)
		return nil, err
	}
	select {
	case exit, ok := <-ch:
		if !ok {
			return nil, c.Err()
		}
		return exit, nil
	case <-ctx.Done():
		c.forgetCall(req.ID)
		return nil, ctx.Err()
	}
}

func (c *Client) forgetCall(id string) {
	c.mu.Lock()
	delete(c.calls, id)
	c.mu.Unlock()
}

// Pull starts a pull of the events after cursor (nil: from the start). The
// server answers with pages; with live set, the stream then stays open and
// delivers each later push. Errors of the pull (such as
// *syncproto.BackendIDMismatchError) come from [PullStream.Next]. ctx bounds
// only the start of the pull; the stream lives until it ends or is closed.
// Close the stream when done.
func (c *Client) Pull(ctx context.Context, cursor *syncproto.Cursor, live bool) (*PullStream, error) {
	req, err := c.newRequest(syncproto.TagPull, syncproto.PullRequest{StoreID: c.opts.StoreID, Payload: c.opts.Payload, Live: live, Cursor: cursor})
	if err != nil {
		return nil, err
	}
	traceRequest(ctx, req)
	s := &PullStream{c: c, id: req.ID, wake: make(chan struct{}, 1)}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	c.streams[req.ID] = s
	c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		c.forgetStream(req.ID)
		return nil, err
	}
	if err := c.write(req); err != nil {
		c.forgetStream(req.ID)
		return nil, err
	}
	return s, nil
}

func (c *Client) forgetStream(id string) {
	c.mu.Lock()
	delete(c.streams, id)
	c.mu.Unlock()
}

// Backend opens clients for any store of one server: it fills in StoreID and
// Payload of Options for each connection. A store's sync engine holds one.
type Backend struct {
	// URL is the server's address (http, https, ws or wss).
	URL string
	// Options are used for every connection; StoreID and Payload are set by
	// Connect.
	Options Options
}

// Connect dials a Client for storeID with the app's sync payload.
func (b Backend) Connect(ctx context.Context, storeID string, payload json.RawMessage) (*Client, error) {
	opts := b.Options
	opts.StoreID, opts.Payload = storeID, payload
	return Dial(ctx, b.URL, opts)
}
