package devtools

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
)

// storeEventJSON is one event of a live store's api/events.
type storeEventJSON struct {
	Seq         string          `json:"seq"`
	SeqNum      eventlog.SeqNum `json:"seqNum"`
	Parent      string          `json:"parent"`
	Name        string          `json:"name"`
	Args        json.RawMessage `json:"args,omitempty"`
	ArgsOmitted string          `json:"argsOmitted,omitempty"`
	ClientID    string          `json:"clientId"`
	SessionID   string          `json:"sessionId"`
	Synced      bool            `json:"synced"`
	ClientOnly  bool            `json:"clientOnly"`
	CreatedAt   string          `json:"createdAt,omitempty"`
}

// The tail of an events page: ],"more":true,"next":"e…","truncated":true}.
const eventsTail = 128

func seqParam(r *http.Request, name string) (*eventlog.SeqNum, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return nil, nil
	}
	s, err := eventlog.ParseSeqNum(v)
	if err != nil {
		return nil, fmt.Errorf("%s: want a sequence number such as e5, e5.1 or e5r1", name)
	}
	return &s, nil
}

func (a *storeAPI) events(w http.ResponseWriter, r *http.Request) {
	var q livestore.EventLogQuery
	after, err := seqParam(r, "after")
	if err != nil {
		sendError(w, http.StatusBadRequest, err)
		return
	}
	if after != nil {
		q.After = *after
	}
	if q.From, err = seqParam(r, "from"); err != nil {
		sendError(w, http.StatusBadRequest, err)
		return
	}
	if q.To, err = seqParam(r, "to"); err != nil {
		sendError(w, http.StatusBadRequest, err)
		return
	}
	limit, err := intParam(r, "limit", DefaultLimit)
	if err != nil || limit < 1 || limit > MaxLimit {
		sendError(w, http.StatusBadRequest, fmt.Errorf("limit: want an integer from 1 to %d", MaxLimit))
		return
	}
	q.Limit = int(limit)
	q.Name = r.URL.Query().Get("name")
	switch r.URL.Query().Get("status") {
	case "", "all":
	case "synced":
		q.Status = livestore.SyncedEvents
	case "pending":
		q.Status = livestore.PendingEvents
	default:
		sendError(w, http.StatusBadRequest, errors.New("status: want all, synced or pending"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	evs, more, err := a.s.EventLog(ctx, q)
	if err != nil {
		a.failed(w, r, "read the eventlog", err)
		return
	}
	var b bytes.Buffer
	b.WriteString(`{"events":[`)
	free := a.maxBytes - b.Len() - eventsTail
	next, n, truncated := q.After, 0, false
	for _, e := range evs {
		ev := storeEventJSON{Seq: e.SeqNum.String(), SeqNum: e.SeqNum, Parent: e.ParentSeqNum.String(), Name: e.Name,
			Args: e.Args, ClientID: e.ClientID, SessionID: e.SessionID, Synced: e.Synced,
			ClientOnly: e.SeqNum.IsClientOnly(), CreatedAt: createdAt(e.SyncMetadata)}
		j := marshalStoreEvent(ev)
		if len(j)+1 > free {
			if n > 0 {
				more, truncated = true, true
				break
			}
			ev.Args = nil
			ev.ArgsOmitted = fmt.Sprintf("the event is %d bytes as JSON, more than an answer holds (%d)", len(j), a.maxBytes)
			j = marshalStoreEvent(ev)
		}
		if n > 0 {
			b.WriteByte(',')
		}
		b.Write(j)
		free -= len(j) + 1
		next = e.SeqNum
		n++
	}
	cursor, _ := json.Marshal(next.String())
	fmt.Fprintf(&b, `],"more":%t,"next":%s`, more, cursor)
	if truncated {
		b.WriteString(`,"truncated":true`)
	}
	b.WriteByte('}')
	sendBody(w, b.Bytes())
}

// marshalStoreEvent encodes ev, with args as a string if they are not valid
// JSON.
func marshalStoreEvent(ev storeEventJSON) []byte {
	j, err := json.Marshal(ev)
	if err == nil {
		return j
	}
	ev.Args, _ = json.Marshal(string(ev.Args))
	j, _ = json.Marshal(ev)
	return j
}

// createdAt is the time the sync server stored an event, read from the
// event's sync metadata: {"createdAt":…} as this module writes it, or
// {"value":{"createdAt":…}} as an Option; "" when it holds none.
func createdAt(meta json.RawMessage) string {
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

func (a *storeAPI) syncStatus(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	st, err := a.s.SyncStatus(ctx)
	if err != nil {
		a.failed(w, r, "read the sync status", err)
		return
	}
	sendBody(w, syncStatusJSON(st, a.s.SyncStatusSignal() != nil))
}

// syncStatusJSON is the JSON of api/sync and of the live feed's sync
// events: the SyncStatus fields, the local head as a string, whether the
// store syncs at all, and when it reconnects after a lost connection (null
// while connected or stopped).
func syncStatusJSON(st livestore.SyncStatus, enabled bool) []byte {
	b, _ := json.Marshal(st)
	var m map[string]any
	json.Unmarshal(b, &m)
	m["localHeadSeq"] = st.LocalHead.String()
	m["enabled"] = enabled
	m["nextRetryAt"] = nil
	if !st.NextRetryAt.IsZero() {
		m["nextRetryAt"] = st.NextRetryAt.UTC().Format(time.RFC3339Nano)
	}
	b, _ = json.Marshal(m)
	return b
}

// exportPage is how many events one read of an export takes.
const exportPage = 1000

func (a *storeAPI) export(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	st, err := a.s.SyncStatus(ctx)
	if err != nil {
		a.failed(w, r, "read the sync status", err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%s", strconv.Quote(a.s.StoreID()+"-events.jsonl")))
	bw := bufio.NewWriterSize(w, 1<<16)
	enc := json.NewEncoder(bw)
	after, started := eventlog.Root, false
	for {
		pctx, cancel := context.WithTimeout(ctx, a.timeout)
		evs, more, err := a.s.EventLog(pctx, livestore.EventLogQuery{After: after, Limit: exportPage})
		cancel()
		if err != nil {
			if !started {
				a.failed(w, r, "read the eventlog", err)
				return
			}
			// The status line is sent: a cut download is all that can tell.
			a.log.Error("devtools: export", "err", err)
			return
		}
		for _, e := range evs {
			after = e.SeqNum
			// The export format holds the events a sync server holds:
			// client-only events stay out.
			if e.SeqNum.IsClientOnly() {
				continue
			}
			line := livestore.RecoveryEvent{StoreID: a.s.StoreID(), SeqNum: e.SeqNum.Global, ParentSeqNum: e.ParentSeqNum.Global,
				Name: e.Name, Args: e.Args, ClientID: e.ClientID, SessionID: e.SessionID}
			if e.Synced {
				line.BackendID, line.CreatedAt = st.BackendID, createdAt(e.SyncMetadata)
			}
			if err := enc.Encode(line); err != nil {
				return
			}
			started = true
		}
		if !more {
			break
		}
	}
	bw.Flush()
}

func (a *storeAPI) importEvents(w http.ResponseWriter, r *http.Request) {
	body := http.MaxBytesReader(w, r.Body, MaxImportBytes)
	dec := json.NewDecoder(bufio.NewReader(body))
	var lines []livestore.RecoveryEvent
	for {
		var line livestore.RecoveryEvent
		err := dec.Decode(&line)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				sendError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("the import is larger than %d bytes", MaxImportBytes))
				return
			}
			sendError(w, http.StatusBadRequest, fmt.Errorf("line %d is not an event of an export: %w", len(lines)+1, err))
			return
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		sendError(w, http.StatusBadRequest, errors.New("no events to import (send the JSON lines of an export)"))
		return
	}
	n, err := a.s.ImportEvents(r.Context(), lines)
	switch {
	case errors.Is(err, livestore.ErrStoreNotEmpty):
		sendError(w, http.StatusConflict, err)
		return
	case errors.Is(err, livestore.ErrStoreClosed):
		a.failed(w, r, "import", err)
		return
	case err != nil:
		sendError(w, http.StatusBadRequest, err)
		return
	}
	sendJSON(w, map[string]int{"imported": n})
}
