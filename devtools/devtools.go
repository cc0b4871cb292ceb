// Package devtools serves a web page for looking into a sync server: the
// stores it holds, their heads and backend ids, and their events, refreshed
// live. It is an http.Handler over the server's storage; `livestore serve`
// mounts it under /_devtools/.
//
// JSON API (relative to where the handler is mounted):
//
//	GET api/stores                               every store: storeId, backendId, head, createdAt
//	GET api/stores/{storeId}/events?after=N&limit=M  events after seqNum N (default 0), at most M (default 100, max 1000)
package devtools

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
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
}

// Handler returns the devtools page and its API. Mount it under a prefix
// with http.StripPrefix, e.g. mux.Handle("/_devtools/",
// http.StripPrefix("/_devtools", devtools.Handler(storage, devtools.Options{}))).
func Handler(src Source, opts Options) http.Handler {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{src: src, log: log}
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /api/stores", h.stores)
	mux.HandleFunc("GET /api/stores/{storeId}/events", h.events)
	return mux
}

type handler struct {
	src Source
	log *slog.Logger
}

func (h *handler) stores(w http.ResponseWriter, r *http.Request) {
	list, err := h.src.Stores(r.Context())
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	if list == nil {
		list = []syncserver.StoreInfo{}
	}
	writeJSON(w, list)
}

// eventJSON is an event with the time the server stored it.
type eventJSON struct {
	syncproto.Event
	CreatedAt string `json:"createdAt"`
}

func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	storeID := r.PathValue("storeId")
	after, err := intParam(r, "after", 0)
	if err != nil || after < 0 {
		h.fail(w, http.StatusBadRequest, errors.New("after: want a non-negative integer"))
		return
	}
	limit, err := intParam(r, "limit", 100)
	if err != nil || limit < 1 {
		h.fail(w, http.StatusBadRequest, errors.New("limit: want a positive integer"))
		return
	}
	limit = min(limit, 1000)
	evs, err := h.src.Read(r.Context(), storeID, after, 1<<62, int(limit))
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	out := make([]eventJSON, len(evs))
	for i, e := range evs {
		out[i] = eventJSON{Event: e.Event, CreatedAt: e.CreatedAt.UTC().Format(time.RFC3339Nano)}
	}
	writeJSON(w, map[string]any{"storeId": storeID, "events": out})
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
