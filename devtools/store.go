package devtools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/livestore-go/livestore"
)

// EditFunc turns an edit made in the data browser into the event that makes
// it: the new value (JSON) of column in the row of table whose primary key
// is key (column name → string, int64, float64 or bool). The row exists when
// it is called. Returning an error refuses the edit with that error's text;
// the event is then committed, and refused if its args do not fit its
// definition or its materializer fails.
type EditFunc func(table string, key map[string]any, column string, value json.RawMessage) (livestore.Event, error)

// The views of a live store's page, as api/info lists them.
var storeViews = []string{"data", "queries", "events", "sync", "export", "graph", "sql"}

// Bounds of a live store's page.
const (
	// MaxRowsLimit is the largest page of api/tables/{name}/rows.
	MaxRowsLimit = 1000
	// MaxSQLRows is the most rows api/sql answers.
	MaxSQLRows = 1000
	// MaxImportBytes bounds the body of api/import.
	MaxImportBytes = 256 << 20
	// maxRequestBytes bounds the JSON body of the other POST requests.
	maxRequestBytes = 1 << 20
)

// readOnlyNoEdit is why a table without an edit event cannot be edited.
const readOnlyNoEdit = "no edit event declared (devtools.Options.Edit)"

// Handler returns the devtools page of a live store and its API: the data
// browser (with editing through events), the query inspector and reactivity
// graph, the eventlog, sync status, export and import, and a read-only SQL
// playground. Mount it under a prefix with http.StripPrefix, e.g.
// mux.Handle("/_devtools/", http.StripPrefix("/_devtools",
// devtools.Handler(store, devtools.Options{}))).
//
// The page can change the store (edits, import): serve it only to its
// developer, e.g. on loopback with ListenAndServe. Requests that change
// something are refused when they come from a page of another origin.
//
// JSON API (relative to the mount; answers bounded by Options.MaxAnswerBytes
// and reads by Options.QueryTimeout; bad input answers 4xx {"error"}):
//
//	GET  api/info                      mode "store", ids, views
//	GET  api/tables                    schema tables, columns, row counts, editable or why not
//	GET  api/tables/{name}/rows        ?offset&limit(≤1000)&sort=COL&dir=asc|desc; a cut page has nextOffset
//	POST api/tables/{name}/edit        {"key","column","value"} → {"event":{"name","seq"}}
//	GET  api/queries                   reactive nodes (NodeInfo); a cut list says so in X-Livestore-Truncated
//	GET  api/graph                     nodes, edges (from the node read to its reader), lastCommit
//	GET  api/events                    ?after=SEQ&limit(≤1000)&name&status=all|synced|pending&from&to → events, more, next
//	GET  api/sync                      SyncStatus, localHeadSeq, enabled, nextRetryAt (null unless waiting to reconnect)
//	GET  api/export                    the eventlog's synced events as `livestore export` JSON lines
//	POST api/import                    such lines, into an empty store (409 otherwise) → {"imported"}
//	POST api/sql                       {"sql"}: one reading statement → columns, rows (≤1000), truncated(By)
//	GET  api/live                      Server-Sent Events: ready, commit, queries, sync
func Handler(store *livestore.Store, opts Options) http.Handler {
	a := &storeAPI{s: store, edit: opts.Edit, log: opts.Logger, maxBytes: opts.MaxAnswerBytes, timeout: opts.QueryTimeout}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.maxBytes == 0 {
		a.maxBytes = DefaultMaxAnswerBytes
	}
	a.maxBytes = max(a.maxBytes, MinAnswerBytes)
	if a.timeout <= 0 {
		a.timeout = DefaultQueryTimeout
	}
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /api/info", a.info)
	mux.HandleFunc("GET /api/tables", a.tables)
	mux.HandleFunc("GET /api/tables/{name}/rows", a.rows)
	mux.HandleFunc("POST /api/tables/{name}/edit", a.editRow)
	mux.HandleFunc("GET /api/queries", a.queries)
	mux.HandleFunc("GET /api/graph", a.graph)
	mux.HandleFunc("GET /api/events", a.events)
	mux.HandleFunc("GET /api/sync", a.syncStatus)
	mux.HandleFunc("GET /api/export", a.export)
	mux.HandleFunc("POST /api/import", a.importEvents)
	mux.HandleFunc("POST /api/sql", a.sql)
	mux.HandleFunc("GET /api/live", a.live)
	return sameOrigin(mux)
}

// storeAPI answers the API of a live store's page.
type storeAPI struct {
	s        *livestore.Store
	edit     EditFunc
	log      *slog.Logger
	maxBytes int
	timeout  time.Duration
}

// sameOrigin refuses requests that change something when the browser says
// they come from a page of another origin, so that a web site cannot use the
// developer's browser to edit the store.
func sameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if o := r.Header.Get("Origin"); o != "" {
				u, err := url.Parse(o)
				if err != nil || u.Host != r.Host {
					sendError(w, http.StatusForbidden, fmt.Errorf("requests from the origin %q are refused: the page changes the store only for its own origin", o))
					return
				}
			}
			if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
				sendError(w, http.StatusForbidden, errors.New("cross-site requests are refused"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// ListenAndServe serves the page of store (Handler) on addr, a loopback
// address such as "127.0.0.1:0" (empty means that one), and logs its URL to
// opts.Logger, until ctx ends. The page can edit the store and has no
// authentication, so other addresses are refused, and so are requests
// naming another host than the loopback one (DNS rebinding).
func ListenAndServe(ctx context.Context, store *livestore.Store, addr string, opts Options) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("devtools: address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("devtools: %q is not a loopback address: the page can edit the store and has no authentication", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("devtools: listen on %s: %w", addr, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := Handler(store, opts)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !loopbackHost(r.Host) {
				sendError(w, http.StatusMisdirectedRequest, fmt.Errorf("host %q is not served: open the page on its loopback address", r.Host))
				return
			}
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// Live streams end with ctx rather than holding up the shutdown.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	log.Info("devtools", "url", "http://"+ln.Addr().String()+"/", "storeId", store.StoreID())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("devtools: serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		srv.Close()
	}
	<-served
	return nil
}

// loopbackHost reports whether a Host header names a loopback address.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// infoJSON is the answer of api/info.
type infoJSON struct {
	Mode        string            `json:"mode"`
	StoreID     string            `json:"storeId"`
	ClientID    string            `json:"clientId"`
	SessionID   string            `json:"sessionId"`
	ReadOnly    bool              `json:"readOnly"`
	Views       []string          `json:"views"`
	Unavailable map[string]string `json:"unavailable"`
}

func (a *storeAPI) info(w http.ResponseWriter, r *http.Request) {
	sendJSON(w, infoJSON{Mode: "store", StoreID: a.s.StoreID(), ClientID: a.s.ClientID(), SessionID: a.s.SessionID(),
		Views: storeViews, Unavailable: map[string]string{}})
}

// sendJSON writes v as the JSON answer.
func sendJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		sendError(w, http.StatusInternalServerError, fmt.Errorf("encode the answer: %w", err))
		return
	}
	sendBody(w, b)
}

func sendBody(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(b, '\n'))
}

// sendError answers {"error": "..."} with code.
func sendError(w http.ResponseWriter, code int, err error) {
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// failed answers a failure of the store: an expired time limit is the
// client's to fix, anything else is logged.
func (a *storeAPI) failed(w http.ResponseWriter, r *http.Request, what string, err error) {
	if r.Context().Err() == nil && (errors.Is(err, context.DeadlineExceeded) || isInterrupt(err)) {
		sendError(w, http.StatusRequestTimeout, fmt.Errorf("%s: stopped after %s (Options.QueryTimeout): %v", what, a.timeout, err))
		return
	}
	if errors.Is(err, livestore.ErrStoreClosed) {
		sendError(w, http.StatusServiceUnavailable, fmt.Errorf("%s: %w", what, err))
		return
	}
	a.log.Error("devtools", "op", what, "err", err)
	sendError(w, http.StatusInternalServerError, fmt.Errorf("%s: %w", what, err))
}

// isInterrupt reports whether err is SQLite's answer to an interrupted
// statement (the time limit passed while it ran).
func isInterrupt(err error) bool {
	return err != nil && strings.Contains(err.Error(), "interrupt")
}

// readBody decodes a JSON request body of at most limit bytes into v.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return fmt.Errorf("read the request: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("the request is not the expected JSON: %w", err)
	}
	return nil
}
