// Package devtools serves a web page for looking into LiveStore data: a
// live store of the program ([Handler], [ListenAndServe]), a sync server's
// stores and their events ([ServerHandler]), or a client store directory
// read without its schema ([DirHandler]). One embedded page serves every
// mount; nothing is fetched at run time. `livestore serve` mounts the
// server's page under /_devtools/; `livestore devtools` serves a storage's
// page, or with --dir a directory's.
//
// The package keeps no data of its own and runs no sync server: every page
// reads what it shows from its source when asked. Only the page of a live
// store changes anything, by committing events through the store; the
// server's and a directory's pages are read-only. Reading a directory
// without its schema is package inspect's work, and the sync server is
// package syncserver.
//
// JSON API of the server's page (relative to where the handler is mounted):
//
//	GET api/info                                 {"mode":"server","readOnly":true,"views":[…],"unavailable":{view: reason}}
//	GET api/stores?offset=O&limit=L              stores: storeId, backendId, head, createdAt, clients, pushRate
//	                                             (all by default; cut at Options.MaxAnswerBytes, header
//	                                             X-Livestore-Truncated then says so; X-Livestore-Total counts them)
//	GET api/stores/{storeId}/events?after=N&limit=M  events after seqNum N (default 0), at most M (default 100, max 1000)
//	GET api/stores/{storeId}/events?before=N&limit=M the last M events before seqNum N, oldest first
//	GET api/live                                 Server-Sent Events: a "store" event {"storeId","head","clients","pushRate"}
//	                                             for every store when the stream starts and whenever one changes
//
// clients and pushRate (events per second over the last
// [syncserver.RateWindow]) come from a running sync server ([WithStats]);
// without one (the page reads only a storage) they are absent from a store
// of api/stores and null in a "store" event.
//
// An events page is {storeId, events, more, nextAfter}: more says that events
// after nextAfter exist. A page also ends early, with "truncated": true, when
// the next event would make the response larger than
// Options.MaxAnswerBytes; an event larger than a whole response comes alone,
// without its args ("argsOmitted" says why). Reading a page takes at most
// Options.QueryTimeout.
package devtools

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

//go:embed assets
var assets embed.FS

// Source is what the page reads: a sync server's storage that can list its
// stores (sqlitestore.Store and pgstore.Store are Sources).
type Source interface {
	Stores(ctx context.Context) ([]syncserver.StoreInfo, error)
	Read(ctx context.Context, storeID string, after, upTo int64, limit int) ([]syncserver.StoredEvent, error)
}

// StatsSource is a Source that also knows what a running sync server sees
// of its stores: connections and push rates. [WithStats] makes one.
type StatsSource interface {
	Source
	StoreStats() []syncserver.StoreStats
}

// WithStats returns src with the per-store stats of a running sync server,
// e.g. devtools.WithStats(storage, server.StoreStats), so that the page
// shows each store's connected clients and push rate.
func WithStats(src Source, stats func() []syncserver.StoreStats) StatsSource {
	return withStats{Source: src, stats: stats}
}

type withStats struct {
	Source
	stats func() []syncserver.StoreStats
}

func (w withStats) StoreStats() []syncserver.StoreStats { return w.stats() }

// Options configures the handler.
type Options struct {
	// Logger receives errors of the API; nil discards them.
	Logger *slog.Logger
	// MaxAnswerBytes bounds the body of one API response; 0 means
	// DefaultMaxAnswerBytes, and less than MinAnswerBytes counts as
	// MinAnswerBytes.
	MaxAnswerBytes int
	// QueryTimeout bounds how long one API request reads the storage; 0
	// means DefaultQueryTimeout.
	QueryTimeout time.Duration
	// Edit turns an edit in the data browser of a live store's page
	// (Handler) into the event that makes it; nil leaves the tables other
	// than client documents read-only.
	Edit EditFunc
}

// Defaults and bounds of [Options].
const (
	DefaultMaxAnswerBytes = 1 << 20
	MinAnswerBytes        = 16 << 10
	DefaultQueryTimeout   = 5 * time.Second
)

// Page sizes of the events API.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// How often a live stream looks for changes, and how long it stays silent
// before a comment line that lets either side notice a dead connection.
const (
	livePoll      = 500 * time.Millisecond
	liveKeepalive = 15 * time.Second
)

// ServerHandler returns the sync server's devtools page and its API. Mount
// it under a prefix with http.StripPrefix, e.g. mux.Handle("/_devtools/",
// http.StripPrefix("/_devtools", devtools.ServerHandler(storage, devtools.Options{}))).
// If src is a [StatsSource], stores show their connected clients and push
// rate. Live streams (api/live) end with their request and when the
// http.Server serving them shuts down.
func ServerHandler(src Source, opts Options) http.Handler {
	h := &handler{src: src, base: newBase(opts)}
	if ss, ok := src.(StatsSource); ok {
		h.stats = ss.StoreStats
	}
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /api/info", h.info)
	mux.HandleFunc("GET /api/stores", h.stores)
	mux.HandleFunc("GET /api/stores/{storeId}/events", h.events)
	mux.HandleFunc("GET /api/live", h.live)
	unknown := func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, http.StatusNotFound, fmt.Errorf("no API %s %s on a sync server's page", r.Method, r.URL.Path))
	}
	mux.HandleFunc("GET /api/", unknown)
	mux.HandleFunc("POST /api/", unknown)
	return mux
}

// base holds what every mount of the page shares: limits, logging, and the
// live streams to end when the serving http.Server shuts down.
type base struct {
	log      *slog.Logger
	maxBytes int
	timeout  time.Duration

	mu        sync.Mutex
	shutdowns map[*http.Server]chan struct{}
}

func newBase(opts Options) *base {
	b := &base{log: opts.Logger, maxBytes: opts.MaxAnswerBytes, timeout: opts.QueryTimeout}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.maxBytes == 0 {
		b.maxBytes = DefaultMaxAnswerBytes
	}
	b.maxBytes = max(b.maxBytes, MinAnswerBytes)
	if b.timeout <= 0 {
		b.timeout = DefaultQueryTimeout
	}
	return b
}

// streamContext is r's context, also ended when the http.Server serving r
// shuts down: Shutdown waits for requests to finish, and a live stream
// never would by itself.
func (b *base) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	srv, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
	if srv == nil {
		return ctx, cancel
	}
	b.mu.Lock()
	if b.shutdowns == nil {
		b.shutdowns = map[*http.Server]chan struct{}{}
	}
	done := b.shutdowns[srv]
	if done == nil {
		done = make(chan struct{})
		b.shutdowns[srv] = done
		srv.RegisterOnShutdown(func() { close(done) })
	}
	b.mu.Unlock()
	// The goroutine ends with the stream: the caller cancels ctx when done.
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// sse writes Server-Sent Events.
type sse struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	last time.Time
}

// startSSE sends the headers of an event stream.
func startSSE(w http.ResponseWriter) (*sse, error) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w, rc: http.NewResponseController(w), last: time.Now()}
	// The retry field makes a browser reconnect soon after a restart.
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil {
		return nil, err
	}
	return s, s.rc.Flush()
}

// send writes one event; data must be JSON without newlines.
func (s *sse) send(event string, data []byte) error {
	s.last = time.Now()
	_, err := fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", event, data)
	return err
}

// flush sends what was written, or a keepalive comment after a long silence.
func (s *sse) flush(now time.Time) error {
	if now.Sub(s.last) >= liveKeepalive {
		s.last = now
		if _, err := fmt.Fprint(s.w, ": keepalive\n\n"); err != nil {
			return err
		}
	}
	return s.rc.Flush()
}

type handler struct {
	*base
	src   Source
	stats func() []syncserver.StoreStats // nil without a running sync server
}

// storeJSON is a store as the page lists it.
type storeJSON struct {
	syncserver.StoreInfo
	// Clients and PushRate are absent without a running sync server.
	Clients  *int     `json:"clients,omitempty"`
	PushRate *float64 `json:"pushRate,omitempty"`
}

// serverViews are the views of the page for a sync server; the others of
// the contract need a client store.
var serverViews = []string{"stores", "events"}

func (h *handler) info(w http.ResponseWriter, r *http.Request) {
	unavailable := map[string]string{
		"data":    "a sync server keeps events only, not the state tables clients derive from them",
		"queries": "queries run in client stores, not on the sync server",
		"graph":   "queries run in client stores, not on the sync server",
		"sql":     "a sync server keeps events only, not the state tables clients derive from them",
		"export":  "use livestore export, which writes a storage's stores as JSON lines",
	}
	views := append([]string(nil), serverViews...)
	if h.stats != nil {
		views = append(views, "sync")
	} else {
		unavailable["sync"] = "connected clients and push rates come from a running sync server (livestore serve); this page reads only its storage"
	}
	writeJSON(w, map[string]any{
		"mode": "server", "readOnly": true, "views": views, "unavailable": unavailable,
		"storeId": nil, "clientId": nil, "sessionId": nil,
	})
}

// listStores reads the stores with their stats.
func (h *handler) listStores(ctx context.Context) ([]storeJSON, error) {
	list, err := h.src.Stores(ctx)
	if err != nil {
		return nil, fmt.Errorf("list stores: %w", err)
	}
	out := make([]storeJSON, len(list))
	for i, st := range list {
		out[i].StoreInfo = st
	}
	if h.stats == nil {
		return out, nil
	}
	byID := map[string]syncserver.StoreStats{}
	for _, s := range h.stats() {
		byID[s.StoreID] = s
	}
	for i := range out {
		s := byID[out[i].StoreID]
		out[i].Clients, out[i].PushRate = &s.Clients, &s.PushRate
	}
	return out, nil
}

func (h *handler) stores(w http.ResponseWriter, r *http.Request) {
	offset, err := intParam(r, "offset", 0)
	if err != nil || offset < 0 {
		h.fail(w, http.StatusBadRequest, errors.New("offset: want a non-negative integer"))
		return
	}
	limit, err := intParam(r, "limit", math.MaxInt32)
	if err != nil || limit < 1 {
		h.fail(w, http.StatusBadRequest, errors.New("limit: want a positive integer"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	list, err := h.listStores(ctx)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	total := len(list)
	list = list[min(int(offset), len(list)):]
	list = list[:min(int(limit), len(list))]
	// The answer is cut at MaxAnswerBytes like every other; a cut list says
	// so in a header, so that the array stays what clients parse.
	var buf bytes.Buffer
	buf.WriteByte('[')
	listed := 0
	for _, st := range list {
		b, err := json.Marshal(st)
		if err != nil {
			h.fail(w, http.StatusInternalServerError, err)
			return
		}
		if buf.Len()+len(b)+2 > h.maxBytes {
			break
		}
		if listed > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
		listed++
	}
	buf.WriteString("]\n")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Livestore-Total", strconv.Itoa(total))
	if listed < len(list) {
		w.Header().Set("X-Livestore-Truncated", fmt.Sprintf("%d of %d stores listed (answer limit %d bytes); ask for the rest with offset=%d",
			listed, total, h.maxBytes, int(offset)+listed))
	}
	_, _ = w.Write(buf.Bytes())
}

// liveStore is the data of a "store" event.
type liveStore struct {
	StoreID  string   `json:"storeId"`
	Head     int64    `json:"head"`
	Clients  *int     `json:"clients"`
	PushRate *float64 `json:"pushRate"`
}

func (h *handler) live(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := h.streamContext(r)
	defer cancel()
	out, err := startSSE(w)
	if err != nil {
		return
	}
	sent := map[string]liveStore{}
	wait := time.NewTimer(livePoll)
	defer wait.Stop()
	for {
		started := time.Now()
		qctx, qcancel := context.WithTimeout(ctx, h.timeout)
		list, err := h.listStores(qctx)
		qcancel()
		// A storage with many stores is listed less often: the stream
		// spends at most a tenth of its time listing.
		wait.Reset(max(livePoll, 10*time.Since(started)))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The storage may come back: the stream stays, the page keeps
			// what it has.
			h.log.Warn("devtools live stream", "err", err)
		}
		for _, st := range list {
			ev := liveStore{StoreID: st.StoreID, Head: st.Head, Clients: st.Clients, PushRate: st.PushRate}
			if prev, ok := sent[st.StoreID]; ok && sameLive(prev, ev) {
				continue
			}
			sent[st.StoreID] = ev
			b, err := json.Marshal(ev)
			if err != nil {
				h.log.Error("devtools live stream", "err", err)
				return
			}
			if out.send("store", b) != nil {
				return
			}
		}
		if out.flush(time.Now()) != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-wait.C:
		}
	}
}

func sameLive(a, b liveStore) bool {
	eqInt := a.Clients == nil && b.Clients == nil || a.Clients != nil && b.Clients != nil && *a.Clients == *b.Clients
	eqRate := a.PushRate == nil && b.PushRate == nil || a.PushRate != nil && b.PushRate != nil && *a.PushRate == *b.PushRate
	return a.Head == b.Head && eqInt && eqRate
}

// eventJSON is an event with the time the server stored it.
type eventJSON struct {
	syncproto.Event
	CreatedAt   string `json:"createdAt"`
	ArgsOmitted string `json:"argsOmitted,omitempty"`
}

// Chunk sizes of the storage reads of an events page: the first, before
// event sizes are known, and the largest.
const (
	firstChunk = 2
	maxChunk   = 256
)

func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	storeID := r.PathValue("storeId")
	after, err := intParam(r, "after", 0)
	if err != nil || after < 0 {
		h.fail(w, http.StatusBadRequest, errors.New("after: want a non-negative integer"))
		return
	}
	limit, err := intParam(r, "limit", DefaultLimit)
	if err != nil || limit < 1 {
		h.fail(w, http.StatusBadRequest, errors.New("limit: want a positive integer"))
		return
	}
	limit = min(limit, MaxLimit)
	upTo := int64(math.MaxInt64)
	if r.URL.Query().Has("before") {
		before, err := intParam(r, "before", 0)
		if err != nil || before < 1 {
			h.fail(w, http.StatusBadRequest, errors.New("before: want a positive integer"))
			return
		}
		if r.URL.Query().Has("after") {
			h.fail(w, http.StatusBadRequest, errors.New("give after or before, not both"))
			return
		}
		// A store's sequence numbers have no gaps: the page before N
		// starts limit events earlier.
		upTo, after = before-1, max(0, before-1-limit)
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	body, err := h.page(ctx, storeID, after, upTo, int(limit))
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body)
}

// page writes the JSON of an events page, event by event, and stops before
// the one that would pass h.maxBytes. The storage is read in chunks sized
// from the events seen, so memory holds about one response.
func (h *handler) page(ctx context.Context, storeID string, after, upTo int64, limit int) ([]byte, error) {
	id, err := json.Marshal(storeID)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`{"storeId":`)
	b.Write(id)
	b.WriteString(`,"events":[`)
	// The tail: ],"more":true,"nextAfter":N,"truncated":true}
	free := h.maxBytes - b.Len() - 64
	next, n, more, truncated := after, 0, false, false
	chunk := firstChunk
read:
	for n < limit {
		evs, err := h.src.Read(ctx, storeID, next, upTo, min(chunk, limit-n))
		if err != nil {
			return nil, fmt.Errorf("read events of %q after %d: %w", storeID, next, err)
		}
		if len(evs) == 0 {
			break
		}
		read := 0
		for _, e := range evs {
			ev := eventJSON{Event: e.Event, CreatedAt: e.CreatedAt.UTC().Format(time.RFC3339Nano)}
			// Args longer than the room left cannot fit: no need to encode them.
			var j []byte
			size := len(e.Args)
			if size <= free {
				j = marshalEvent(ev)
				size = len(j)
			}
			read += size
			if size+1 > free {
				if n > 0 {
					more, truncated = true, true
					break read
				}
				ev.Args = nil
				ev.ArgsOmitted = fmt.Sprintf("the event is at least %d bytes as JSON, more than a response holds (%d)", size, h.maxBytes)
				j = marshalEvent(ev)
			}
			if n > 0 {
				b.WriteByte(',')
			}
			b.Write(j)
			free -= len(j) + 1
			next = e.SeqNum
			n++
		}
		chunk = max(1, min(maxChunk, free/(read/len(evs)+1)+1))
	}
	if n == limit || (!truncated && upTo != math.MaxInt64) {
		// more looks past upTo too: after a page before N, it says whether
		// the store goes on.
		peek, err := h.src.Read(ctx, storeID, next, math.MaxInt64, 1)
		if err != nil {
			return nil, fmt.Errorf("read events of %q after %d: %w", storeID, next, err)
		}
		more = len(peek) > 0
	}
	fmt.Fprintf(&b, `],"more":%t,"nextAfter":%d`, more, next)
	if truncated {
		b.WriteString(`,"truncated":true`)
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// marshalEvent encodes ev, with args as a string if they are not valid JSON.
func marshalEvent(ev eventJSON) []byte {
	j, err := json.Marshal(ev)
	if err == nil {
		return j
	}
	raw, _ := json.Marshal(string(ev.Args))
	ev.Args = raw
	j, _ = json.Marshal(ev)
	return j
}

func intParam(r *http.Request, name string, def int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	return strconv.ParseInt(v, 10, 64)
}

func (b *base) fail(w http.ResponseWriter, code int, err error) {
	if code >= 500 {
		b.log.Error("devtools", "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}
