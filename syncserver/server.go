package syncserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/livestore-go/livestore/syncproto"
)

// Defaults of [Options] fields left zero.
const (
	DefaultMaxMessageBytes = 2 << 20
	DefaultMaxBatchSize    = 1000
	DefaultWriteTimeout    = 30 * time.Second
	DefaultMaxPendingBytes = 64 << 20
	DefaultPingInterval    = 30 * time.Second
	DefaultMaxConnections  = 10000
	DefaultMaxPullsPerConn = 8
	DefaultMaxPullBytes    = 256 << 20
	DefaultHTTPPullPages   = 100
	DefaultHTTPBodyTimeout = 30 * time.Second
)

// AuthFunc decides whether a client may connect to a store. payload is the
// client's sync payload (nil if none) and header the upgrade request's
// headers. A non-nil error rejects the connection before the WebSocket
// upgrade: HTTP 401, or the status of an [*AuthError], with the body
// "unauthorized: " and the error's text (an AuthError's Reason); the server
// logs one line with the store, the remote address and that reason. The
// returned [Access] limits what the connection may do. An AuthFunc that
// panics refuses the connection with HTTP 500.
type AuthFunc func(ctx context.Context, storeID string, payload json.RawMessage, header http.Header) (Access, error)

// Access is what an [AuthFunc] grants one connection. The zero value grants
// everything, for as long as the connection lasts.
type Access struct {
	// ReadOnly refuses the connection's pushes; its pulls are served.
	ReadOnly bool
	// Expires, if not zero, is when the grant ends (for example a token's
	// expiry): the connection is closed then, and the client must connect
	// again with new credentials.
	Expires time.Time
}

// AuthError is an [AuthFunc] error with the HTTP status to refuse with.
type AuthError struct {
	Status int    // 401 (no or bad credentials) or 403 (credentials that do not cover this store)
	Reason string // told to the client and logged; never a secret
}

func (e *AuthError) Error() string { return e.Reason }

// Options configure a [Server]. Only Storage is required.
type Options struct {
	// Storage keeps the events. The Server does not close it.
	Storage Storage
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Auth, if set, is called for every connection before the upgrade.
	Auth AuthFunc
	// CheckStoreID validates store ids; nil means [CheckStoreID].
	CheckStoreID func(storeID string) error
	// MaxMessageBytes bounds one incoming WebSocket message, and the body
	// of one request of the HTTP transport. A larger message is answered
	// with an UnknownError (or a Defect if it names no request) and the
	// connection stays open; a larger body is answered the same way, with
	// HTTP status 413. Default 2 MiB, comfortably above the 900,000-byte
	// payloads clients send.
	MaxMessageBytes int
	// MaxBatchSize bounds the events of one push (UnknownError beyond it).
	// Default 1000; clients split pushes into at most 100 events.
	MaxBatchSize int
	// MaxConnections bounds the WebSocket connections of the whole server
	// together with the requests of the HTTP transport being served, each
	// counted from before the auth check to the end of the connection or
	// request; more are refused with HTTP 503 ("server connection limit (N)
	// reached") before the upgrade or the request's body is read. Default
	// 10,000.
	MaxConnections int
	// MaxPullsPerConnection bounds the pulls open at once on one
	// connection; a pull beyond it fails with an UnknownError naming the
	// limit. Clients open one. Default 8.
	MaxPullsPerConnection int
	// MaxPullBytes bounds the bytes of pull pages, over all connections,
	// that have been read from storage and not yet written to their
	// clients; a pull that would pass it waits (until bytes are written or
	// the pull ends). A pull holds at most the one page it is sending
	// (900,000 bytes at most), none while it waits for the client's Ack.
	// Default 256 MiB.
	MaxPullBytes int
	// MaxArgsDepth bounds the nesting depth of a pushed event's args
	// (UnknownError beyond it). Default [syncproto.DefaultMaxArgsDepth].
	MaxArgsDepth int
	// MaxConnectionsPerStore bounds the WebSocket connections to one store
	// together with the HTTP transport's requests for it being served; more
	// are refused with HTTP 429. 0 means no limit.
	MaxConnectionsPerStore int
	// WriteTimeout bounds the time to send one message to a client; a client
	// that does not read is disconnected after it. Default 30 s.
	WriteTimeout time.Duration
	// MaxPendingBytes bounds the messages queued for one client; a client
	// that falls further behind is disconnected (status 1008) and can pull
	// again. Default 64 MiB.
	MaxPendingBytes int
	// PingInterval is the time between the WebSocket pings the server sends
	// each client; a client whose pong does not arrive within the next
	// interval is disconnected. This ends half-open connections (a client
	// that vanished without closing, a dead NAT mapping) and frees their
	// pulls. Browsers and WebSocket libraries answer pings by themselves.
	// Default 30 s; negative disables.
	PingInterval time.Duration
	// OriginPatterns are the origins, besides the server's own, from which
	// browsers may open connections: host patterns such as
	// "app.example.com" or "*.example.com", or with a scheme,
	// "https://app.example.com" (path.Match syntax, as in
	// websocket.AcceptOptions). Requests without an Origin header
	// (non-browser clients) are always accepted. Empty accepts only those and
	// same-origin requests, so that a page on another site cannot use a
	// visitor's browser to reach the server; []string{"*"} accepts every
	// origin, as the reference does (apps that authenticate with their
	// payload, not with cookies). Other origins are refused with HTTP 403.
	// On a loopback address a request counts as same-origin only if its
	// Host names loopback (localhost, 127.0.0.1, [::1]): a page whose DNS
	// name was rebound to 127.0.0.1 is same-origin with the server but
	// foreign to the machine. Behind a proxy on loopback, list the public
	// origin.
	OriginPatterns []string
	// OriginRefusalHint, if set, ends the body of an origin refusal, for
	// example to name the setting that allows more origins.
	OriginRefusalHint string
	// MaxHTTPPullPages bounds the pull pages (of at most 100 events and
	// 900,000 bytes each) in the answer to one pull of the HTTP transport.
	// The last page of a cut answer says how many events remain
	// (MoreKnown); clients pull again from there, at once when catching up
	// and at their next poll when live. The pages are written as they are
	// read, each holding bytes of MaxPullBytes until it is written. Default
	// 100 (10,000 events).
	MaxHTTPPullPages int
	// HTTPBodyTimeout bounds the time a client of the HTTP transport may
	// take to send a request's body (a slow client holds a place under
	// MaxConnections meanwhile); writing each page of the answer is bounded
	// by WriteTimeout. Default 30 s.
	HTTPBodyTimeout time.Duration
	// Registry receives the server's metrics; nil means a new registry with
	// the Go and process collectors. /metrics serves this registry.
	Registry *prometheus.Registry
	// TracerProvider, if set, receives the server's spans (listed at
	// [TelemetryScope]): one per push or pull request, a child of the
	// sampled trace context its envelope carries (as the JavaScript clients
	// and package syncclient send it), one per storage append and per live
	// update page. nil starts none.
	TracerProvider trace.TracerProvider
	// MeterProvider, if set, receives OpenTelemetry metrics besides the
	// Prometheus ones: append duration, open connections by transport,
	// events in and out by store. nil measures nothing.
	MeterProvider metric.MeterProvider
}

// Server is the sync server. Create it with [New]; it is an http.Handler.
type Server struct {
	opts    Options
	storage Storage
	log     *slog.Logger
	metrics *metrics
	tel     *serverTelemetry
	scrape  http.Handler

	ctx    context.Context // cancelled by Close: ends storage calls and the watcher
	cancel context.CancelFunc

	closing atomic.Bool
	nextID  atomic.Uint64
	open    atomic.Int64 // connections admitted under MaxConnections

	health     storageHealth
	pullBudget *byteBudget

	pushMeter pushMeter // events stored per store, for StoreStats

	mu    sync.Mutex // guards hubs and conns; see hub for the lock order
	hubs  map[string]*hubRef
	conns map[*conn]struct{}
	reqs  map[*httpRequest]struct{} // HTTP transport requests being served

	connWG    sync.WaitGroup // one per served connection or HTTP request
	watcherWG sync.WaitGroup
	closeOnce sync.Once
}

// New returns a Server using opts. If opts.Storage implements [Watcher], New
// starts watching it; [Server.Shutdown] or [Server.Close] stops that.
func New(opts Options) (*Server, error) {
	if opts.Storage == nil {
		return nil, errors.New("syncserver: Options.Storage is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CheckStoreID == nil {
		opts.CheckStoreID = CheckStoreID
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.MaxBatchSize <= 0 {
		opts.MaxBatchSize = DefaultMaxBatchSize
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.MaxPendingBytes <= 0 {
		opts.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	if opts.MaxPullsPerConnection <= 0 {
		opts.MaxPullsPerConnection = DefaultMaxPullsPerConn
	}
	if opts.MaxPullBytes <= 0 {
		opts.MaxPullBytes = DefaultMaxPullBytes
	}
	if opts.MaxHTTPPullPages <= 0 {
		opts.MaxHTTPPullPages = DefaultHTTPPullPages
	}
	if opts.HTTPBodyTimeout <= 0 {
		opts.HTTPBodyTimeout = DefaultHTTPBodyTimeout
	}
	if opts.MaxArgsDepth <= 0 {
		opts.MaxArgsDepth = syncproto.DefaultMaxArgsDepth
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.Registry == nil {
		opts.Registry = defaultRegistry()
	}
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, fmt.Errorf("syncserver: register metrics: %w", err)
	}
	tel, err := newServerTelemetry(opts.TracerProvider, opts.MeterProvider)
	if err != nil {
		return nil, fmt.Errorf("syncserver: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:    opts,
		storage: opts.Storage,
		log:     opts.Logger,
		metrics: m,
		tel:     tel,
		scrape:  m.handler(),
		ctx:     ctx,
		cancel:  cancel,
		hubs:    make(map[string]*hubRef),
		conns:   make(map[*conn]struct{}),
		reqs:    make(map[*httpRequest]struct{}),
	}
	s.pullBudget = newByteBudget(opts.MaxPullBytes, m.pullWaits.Inc, func(d int) { m.pullBytes.Add(float64(d)) })
	if w, ok := opts.Storage.(Watcher); ok {
		s.watcherWG.Add(1)
		go s.watch(w)
	}
	return s, nil
}

// watch forwards other processes' appends to the live pulls of this process.
func (s *Server) watch(w Watcher) {
	defer s.watcherWG.Done()
	for s.ctx.Err() == nil {
		err := w.Watch(s.ctx, s.changed)
		if s.ctx.Err() != nil {
			return
		}
		s.log.Warn("storage watch ended; retrying", "err", err)
		select {
		case <-s.ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (s *Server) changed(storeID string, head int64) {
	s.mu.Lock()
	var hubs []*hub
	if storeID == "" {
		for _, ref := range s.hubs {
			hubs = append(hubs, ref.hub)
		}
	} else if ref := s.hubs[storeID]; ref != nil {
		hubs = append(hubs, ref.hub)
	}
	s.mu.Unlock()
	for _, h := range hubs {
		if err := h.catchUp(s.ctx, head); err != nil && s.ctx.Err() == nil {
			s.log.Error("deliver events appended elsewhere", "store", h.storeID, "err", err)
		}
	}
}

// ServeHTTP routes a request: sync requests (query parameters storeId and
// transport, any path) become WebSocket connections (transport=ws) or are
// requests of the HTTP transport (transport=http); GET /health and GET
// /metrics serve health and metrics; GET / describes the endpoint; anything
// else is answered 400, like the reference worker.
//
// /health answers 200 {"status":"ok"}, or 503 while the server shuts down
// or the storage fails: {"status":"degraded","storage":{"error":"full",
// "since":"2026-01-02T03:04:05.000Z"}} (error: full, read-only or
// unavailable). A failed read is reported until the next successful storage
// operation, a failed write (a push not stored) until a write succeeds,
// since reads still work on a full or read-only disk.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Has("storeId") && q.Has("transport") {
		s.serveSync(w, r, q)
		return
	}
	switch r.URL.Path {
	case "/health":
		s.serveHealth(w)
		return
	case "/metrics":
		s.scrape.ServeHTTP(w, r)
		return
	case "/":
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, "Info: LiveStore sync endpoint (WebSocket and HTTP transports of @livestore/sync-cf). Connect with ?storeId=<id>&transport=ws, or POST to ?storeId=<id>&transport=http.\n")
			return
		}
	}
	refuse(w, r, "Invalid path", http.StatusBadRequest)
}

func (s *Server) serveHealth(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	if s.closing.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"status":"shutting down"}`+"\n")
		return
	}
	if f, failing := s.health.state(); failing {
		w.WriteHeader(http.StatusServiceUnavailable)
		b, _ := json.Marshal(map[string]any{
			"status":  "degraded",
			"storage": map[string]string{"error": f.kind.String(), "since": FormatCreatedAt(f.since)},
		})
		_, _ = w.Write(append(b, '\n'))
		return
	}
	_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
}

// serveSync checks a sync request and serves it: a WebSocket connection
// (transport=ws) or one request of the HTTP transport (transport=http, see
// serveHTTPRPC).
func (s *Server) serveSync(w http.ResponseWriter, r *http.Request, q url.Values) {
	storeID := q.Get("storeId")
	transport := q.Get("transport")
	if transport != "ws" && transport != "http" {
		refuse(w, r, fmt.Sprintf("transport %q is not supported by this server; use transport=ws or transport=http", transport), http.StatusBadRequest)
		return
	}
	if err := s.opts.CheckStoreID(storeID); err != nil {
		refuse(w, r, err.Error(), http.StatusBadRequest)
		return
	}
	payload, err := decodePayloadParam(q)
	if err != nil {
		refuse(w, r, err.Error(), http.StatusBadRequest)
		return
	}
	if transport == "http" {
		s.serveHTTPRPC(w, r, storeID, payload)
		return
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		refuse(w, r, "expected Upgrade: websocket", http.StatusUpgradeRequired)
		return
	}
	g, ok := s.admitSync(w, r, storeID, payload)
	if !ok {
		return
	}
	defer g.done()

	ws, err := websocket.Accept(bigWriteBuffer{w}, r, &websocket.AcceptOptions{OriginPatterns: s.opts.OriginPatterns})
	if err != nil {
		s.log.Info("websocket upgrade failed", "store", storeID, "err", err)
		return
	}
	c := newConn(s, ws, g.hub, s.nextID.Add(1), g.access)
	if !track(s, s.conns, c) {
		_ = ws.Close(websocket.StatusGoingAway, "server is shutting down")
		return
	}
	defer untrack(s, s.conns, c)
	s.metrics.clients.Inc()
	defer s.metrics.clients.Dec()
	s.tel.connected(r.Context(), transportWS, 1)
	defer s.tel.connected(r.Context(), transportWS, -1)
	c.run()
}

// decodePayloadParam decodes the payload query parameter. The reference
// client URI-encodes the JSON before putting it in the query string, so the
// value is decoded once more; a value that is already plain JSON is accepted
// as well.
func decodePayloadParam(q url.Values) (json.RawMessage, error) {
	if !q.Has("payload") {
		return nil, nil
	}
	v := q.Get("payload")
	if dec, err := url.PathUnescape(v); err == nil && json.Valid([]byte(dec)) {
		return json.RawMessage(dec), nil
	}
	if json.Valid([]byte(v)) {
		return json.RawMessage(v), nil
	}
	return nil, errors.New("invalid payload parameter: not (URI-encoded) JSON")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for start := 0; start <= len(v); {
			end := start
			for end < len(v) && v[end] != ',' {
				end++
			}
			if equalFoldTrim(v[start:end], token) {
				return true
			}
			start = end + 1
		}
	}
	return false
}

func equalFoldTrim(s, token string) bool {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	if len(s) != len(token) {
		return false
	}
	for i := 0; i < len(s); i++ {
		a, b := s[i], token[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// hubRef is a store's hub with the number of connections using it; a hub
// lives while it has connections. Server.mu guards it.
type hubRef struct {
	hub   *hub
	conns int
}

// acquireHub returns the store's hub, counting one more connection.
func (s *Server) acquireHub(storeID string) (*hub, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := s.hubs[storeID]
	if ref == nil {
		ref = &hubRef{hub: newHub(s, storeID)}
		s.hubs[storeID] = ref
	}
	if max := s.opts.MaxConnectionsPerStore; max > 0 && ref.conns >= max {
		return nil, fmt.Errorf("too many connections to store %q (limit %d)", storeID, max)
	}
	ref.conns++
	return ref.hub, nil
}

// releaseHub counts one connection of h's store less.
func (s *Server) releaseHub(h *hub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := s.hubs[h.storeID]
	if ref == nil || ref.hub != h {
		return
	}
	if ref.conns--; ref.conns == 0 {
		delete(s.hubs, h.storeID)
	}
}

// track registers a connection or request being served (k, in m, which
// s.mu guards) for Shutdown; false if the server is closing.
func track[K comparable](s *Server, m map[K]struct{}, k K) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	m[k] = struct{}{}
	s.connWG.Add(1)
	return true
}

func untrack[K comparable](s *Server, m map[K]struct{}, k K) {
	s.mu.Lock()
	delete(m, k)
	s.mu.Unlock()
	s.connWG.Done()
}

// Shutdown stops the server gracefully: new connections are refused, pushes
// being processed are finished and acknowledged, then every connection is
// closed with status 1001 (going away) after its queued messages are sent,
// and requests of the HTTP transport in progress are answered. A push that
// was acknowledged is always stored. If ctx ends first, the remaining
// connections and requests are cut at once and ctx's error is returned.
// Shutdown does not close the Storage, nor an http.Server serving s.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	if ctx.Err() == nil {
		for _, c := range conns {
			c.drain()
		}
	}
	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		for c := range s.conns {
			c.abort()
		}
		for q := range s.reqs {
			q.cancel()
		}
		s.mu.Unlock()
		<-done
	}
	s.closeOnce.Do(func() {
		s.cancel()
		s.watcherWG.Wait()
	})
	return err
}

// Close stops the server at once: connections are closed without waiting
// for in-flight work. Pushes already acknowledged are stored; a push being
// stored when Close is called may or may not be, and is not acknowledged.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Shutdown(ctx)
	return nil
}
