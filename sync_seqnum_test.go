package livestore_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/sqlite"
	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
)

// scriptServer speaks the sync protocol over a real WebSocket but answers
// every pull with pages chosen by the test, however wrong, and records the
// pushes it receives (acknowledging them).
type scriptServer struct {
	url   string
	pages func(cursor *syncproto.Cursor) []syncproto.PullResponse

	mu     sync.Mutex
	pushes [][]syncproto.Event
}

func startScriptServer(t *testing.T, pages func(cursor *syncproto.Cursor) []syncproto.PullResponse) *scriptServer {
	t.Helper()
	ss := &scriptServer{pages: pages}
	hs := httptest.NewServer(http.HandlerFunc(ss.serve))
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
	})
	ss.url = "ws" + strings.TrimPrefix(hs.URL, "http")
	return ss
}

func (ss *scriptServer) serve(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ctx := r.Context()
	send := func(v any) error {
		b, err := syncproto.Marshal(v)
		if err != nil {
			return err
		}
		return ws.Write(ctx, websocket.MessageText, b)
	}
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return
		}
		msg, err := syncproto.DecodeClientMessage(data)
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *syncproto.Ping:
			err = send(&syncproto.Pong{})
		case *syncproto.Request:
			switch m.Tag {
			case syncproto.TagPull:
				p, derr := syncproto.DecodePullRequest(m.Payload)
				if derr != nil {
					return
				}
				for _, page := range ss.pages(p.Cursor) {
					v, merr := syncproto.Marshal(page)
					if merr != nil {
						return
					}
					if err = ws.Write(ctx, websocket.MessageText, syncproto.AppendChunk(nil, m.ID, v)); err != nil {
						return
					}
				}
			case syncproto.TagPush:
				p, derr := syncproto.DecodePushRequest(m.Payload)
				if derr != nil {
					return
				}
				ss.mu.Lock()
				ss.pushes = append(ss.pushes, p.Batch)
				ss.mu.Unlock()
				err = send(syncproto.ExitSuccess(m.ID, []byte(`{}`)))
			}
		}
		if err != nil {
			return
		}
	}
}

func (ss *scriptServer) pushed() [][]syncproto.Event {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return append([][]syncproto.Event(nil), ss.pushes...)
}

func (ss *scriptServer) sync() *livestore.SyncOptions {
	return &livestore.SyncOptions{Backend: syncclient.WebSocketBackend(ss.url, syncclient.Options{}),
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
}

const scriptBackend = "script-backend"

func scriptPage(events ...syncproto.Event) syncproto.PullResponse {
	p := syncproto.PullResponse{BackendID: scriptBackend}
	for _, ev := range events {
		p.Batch = append(p.Batch, syncproto.PullItem{Event: ev, Metadata: &syncproto.SyncMetadata{CreatedAt: "2026-11-30T12:00:00.000Z"}})
	}
	return p
}

// storeAtTheTop writes a store directory whose eventlog is n todo events
// numbered up to the last global sequence number (eventlog.MaxNumber), of
// which the first confirmed are confirmed by scriptBackend, as a store that
// synced that far would have it.
func storeAtTheTop(t *testing.T, a *todoApp, dir string, n, confirmed int) {
	t.Helper()
	ctx := context.Background()
	s, err := livestore.Open(ctx, a.schema, livestore.Options{Dir: dir, StoreID: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := s.Commit(ctx, a.created.New(todoCreated{ID: string(rune('a' + i)), Text: "local"})); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := sqlite.Open(filepath.Join(dir, livestore.DBFileName), sqlite.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	off := int64(eventlog.MaxNumber - n)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE eventlog SET seqNumGlobal = seqNumGlobal + ?, parentSeqNumGlobal = parentSeqNumGlobal + ?`, []any{off, off}},
		{`UPDATE __livestore_sync_status SET head = ?, backendId = ?`, []any{off + int64(confirmed), scriptBackend}},
	} {
		if err := c.Exec(q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
}

func waitSyncStatus(t *testing.T, s *livestore.Store, what string, ok func(livestore.SyncStatus) bool) livestore.SyncStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := s.SyncStatus(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s: %+v", what, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func localEvents(t *testing.T, s *livestore.Store) []string {
	t.Helper()
	var out []string
	for ev, err := range s.Events(context.Background(), eventlog.Root) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev.ParentSeqNum.String()+"<-"+ev.SeqNum.String())
	}
	return out
}

// TestCommitAtTheLastSeqNum: with the global head at 2^53-1, committing a
// synced event fails (it once wrapped to negative numbers and reported the
// store synced while the server lacked the event); nothing is written,
// nothing pushed; client-only events still commit.
func TestCommitAtTheLastSeqNum(t *testing.T) {
	a := newTodoApp(t)
	dir := t.TempDir()
	storeAtTheTop(t, a, dir, 1, 1)
	ss := startScriptServer(t, func(*syncproto.Cursor) []syncproto.PullResponse { return []syncproto.PullResponse{scriptPage()} })
	s := openSynced(t, a.schema, dir, ss.sync())
	waitSyncStatus(t, s, "synced store", func(st livestore.SyncStatus) bool { return st.IsSynced })

	err := s.Commit(context.Background(), a.created.New(todoCreated{ID: "x", Text: "one too many"}))
	want := "livestore: commit v1.TodoCreated: sequence numbers exhausted: no global sequence number after e9007199254740991 (the largest is 9007199254740991)"
	if !errors.Is(err, eventlog.ErrSeqNumExhausted) || err.Error() != want {
		t.Fatalf("commit at the last sequence number: %v\nwant %s", err, want)
	}
	if got := strings.Join(localEvents(t, s), " "); got != "e9007199254740990<-e9007199254740991" {
		t.Fatalf("eventlog after the refused commit: %s", got)
	}
	if err := s.Commit(context.Background(), a.renamed.New(todoCreated{ID: "a", Text: "!"})); err != nil {
		t.Fatalf("client-only commit: %v", err)
	}
	st, err := s.SyncStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.PendingCount != 0 || st.LocalHead != (eventlog.SeqNum{Global: eventlog.MaxNumber, Client: 1}) || st.UpstreamHead != eventlog.MaxNumber {
		t.Fatalf("status %+v", st)
	}
	if p := ss.pushed(); len(p) != 0 {
		t.Fatalf("pushed %v", p)
	}
}

// TestRebaseBeyondTheLastSeqNum: a pending event at 2^53-1 that the server's
// event takes the place of cannot be renumbered after it. Syncing stops
// with the reason in SyncStatus; the local log is left as it was and
// nothing is pushed.
func TestRebaseBeyondTheLastSeqNum(t *testing.T) {
	a := newTodoApp(t)
	dir := t.TempDir()
	storeAtTheTop(t, a, dir, 2, 1)
	other := syncproto.Event{Name: "v1.TodoCreated", Args: []byte(`{"id":"o","text":"other"}`),
		SeqNum: syncproto.MaxSeqNum, ParentSeqNum: syncproto.MaxSeqNum - 1, ClientID: "other", SessionID: "other-s"}
	ss := startScriptServer(t, func(c *syncproto.Cursor) []syncproto.PullResponse {
		if c == nil || c.EventSequenceNumber != syncproto.MaxSeqNum-1 {
			t.Errorf("pull from cursor %+v", c)
		}
		return []syncproto.PullResponse{scriptPage(other)}
	})
	s := openSynced(t, a.schema, dir, ss.sync())
	st := waitSyncStatus(t, s, "stopped sync", func(st livestore.SyncStatus) bool { return st.Stopped })
	if !strings.Contains(st.Err, "rebase e9007199254740991 (v1.TodoCreated) onto the server's events: sequence numbers exhausted: no global sequence number after e9007199254740991") {
		t.Fatalf("status error %q", st.Err)
	}
	if st.IsSynced || st.PendingCount != 1 || st.UpstreamHead != syncproto.MaxSeqNum-1 {
		t.Fatalf("status %+v", st)
	}
	if got := strings.Join(localEvents(t, s), " "); got != "e9007199254740989<-e9007199254740990 e9007199254740990<-e9007199254740991" {
		t.Fatalf("eventlog after the refused rebase: %s", got)
	}
	if p := ss.pushed(); len(p) != 0 {
		t.Fatalf("pushed %v", p)
	}
}

// TestPullRefusesMisnumberedEvents: a server sending events past 2^53-1,
// skipping or not numbering them consecutively stops syncing with the
// reason in SyncStatus; nothing of it is stored, local commits go on and
// are reported pending, not synced.
func TestPullRefusesMisnumberedEvents(t *testing.T) {
	ev := func(seq, parent int64) syncproto.Event {
		return syncproto.Event{Name: "v1.TodoCreated", Args: []byte(`{"id":"s","text":"server"}`), SeqNum: seq, ParentSeqNum: parent, ClientID: "srv", SessionID: "srv-s"}
	}
	for _, tc := range []struct {
		name string
		page syncproto.PullResponse
		err  string
	}{
		{"seqNum at the top of int64", scriptPage(ev(math.MaxInt64, 0)),
			"pull: event 0 (v1.TodoCreated) has seqNum 9223372036854775807; the largest sequence number is 9007199254740991"},
		{"jump inside a page", scriptPage(ev(1, 0), ev(3, 1)),
			"pull: event 1 (v1.TodoCreated) has seqNum 3 and parentSeqNum 1; seqNum must be parentSeqNum+1"},
		{"gap before a page", scriptPage(ev(2, 1)),
			"pull: gap: first event 2 has parent 1, local upstream head is 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTodoApp(t)
			ss := startScriptServer(t, func(*syncproto.Cursor) []syncproto.PullResponse { return []syncproto.PullResponse{tc.page} })
			s := openSynced(t, a.schema, t.TempDir(), ss.sync())
			st := waitSyncStatus(t, s, "stopped sync", func(st livestore.SyncStatus) bool { return st.Stopped })
			if st.Err != tc.err || st.UpstreamHead != 0 || st.LocalHead != eventlog.Root {
				t.Fatalf("status %+v\nwant error %s", st, tc.err)
			}
			if err := s.Commit(context.Background(), a.created.New(todoCreated{ID: "l", Text: "local"})); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(localEvents(t, s), " "); got != "e0<-e1" {
				t.Fatalf("eventlog: %s", got)
			}
			if st, _ := s.SyncStatus(context.Background()); st.IsSynced || st.PendingCount != 1 {
				t.Fatalf("status after a local commit %+v", st)
			}
			if p := ss.pushed(); len(p) != 0 {
				t.Fatalf("pushed %v", p)
			}
		})
	}
}
