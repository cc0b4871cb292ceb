package devtools

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"path/filepath"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/inspect"
)

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

// eventsRequest is a parsed api/events request: the filter, the page size
// and where the scan starts.
type eventsRequest struct {
	filter eventFilter
	limit  int64
	start  eventlog.SeqNum
}

// parseEventsRequest reads the parameters of api/events.
func parseEventsRequest(r *http.Request) (eventsRequest, error) {
	q := r.URL.Query()
	f := eventFilter{name: q.Get("name"), status: orDefault(q.Get("status"), "all")}
	if f.status != "all" && f.status != "synced" && f.status != "pending" {
		return eventsRequest{}, errors.New(`status: want "all", "synced" or "pending"`)
	}
	limit, err := intParam(r, "limit", DefaultLimit)
	if err != nil || limit < 1 {
		return eventsRequest{}, errors.New("limit: want a positive integer")
	}
	var after *eventlog.SeqNum
	for name, dst := range map[string]**eventlog.SeqNum{"after": &after, "from": &f.from, "to": &f.to} {
		if *dst, err = dirSeqParam(r, name); err != nil {
			return eventsRequest{}, err
		}
	}
	start := eventlog.Root
	if after != nil {
		start = *after
	}
	if f.from != nil && start.Compare(predecessor(*f.from)) < 0 {
		start = predecessor(*f.from)
	}
	return eventsRequest{filter: f, limit: min(limit, MaxLimit), start: start}, nil
}

func (h *dirHandler) events(w http.ResponseWriter, r *http.Request) {
	req, err := parseEventsRequest(r)
	if err != nil {
		h.fail(w, http.StatusBadRequest, err)
		return
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
	page, err := h.eventsPage(ctx, d, req, recorded.Head)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(page)
}

// eventsPage scans the eventlog for the page req asks for and returns the
// answer of api/events, within the answer limit and the time limit.
func (h *dirHandler) eventsPage(ctx context.Context, d *inspect.Dir, req eventsRequest, syncHead int64) ([]byte, error) {
	f, start := req.filter, req.start
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
	err := d.ScanEvents(ctx, start, h.timeout, func(e eventlog.Event) error {
		if f.to != nil && e.SeqNum.Compare(*f.to) > 0 {
			return inspect.ErrStop
		}
		if f.status == "synced" && e.SeqNum.Global > syncHead {
			// Confirmed events all come before the recorded head.
			return inspect.ErrStop
		}
		if n == int(req.limit) {
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
		return nil, err
	}
	cursor, _ := json.Marshal(next.String())
	fmt.Fprintf(&b, `],"more":%t,"next":%s`, more, cursor)
	if truncated {
		b.WriteString(`,"truncated":true`)
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
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
			Name: e.Name, Args: e.Args, ClientID: e.ClientID, SessionID: e.SessionID, CreatedAt: createdAt(e.SyncMetadata)}
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
