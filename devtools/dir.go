package devtools

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
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

// dirColumnJSON and dirTableJSON are a table as the page lists it.
type dirColumnJSON struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	PrimaryKey bool   `json:"primaryKey"`
	Nullable   bool   `json:"nullable"`
}

type dirTableJSON struct {
	Name           string          `json:"name"`
	Kind           string          `json:"kind"`
	Columns        []dirColumnJSON `json:"columns"`
	RowCount       int64           `json:"rowCount"`
	Editable       bool            `json:"editable"`
	ReadOnlyReason string          `json:"readOnlyReason"`
}

// listTables reads the state tables from SQLite's catalogue: every table but
// SQLite's own, LiveStore's system tables and the eventlog.
func (h *dirHandler) listTables(ctx context.Context, d *inspect.Dir, withCounts bool) ([]dirTableJSON, error) {
	res, err := h.query(ctx, d, `SELECT name FROM sqlite_schema WHERE type = 'table'
 AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_\_livestore\_%' ESCAPE '\' AND name <> 'eventlog' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	out := make([]dirTableJSON, 0, len(res.Rows))
	for _, row := range res.Rows {
		name, _ := row[0].(string)
		t := dirTableJSON{Name: name, Kind: "table", Columns: []dirColumnJSON{}, ReadOnlyReason: readOnlyDir}
		cols, err := h.query(ctx, d, `SELECT name, type, pk, "notnull" FROM pragma_table_info(`+dirQuoteString(name)+`) ORDER BY cid`)
		if err != nil {
			return nil, fmt.Errorf("columns of %s: %w", name, err)
		}
		for _, c := range cols.Rows {
			n, _ := c[0].(string)
			typ, _ := c[1].(string)
			pk, _ := c[2].(int64)
			notNull, _ := c[3].(int64)
			t.Columns = append(t.Columns, dirColumnJSON{Name: n, Type: typ, PrimaryKey: pk > 0, Nullable: notNull == 0 && pk == 0})
		}
		// A client document table is id → JSON value; without the schema
		// its shape is all there is to tell it by.
		if len(t.Columns) == 2 && t.Columns[0].Name == "id" && t.Columns[0].PrimaryKey && t.Columns[1].Name == "value" {
			t.Kind = "clientDocument"
		}
		if withCounts {
			n, err := h.query(ctx, d, `SELECT count(*) FROM `+dirQuoteIdent(name))
			if err != nil {
				return nil, fmt.Errorf("count rows of %s: %w", name, err)
			}
			t.RowCount, _ = n.Rows[0][0].(int64)
		}
		out = append(out, t)
	}
	return out, nil
}

func (h *dirHandler) tables(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	d, ok := h.open(w, ctx)
	if !ok {
		return
	}
	defer d.Close()
	list, err := h.listTables(ctx, d, true)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, list)
}

func (h *dirHandler) rows(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	q := r.URL.Query()
	offset, err := intParam(r, "offset", 0)
	if err != nil || offset < 0 {
		h.fail(w, http.StatusBadRequest, errors.New("offset: want a non-negative integer"))
		return
	}
	limit, err := intParam(r, "limit", DefaultLimit)
	if err != nil || limit < 1 || limit > MaxLimit {
		h.fail(w, http.StatusBadRequest, fmt.Errorf("limit: want an integer from 1 to %d", MaxLimit))
		return
	}
	dir := strings.ToLower(q.Get("dir"))
	if dir != "" && dir != "asc" && dir != "desc" {
		h.fail(w, http.StatusBadRequest, errors.New(`dir: want "asc" or "desc"`))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	d, ok := h.open(w, ctx)
	if !ok {
		return
	}
	defer d.Close()
	tables, err := h.listTables(ctx, d, false)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	i := slices.IndexFunc(tables, func(t dirTableJSON) bool { return t.Name == name })
	if i < 0 {
		h.fail(w, http.StatusNotFound, fmt.Errorf("no table %q in the store", name))
		return
	}
	t := tables[i]
	var order []string
	if sort := q.Get("sort"); sort != "" {
		if !slices.ContainsFunc(t.Columns, func(c dirColumnJSON) bool { return c.Name == sort }) {
			h.fail(w, http.StatusBadRequest, fmt.Errorf("sort: table %s has no column %q", name, sort))
			return
		}
		order = append(order, dirQuoteIdent(sort)+" "+strings.ToUpper(orDefault(dir, "asc")))
	}
	// The primary key after the sort column keeps pages stable.
	for _, c := range t.Columns {
		if c.PrimaryKey {
			order = append(order, dirQuoteIdent(c.Name)+" "+strings.ToUpper(orDefault(dir, "asc")))
		}
	}
	stmt := "SELECT * FROM " + dirQuoteIdent(name)
	if len(order) > 0 {
		stmt += " ORDER BY " + strings.Join(order, ", ")
	}
	stmt += fmt.Sprintf(" LIMIT %d OFFSET %d", limit, offset)
	// The rest of the answer ({"total":…,"offset":…,"truncated":…}) fits in 128 bytes.
	res, err := d.Query(ctx, stmt, inspect.Limits{MaxRows: int(limit), MaxBytes: h.maxBytes - 128, Timeout: h.timeout})
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	total, err := h.query(ctx, d, "SELECT count(*) FROM "+dirQuoteIdent(name))
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	answer := map[string]any{
		"columns": res.Columns, "rows": res.Rows, "total": total.Rows[0][0], "offset": offset,
		"truncated": res.TruncatedBy == inspect.LimitBytes,
	}
	if res.TruncatedBy == inspect.LimitBytes {
		answer["truncatedBy"] = inspect.LimitBytes
		answer["next"] = fmt.Sprintf("rows cut at the answer limit of %d bytes: ask for the rest with offset=%d", h.maxBytes, offset+int64(len(res.Rows)))
	}
	writeJSON(w, answer)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// dirEventJSON is an eventlog event as the page shows it.
type dirEventJSON struct {
	Seq          string           `json:"seq"`
	SeqNum       eventlog.SeqNum  `json:"seqNum"`
	Parent       string           `json:"parent"`
	Name         string           `json:"name"`
	Args         json.RawMessage  `json:"args"`
	ClientID     string           `json:"clientId"`
	SessionID    string           `json:"sessionId"`
	Synced       bool             `json:"synced"`
	ClientOnly   bool             `json:"clientOnly"`
	SyncMetadata *json.RawMessage `json:"syncMetadata,omitempty"`
	ArgsOmitted  string           `json:"argsOmitted,omitempty"`
}

// eventFilter selects events of api/events.
type eventFilter struct {
	name     string
	status   string
	from, to *eventlog.SeqNum
}

func (f eventFilter) match(e eventlog.Event, syncHead int64) bool {
	if f.name != "" && e.Name != f.name {
		return false
	}
	synced := !e.SeqNum.IsClientOnly() && e.SeqNum.Global <= syncHead
	switch f.status {
	case "synced":
		if !synced {
			return false
		}
	case "pending":
		if synced || e.SeqNum.IsClientOnly() {
			return false
		}
	}
	return f.from == nil || e.SeqNum.Compare(*f.from) >= 0
}

// predecessor is the position just before s in log order, for a scan that
// starts at s.
func predecessor(s eventlog.SeqNum) eventlog.SeqNum {
	if s.Client > 0 {
		return eventlog.SeqNum{Global: s.Global, Client: s.Client - 1}
	}
	if s.Global == 0 {
		return eventlog.Root
	}
	return eventlog.SeqNum{Global: s.Global - 1, Client: math.MaxInt64}
}

func dirSeqParam(r *http.Request, name string) (*eventlog.SeqNum, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return nil, nil
	}
	s, err := eventlog.ParseSeqNum(v)
	if err != nil {
		return nil, fmt.Errorf("%s: want a sequence number such as e5 or e5.1: %w", name, err)
	}
	return &s, nil
}

var errPageFull = errors.New("page full")

func (h *dirHandler) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := eventFilter{name: q.Get("name"), status: orDefault(q.Get("status"), "all")}
	if f.status != "all" && f.status != "synced" && f.status != "pending" {
		h.fail(w, http.StatusBadRequest, errors.New(`status: want "all", "synced" or "pending"`))
		return
	}
	limit, err := intParam(r, "limit", DefaultLimit)
	if err != nil || limit < 1 {
		h.fail(w, http.StatusBadRequest, errors.New("limit: want a positive integer"))
		return
	}
	limit = min(limit, MaxLimit)
	var after *eventlog.SeqNum
	for name, dst := range map[string]**eventlog.SeqNum{"after": &after, "from": &f.from, "to": &f.to} {
		if *dst, err = dirSeqParam(r, name); err != nil {
			h.fail(w, http.StatusBadRequest, err)
			return
		}
	}
	start := eventlog.Root
	if after != nil {
		start = *after
	}
	if f.from != nil && start.Compare(predecessor(*f.from)) < 0 {
		start = predecessor(*f.from)
	}

	ctx := r.Context()
	d, ok := h.open(w, ctx)
	if !ok {
		return
	}
	defer d.Close()
	recorded, err := d.SyncStatus(ctx)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	syncHead := recorded.Head
	// The cursor stays where the caller left it until an event is read.
	next := start
	// Pending events all come after the recorded head: no need to read
	// the confirmed ones before it.
	if after := (eventlog.SeqNum{Global: syncHead, Client: math.MaxInt64}); f.status == "pending" && start.Compare(after) < 0 {
		start = after
	}

	var b bytes.Buffer
	b.WriteString(`{"events":[`)
	// The tail: ],"more":true,"next":"e…","truncated":true}
	free := h.maxBytes - b.Len() - 128
	n, more, truncated := 0, false, false
	err = d.ScanEvents(ctx, start, h.timeout, func(e eventlog.Event) error {
		if f.to != nil && e.SeqNum.Compare(*f.to) > 0 {
			return inspect.ErrStop
		}
		if f.status == "synced" && e.SeqNum.Global > syncHead {
			// Confirmed events all come before the recorded head.
			return inspect.ErrStop
		}
		if n == int(limit) {
			more = true
			return errPageFull
		}
		if f.match(e, syncHead) {
			j := marshalDirEvent(e, syncHead, "")
			if len(j)+1 > free {
				if n > 0 {
					more, truncated = true, true
					return errPageFull
				}
				j = marshalDirEvent(e, syncHead, fmt.Sprintf("the event is %d bytes as JSON, more than a response holds (%d)", len(j), h.maxBytes))
			}
			if n > 0 {
				b.WriteByte(',')
			}
			b.Write(j)
			free -= len(j) + 1
			n++
		}
		next = e.SeqNum
		return nil
	})
	switch {
	case errors.Is(err, errPageFull):
	case errors.Is(err, inspect.ErrTimeout):
		// A filter that matches little may take longer than a request
		// allows: the page ends where the scan did, and says there is more.
		more = true
	case err != nil:
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	cursor, _ := json.Marshal(next.String())
	fmt.Fprintf(&b, `],"more":%t,"next":%s`, more, cursor)
	if truncated {
		b.WriteString(`,"truncated":true`)
	}
	b.WriteString("}\n")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b.Bytes())
}

// marshalDirEvent encodes e; omitted, if set, replaces its args.
func marshalDirEvent(e eventlog.Event, syncHead int64, omitted string) []byte {
	ev := dirEventJSON{
		Seq: e.SeqNum.String(), SeqNum: e.SeqNum, Parent: e.ParentSeqNum.String(),
		Name: e.Name, Args: e.Args, ClientID: e.ClientID, SessionID: e.SessionID,
		ClientOnly: e.SeqNum.IsClientOnly(), Synced: !e.SeqNum.IsClientOnly() && e.SeqNum.Global <= syncHead,
	}
	if len(e.SyncMetadata) > 0 && json.Valid(e.SyncMetadata) {
		ev.SyncMetadata = &e.SyncMetadata
	}
	if omitted != "" {
		ev.Args, ev.SyncMetadata, ev.ArgsOmitted = nil, nil, omitted
	}
	if !json.Valid(ev.Args) {
		raw, _ := json.Marshal(string(ev.Args))
		ev.Args = raw
	}
	j, err := json.Marshal(ev)
	if err != nil {
		// Only the raw fields can fail, and they were checked.
		j, _ = json.Marshal(map[string]string{"seq": ev.Seq, "error": err.Error()})
	}
	return j
}

// dirSync is the sync status recorded in a store directory, in the fields
// of livestore.SyncStatus where they apply.
type dirSync struct {
	LocalHead    string  `json:"localHead"`
	UpstreamHead int64   `json:"upstreamHead"`
	PendingCount int64   `json:"pendingCount"`
	BackendID    string  `json:"backendId,omitempty"`
	Connected    bool    `json:"connected"`
	IsSynced     bool    `json:"isSynced"`
	Enabled      bool    `json:"enabled"`
	NextRetryAt  *string `json:"nextRetryAt"`
	Recorded     bool    `json:"recorded"`
	Note         string  `json:"note"`
}

// readSync reads the recorded sync status along the eventlog's key, never
// counting the whole log: the live stream reads it after every commit.
func (h *dirHandler) readSync(ctx context.Context, d *inspect.Dir) (dirSync, error) {
	lh, err := h.pollHead(ctx, d)
	if err != nil {
		return dirSync{}, err
	}
	pending, err := h.query(ctx, d, fmt.Sprintf(`SELECT count(*) FROM eventlog WHERE seqNumGlobal > %d AND seqNumClient = 0`, lh.syncHead))
	if err != nil {
		return dirSync{}, fmt.Errorf("count pending events: %w", err)
	}
	n, _ := pending.Rows[0][0].(int64)
	return dirSync{
		LocalHead: lh.head, UpstreamHead: lh.syncHead, PendingCount: n, BackendID: lh.backend, Recorded: true,
		Note: "as recorded in the directory: whether the owning program is connected is not written there",
	}, nil
}

func (h *dirHandler) sync(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	d, ok := h.open(w, ctx)
	if !ok {
		return
	}
	defer d.Close()
	s, err := h.readSync(ctx, d)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, s)
}

func (h *dirHandler) export(w http.ResponseWriter, r *http.Request) {
	storeID := orDefault(r.URL.Query().Get("storeId"), filepath.Base(filepath.Clean(h.dir)))
	ctx := r.Context()
	d, ok := h.open(w, ctx)
	if !ok {
		return
	}
	defer d.Close()
	recorded, err := d.SyncStatus(ctx)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	backendID := recorded.BackendID
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename=%q`, storeID+".jsonl"))
	// A failure after the first bytes can only be told in a trailer.
	w.Header().Set("Trailer", "X-Livestore-Error")
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	// The export is one snapshot, bounded by the request, not by the time
	// limit of a page: a large log takes as long as the download.
	err = d.ScanEvents(ctx, eventlog.Root, -1, func(e eventlog.Event) error {
		if e.SeqNum.IsClientOnly() {
			return nil
		}
		line := livestore.RecoveryEvent{StoreID: storeID, BackendID: backendID, SeqNum: e.SeqNum.Global, ParentSeqNum: e.ParentSeqNum.Global,
			Name: e.Name, Args: e.Args, ClientID: e.ClientID, SessionID: e.SessionID, CreatedAt: dirCreatedAt(e.SyncMetadata)}
		if !json.Valid(line.Args) {
			raw, _ := json.Marshal(string(line.Args))
			line.Args = raw
		}
		return enc.Encode(line)
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		h.log.Warn("devtools export", "dir", h.dir, "err", err)
		w.Header().Set("X-Livestore-Error", "export ended early: "+err.Error())
	}
}

// dirCreatedAt reads the server's createdAt from an event's sync metadata.
func dirCreatedAt(meta json.RawMessage) string {
	if len(meta) == 0 {
		return ""
	}
	var m struct {
		CreatedAt string `json:"createdAt"`
		Value     struct {
			CreatedAt string `json:"createdAt"`
		} `json:"value"`
	}
	if json.Unmarshal(meta, &m) != nil {
		return ""
	}
	return orDefault(m.CreatedAt, m.Value.CreatedAt)
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

// liveHead is what a directory's live stream compares between polls.
type liveHead struct {
	head     string
	syncHead int64
	backend  string
}

func (h *dirHandler) pollHead(ctx context.Context, d *inspect.Dir) (liveHead, error) {
	res, err := h.query(ctx, d, `SELECT (SELECT seqNumGlobal || '.' || seqNumClient || '.' || seqNumRebaseGeneration FROM eventlog
 ORDER BY seqNumGlobal DESC, seqNumClient DESC LIMIT 1), head, backendId FROM __livestore_sync_status LIMIT 1`)
	if err != nil {
		return liveHead{}, err
	}
	var lh liveHead
	if len(res.Rows) == 0 {
		return lh, nil
	}
	row := res.Rows[0]
	if s, ok := row[0].(string); ok {
		var seq eventlog.SeqNum
		parts := strings.Split(s, ".")
		if len(parts) == 3 {
			seq.Global, _ = strconv.ParseInt(parts[0], 10, 64)
			seq.Client, _ = strconv.ParseInt(parts[1], 10, 64)
			seq.RebaseGeneration, _ = strconv.ParseInt(parts[2], 10, 64)
		}
		lh.head = seq.String()
	} else {
		lh.head = eventlog.Root.String()
	}
	lh.syncHead, _ = row[1].(int64)
	lh.backend, _ = row[2].(string)
	return lh, nil
}

func (h *dirHandler) live(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := h.streamContext(r)
	defer cancel()
	d, err := inspect.Open(ctx, h.dir)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	defer d.Close()
	out, err := startSSE(w)
	if err != nil {
		return
	}
	var last liveHead
	var tables []string
	first := true
	tick := time.NewTicker(livePoll)
	defer tick.Stop()
	for {
		qctx, qcancel := context.WithTimeout(ctx, h.timeout)
		err := h.pollLive(qctx, d, &last, &tables, first, out)
		qcancel()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, errStreamGone) {
				return
			}
			h.log.Warn("devtools live stream", "dir", h.dir, "err", err)
		}
		first = false
		if out.flush(time.Now()) != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

var errStreamGone = errors.New("live stream closed")

// pollLive sends "commit" and "sync" events for what changed since last
// (everything on the first poll).
func (h *dirHandler) pollLive(ctx context.Context, d *inspect.Dir, last *liveHead, tables *[]string, first bool, out *sse) error {
	now, err := h.pollHead(ctx, d)
	if err != nil {
		return err
	}
	if first || now.head != last.head {
		list, err := h.listTables(ctx, d, false)
		if err != nil {
			return err
		}
		*tables = (*tables)[:0]
		for _, t := range list {
			*tables = append(*tables, t.Name)
		}
		// Without the schema the changed tables are unknown: every table
		// may have changed.
		b, err := json.Marshal(map[string]any{"head": now.head, "tables": *tables})
		if err != nil {
			return err
		}
		if out.send("commit", b) != nil {
			return errStreamGone
		}
	}
	if first || now.syncHead != last.syncHead || now.backend != last.backend || now.head != last.head {
		s, err := h.readSync(ctx, d)
		if err != nil {
			return err
		}
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		if out.send("sync", b) != nil {
			return errStreamGone
		}
	}
	*last = now
	return nil
}

func dirQuoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

func dirQuoteString(s string) string {
	return `'` + strings.ReplaceAll(s, `'`, `''`) + `'`
}
