package syncserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type testServer struct {
	*syncserver.Server
	http    *httptest.Server
	storage syncserver.Storage
	url     string // ws://…
}

// startServer runs a Server on a new SQLite file; opts.Storage, if set, is
// used instead. Everything is stopped when the test ends.
func startServer(t testing.TB, opts syncserver.Options) *testServer {
	t.Helper()
	if opts.Storage == nil {
		st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		opts.Storage = st
	}
	srv, err := syncserver.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.Close()
	})
	return &testServer{Server: srv, http: hs, storage: opts.Storage, url: "ws" + strings.TrimPrefix(hs.URL, "http")}
}

// raw is a WebSocket speaking raw JSON to the server. A goroutine reads
// messages into a channel so that tests can also assert silence.
type raw struct {
	t    *testing.T
	ws   *websocket.Conn
	msgs chan rawMsg
}

type rawMsg struct {
	data string
	err  error
}

func dialRaw(t *testing.T, ts *testServer, storeID string) *raw {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, ts.url+"/?storeId="+storeID+"&transport=ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(16 << 20)
	r := &raw{t: t, ws: ws, msgs: make(chan rawMsg, 4096)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, b, err := ws.Read(context.Background())
			r.msgs <- rawMsg{string(b), err}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = ws.CloseNow()
		<-done
	})
	return r
}

func (r *raw) send(msg string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		r.t.Fatalf("send %s: %v", msg, err)
	}
}

func (r *raw) next(d time.Duration) (rawMsg, bool) {
	select {
	case m := <-r.msgs:
		return m, true
	case <-time.After(d):
		return rawMsg{}, false
	}
}

func (r *raw) recv() string {
	r.t.Helper()
	m, ok := r.next(10 * time.Second)
	if !ok {
		r.t.Fatal("recv: nothing within 10s")
	}
	if m.err != nil {
		r.t.Fatalf("recv: %v", m.err)
	}
	return m.data
}

// expect receives one message and compares it with want verbatim.
func (r *raw) expect(want string) {
	r.t.Helper()
	if got := r.recv(); got != want {
		r.t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// quiet asserts that nothing arrives for d.
func (r *raw) quiet(d time.Duration) {
	r.t.Helper()
	if m, ok := r.next(d); ok {
		r.t.Fatalf("unexpected message %q (err %v)", m.data, m.err)
	}
}

// closed reads until the connection ends and returns its close status.
func (r *raw) closed() websocket.StatusCode {
	r.t.Helper()
	for {
		m, ok := r.next(10 * time.Second)
		if !ok {
			r.t.Fatal("connection still open after 10s")
		}
		if m.err != nil {
			return websocket.CloseStatus(m.err)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := syncproto.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func chain(after int64, n int, clientID string) []syncproto.Event {
	out := make([]syncproto.Event, n)
	for i := range out {
		seq := after + int64(i) + 1
		out[i] = syncproto.Event{Name: "v1.TodoCreated", Args: json.RawMessage(fmt.Sprintf(`{"id":"t%d","text":"todo %d"}`, seq, seq)),
			SeqNum: seq, ParentSeqNum: seq - 1, ClientID: clientID, SessionID: "s-" + clientID}
	}
	return out
}

func pushMsg(t *testing.T, id, storeID string, batch []syncproto.Event, backendID *string) string {
	t.Helper()
	return mustJSON(t, &syncproto.Request{ID: id, Tag: syncproto.TagPush, Payload: json.RawMessage(mustJSON(t, syncproto.PushRequest{StoreID: storeID, Batch: batch, BackendID: backendID}))})
}

func pullMsg(t *testing.T, id, storeID string, live bool, cursor *syncproto.Cursor) string {
	t.Helper()
	return mustJSON(t, &syncproto.Request{ID: id, Tag: syncproto.TagPull, Payload: json.RawMessage(mustJSON(t, syncproto.PullRequest{StoreID: storeID, Live: live, Cursor: cursor}))})
}

const pushOK = `{"_tag":"Exit","requestId":"%s","exit":{"_tag":"Success","value":{}}}`

// page decodes a Chunk carrying one PullResponse.
func page(t *testing.T, msg, requestID string) syncproto.PullResponse {
	t.Helper()
	m, err := syncproto.DecodeServerMessage([]byte(msg))
	if err != nil {
		t.Fatalf("decode %s: %v", msg, err)
	}
	c, ok := m.(*syncproto.Chunk)
	if !ok || c.RequestID != requestID || len(c.Values) != 1 {
		t.Fatalf("want a Chunk for %s with one value, got %s", requestID, msg)
	}
	var res syncproto.PullResponse
	if err := json.Unmarshal(c.Values[0], &res); err != nil {
		t.Fatal(err)
	}
	return res
}

func backendID(t *testing.T, ts *testServer, storeID string) string {
	t.Helper()
	id, err := ts.storage.BackendID(context.Background(), storeID)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func head(t *testing.T, ts *testServer, storeID string) int64 {
	t.Helper()
	h, err := ts.storage.Head(context.Background(), storeID)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// checkLog asserts that the store's log is 1..n without gaps.
func checkLog(t *testing.T, ts *testServer, storeID string, n int64) {
	t.Helper()
	evs, err := ts.storage.Read(context.Background(), storeID, 0, 1<<50, 100000)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(evs)) != n {
		t.Fatalf("log has %d events, want %d", len(evs), n)
	}
	for i, ev := range evs {
		if ev.SeqNum != int64(i+1) || ev.ParentSeqNum != int64(i) {
			t.Fatalf("event %d: seqNum %d parent %d", i, ev.SeqNum, ev.ParentSeqNum)
		}
	}
	if h := head(t, ts, storeID); h != n {
		t.Fatalf("head %d, want %d", h, n)
	}
}

// splitPull cuts pull items into pages as the reference server does, by the
// sizes Marshal gives (independently of the server's page encoder): at most
// 100 items and 900,000 bytes a page, measured with the longest page info.
func splitPull(items []syncproto.PullItem, backendID string) ([][]syncproto.PullItem, error) {
	empty, err := syncproto.Marshal(syncproto.PullResponse{PageInfo: syncproto.PageInfo{Kind: syncproto.MoreKnown, Remaining: syncproto.MaxSeqNum + 1}, BackendID: backendID})
	if err != nil {
		return nil, err
	}
	return syncproto.Split(items, syncproto.MaxEventsPerMessage, syncproto.MaxPayloadBytes, len(empty), func(it syncproto.PullItem) (int, error) {
		b, err := syncproto.Marshal(it)
		return len(b), err
	})
}
