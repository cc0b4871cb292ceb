// Package devtools serves a web page for looking into a sync server: the
// stores it holds, their heads and backend ids, and their events, refreshed
// live. It is an http.Handler over the server's storage; `livestore serve`
// mounts it under /_devtools/.
//
// JSON API (relative to where the handler is mounted):
//
//	GET api/stores                               every store: storeId, backendId, head, createdAt
//	                                             (cut at Options.MaxAnswerBytes; header X-Livestore-Truncated then says so)
//	GET api/stores/{storeId}/events?after=N&limit=M  events after seqNum N (default 0), at most M (default 100, max 1000)
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

// ServerHandler returns the sync server's devtools page and its API. Mount it under a prefix
// with http.StripPrefix, e.g. mux.Handle("/_devtools/",
// http.StripPrefix("/_devtools", devtools.ServerHandler(storage, devtools.Options{}))).
func ServerHandler(src Source, opts Options) http.Handler {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{src: src, log: log, maxBytes: opts.MaxAnswerBytes, timeout: opts.QueryTimeout}
	if h.maxBytes == 0 {
		h.maxBytes = DefaultMaxAnswerBytes
	}
	h.maxBytes = max(h.maxBytes, MinAnswerBytes)
	if h.timeout <= 0 {
		h.timeout = DefaultQueryTimeout
	}
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /api/stores", h.stores)
	mux.HandleFunc("GET /api/stores/{storeId}/events", h.events)
	return mux
}

type handler struct {
	src      Source
	log      *slog.Logger
	maxBytes int
	timeout  time.Duration
}

func (h *handler) stores(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	list, err := h.src.Stores(ctx)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
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
	if listed < len(list) {
		w.Header().Set("X-Livestore-Truncated", fmt.Sprintf("%d of %d stores listed (answer limit %d bytes)", listed, len(list), h.maxBytes))
	}
	_, _ = w.Write(buf.Bytes())
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
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	body, err := h.page(ctx, storeID, after, int(min(limit, MaxLimit)))
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
func (h *handler) page(ctx context.Context, storeID string, after int64, limit int) ([]byte, error) {
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
		evs, err := h.src.Read(ctx, storeID, next, math.MaxInt64, min(chunk, limit-n))
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
	if n == limit {
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

func (h *handler) fail(w http.ResponseWriter, code int, err error) {
	if code >= 500 {
		h.log.Error("devtools", "err", err)
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
