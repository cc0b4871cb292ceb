package devtools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"

	"github.com/livestore-go/livestore/inspect"
)

// readOnlyDir is why a store directory's page changes nothing.
const readOnlyDir = "a store directory is served read-only: the program that owns it commits its events"

// dirUnavailable are the views a store directory cannot offer, and why.
var dirUnavailable = map[string]string{
	"queries": "queries live in the running program; a store directory holds only their tables",
	"graph":   "the query graph lives in the running program; a store directory holds only its tables",
}

// dirViews are the views of a store directory's page.
var dirViews = []string{"data", "events", "sync", "export", "sql"}

// Largest body of a POST to a store directory's page (api/sql).
const maxSQLBody = 64 << 10

// DirHandler returns the devtools page of a client store directory, read
// without the program's schema through package inspect: its tables and
// rows, its eventlog, its sync status as recorded in the directory, an
// export, and read-only SQL. Nothing is changed: edits and imports are
// refused, and every statement passes the read-only guard of
// [inspect.Dir.Query]. The directory is opened for each request, so the
// owning program may keep committing while the page is open; a directory
// that holds no store answers every request with an error.
//
// API (relative to where the handler is mounted), besides the contract's
// api/info, api/tables, api/tables/{name}/rows, api/events, api/sync,
// api/export, api/sql and api/live:
//
//	GET api/events?after=e5&limit=100&name=N&status=all|synced|pending&from=e3&to=e90
//	    {"events":[…],"more":bool,"next":"e…"}; next is the cursor for after=,
//	    also when every event read was filtered out.
//	GET api/export?storeId=S   the synced events as `livestore export` JSON lines
//	    (client-only events stay out: they have no global sequence number);
//	    storeId defaults to the directory's name.
//	GET api/live               "commit" {"head","tables"} when the eventlog grows,
//	    "sync" (as api/sync) when the recorded sync status changes.
func DirHandler(dir string, opts Options) http.Handler {
	h := &dirHandler{base: newBase(opts), dir: dir}
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /api/info", h.info)
	mux.HandleFunc("GET /api/tables", h.tables)
	mux.HandleFunc("GET /api/tables/{name}/rows", h.rows)
	mux.HandleFunc("GET /api/events", h.events)
	mux.HandleFunc("GET /api/sync", h.sync)
	mux.HandleFunc("GET /api/export", h.export)
	mux.HandleFunc("POST /api/sql", h.sql)
	mux.HandleFunc("GET /api/live", h.live)
	readOnly := func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, http.StatusForbidden, errors.New(readOnlyDir))
	}
	mux.HandleFunc("POST /api/tables/{name}/edit", readOnly)
	mux.HandleFunc("POST /api/import", readOnly)
	for view, path := range map[string]string{"queries": "GET /api/queries", "graph": "GET /api/graph"} {
		reason := dirUnavailable[view]
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			h.fail(w, http.StatusNotFound, errors.New(reason))
		})
	}
	unknown := func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, http.StatusNotFound, fmt.Errorf("no API %s %s on a store directory's page", r.Method, r.URL.Path))
	}
	mux.HandleFunc("GET /api/", unknown)
	mux.HandleFunc("POST /api/", unknown)
	return mux
}

type dirHandler struct {
	*base
	dir string
}

// open opens the directory for one request; the caller closes it. An error
// has been answered.
func (h *dirHandler) open(w http.ResponseWriter, ctx context.Context) (*inspect.Dir, bool) {
	d, err := inspect.Open(ctx, h.dir)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return nil, false
	}
	return d, true
}

// query runs trusted SQL of the page (table names quoted) within the limits.
func (h *dirHandler) query(ctx context.Context, d *inspect.Dir, q string) (inspect.Result, error) {
	return d.Query(ctx, q, inspect.Limits{MaxBytes: -1, Timeout: h.timeout})
}

func (h *dirHandler) info(w http.ResponseWriter, r *http.Request) {
	d, ok := h.open(w, r.Context())
	if !ok {
		return
	}
	d.Close()
	writeJSON(w, map[string]any{
		"mode": "dir", "dir": h.dir, "readOnly": true, "readOnlyReason": readOnlyDir,
		"storeId": nil, "clientId": nil, "sessionId": nil,
		"views": dirViews, "unavailable": dirUnavailable,
	})
}

func (h *dirHandler) sql(w http.ResponseWriter, r *http.Request) {
	var req struct {
		SQL string `json:"sql"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSQLBody+1))
	if err != nil {
		h.fail(w, http.StatusBadRequest, fmt.Errorf("read the request: %w", err))
		return
	}
	if len(body) > maxSQLBody {
		h.fail(w, http.StatusRequestEntityTooLarge, fmt.Errorf("a statement of more than %d bytes", maxSQLBody))
		return
	}
	if err := json.Unmarshal(body, &req); err != nil || strings.TrimSpace(req.SQL) == "" {
		h.fail(w, http.StatusBadRequest, errors.New(`want {"sql": "SELECT …"}`))
		return
	}
	ctx := r.Context()
	d, ok := h.open(w, ctx)
	if !ok {
		return
	}
	defer d.Close()
	res, err := d.Query(ctx, req.SQL, inspect.Limits{MaxRows: MaxLimit, MaxBytes: h.maxBytes - 64, Timeout: h.timeout})
	if err != nil {
		// Refused and failing statements are the user's input.
		h.fail(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, map[string]any{
		"columns": res.Columns, "rows": res.Rows, "truncated": res.Truncated, "truncatedBy": res.TruncatedBy, "error": nil,
	})
}
