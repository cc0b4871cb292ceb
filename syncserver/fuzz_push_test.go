package syncserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// fuzzTarget is a real server on loopback, on in-memory storage, shared by
// the iterations of one fuzz worker.
type fuzzTarget struct {
	storage syncserver.Storage
	url     string
	stores  atomic.Int64
}

func newFuzzTarget(f *testing.F) *fuzzTarget {
	f.Helper()
	st := newMemStorage()
	srv, err := syncserver.New(syncserver.Options{Storage: st})
	if err != nil {
		f.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	f.Cleanup(func() {
		hs.CloseClientConnections()
		srv.Close()
		hs.Close()
	})
	return &fuzzTarget{storage: st, url: "ws" + strings.TrimPrefix(hs.URL, "http")}
}

// fuzzConn is one WebSocket to the target, read synchronously.
type fuzzConn struct {
	t  *testing.T
	ws *websocket.Conn
}

func (ft *fuzzTarget) dial(t *testing.T, storeID string) *fuzzConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, ft.url+"/?storeId="+storeID+"&transport=ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(32 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	return &fuzzConn{t: t, ws: ws}
}

func (c *fuzzConn) send(msg []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, msg); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// next reads the next server message.
func (c *fuzzConn) next() syncproto.ServerMessage {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	m, err := syncproto.DecodeServerMessage(b)
	if err != nil {
		c.t.Fatalf("server sent an undecodable message %q: %v", b, err)
	}
	return m
}

// alive asserts the connection still answers a Ping.
func (c *fuzzConn) alive() {
	c.t.Helper()
	c.send([]byte(`{"_tag":"Ping"}`))
	if m, ok := c.next().(*syncproto.Pong); !ok {
		c.t.Fatalf("after the input, a Ping got %#v", m)
	}
}

func (ft *fuzzTarget) log(t *testing.T, storeID string) []syncproto.Event {
	t.Helper()
	evs, err := ft.readLog(storeID)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func (ft *fuzzTarget) readLog(storeID string) ([]syncproto.Event, error) {
	evs, err := ft.storage.Read(context.Background(), storeID, 0, 1<<62, 1<<20)
	if err != nil {
		return nil, err
	}
	out := make([]syncproto.Event, len(evs))
	for i, e := range evs {
		out[i] = e.Event
	}
	return out, nil
}

// fuzzChain returns n chained events after head.
func fuzzChain(after int64, n int) []syncproto.Event {
	out := make([]syncproto.Event, n)
	for i := range out {
		seq := after + int64(i) + 1
		out[i] = syncproto.Event{Name: "v1.Seed", Args: json.RawMessage(fmt.Sprintf(`{"n":%d}`, seq)),
			SeqNum: seq, ParentSeqNum: seq - 1, ClientID: "seed", SessionID: "seed-s"}
	}
	return out
}

// substitute replaces the placeholders of fuzz inputs: @store@ with the
// connection's store id, @backend@ with the store's backend id.
func substitute(in []byte, storeID, backendID string) []byte {
	in = bytes.ReplaceAll(in, []byte("@store@"), []byte(storeID))
	return bytes.ReplaceAll(in, []byte("@backend@"), []byte(backendID))
}

// FuzzPush sends a SyncWsRpc.Push with a fuzzed payload to a store that
// already holds `prefix % 4` events, and checks the server against an oracle
// of the push rules: a message with invalid UTF-8 or a payload that does not
// decode is answered with a defect; an empty batch is acknowledged; then a
// foreign backend id (BackendIdMismatchError), an oversized batch or one
// with an event breaking a rule of numbering, names, ids, args depth or size
// (UnknownError naming the event, see brokenRule), a batch not based on the
// head (ServerAheadError with the head and the
// batch's base) — each storing nothing; otherwise the batch is stored
// exactly. In every case the server answers that request, the log keeps its
// shape, and the connection stays usable. Placeholders: see substitute.
// Seed corpus: testdata/fuzz/FuzzPush.
func FuzzPush(f *testing.F) {
	ft := newFuzzTarget(f)
	valid, _ := json.Marshal(fuzzChain(0, 2))
	f.Add([]byte(`{"storeId":"@store@","batch":`+string(valid)+`,"backendId":{"_tag":"None"}}`), uint8(0))
	f.Fuzz(func(t *testing.T, payload []byte, prefix uint8) {
		storeID := fmt.Sprintf("fz%d", ft.stores.Add(1))
		c := ft.dial(t, storeID)
		head := int64(prefix % 4)
		if head > 0 {
			msg, _ := syncproto.Marshal(&syncproto.Request{ID: "0", Tag: syncproto.TagPush,
				Payload: mustMarshal(t, syncproto.PushRequest{StoreID: storeID, Batch: fuzzChain(0, int(head))})})
			c.send(msg)
			if exit, ok := c.next().(*syncproto.Exit); !ok || !exit.Success {
				t.Fatalf("prefix push: %#v", exit)
			}
		}
		backendID, err := ft.storage.BackendID(context.Background(), storeID)
		if err != nil {
			t.Fatal(err)
		}
		before := ft.log(t, storeID)
		payload = substitute(payload, storeID, backendID)
		envelope := []byte(`{"_tag":"Request","id":"7","tag":"SyncWsRpc.Push","payload":` + string(payload) + `,"headers":[]}`)
		c.send(envelope)
		answer := c.next()

		stored := before
		msg, derr := syncproto.DecodeClientMessage(envelope)
		req, isReq := msg.(*syncproto.Request)
		switch {
		case errors.Is(derr, syncproto.ErrInvalidUTF8):
			// Invalid UTF-8 anywhere fails the request it names.
			exit, ok := answer.(*syncproto.Exit)
			var defect *syncproto.DefectError
			if !ok || exit.RequestID != "7" || !errors.As(exit.Err(), &defect) {
				t.Fatalf("push with invalid UTF-8 %q: answer %#v", envelope, answer)
			}
		case derr != nil || !isReq || req.ID != "7" || req.Tag != syncproto.TagPush:
			// The fuzzed payload broke the envelope: a defect or a failed
			// Exit, as for any malformed message.
			if exit, ok := answer.(*syncproto.Exit); ok && exit.Success {
				t.Fatalf("broken envelope %q acknowledged", envelope)
			}
		default:
			exit, ok := answer.(*syncproto.Exit)
			if !ok || exit.RequestID != "7" {
				t.Fatalf("answer to push: %#v", answer)
			}
			stored = checkPushAnswer(t, req.Payload, exit, head, backendID, before)
		}
		if got := ft.log(t, storeID); !sameEvents(got, stored) {
			t.Fatalf("log after push %q:\n got %v\nwant %v", payload, got, stored)
		}
		if h, _ := ft.storage.Head(context.Background(), storeID); h != int64(len(stored)) {
			t.Fatalf("head %d with %d events", h, len(stored))
		}
		c.alive()
	})
}

// checkPushAnswer compares the answer to a decodable push with the rules and
// returns the log the store must now have.
func checkPushAnswer(t *testing.T, raw json.RawMessage, exit *syncproto.Exit, head int64, backendID string, before []syncproto.Event) []syncproto.Event {
	t.Helper()
	p, err := syncproto.DecodePushRequest(raw)
	got := exit.Err()
	var defect *syncproto.DefectError
	var unknown *syncproto.UnknownError
	var mismatch *syncproto.BackendIDMismatchError
	var ahead *syncproto.ServerAheadError
	expect := func(ok bool, want string) {
		t.Helper()
		if !ok {
			t.Fatalf("push %s: got %v, want %s", raw, got, want)
		}
	}
	switch {
	case err != nil:
		expect(errors.As(got, &defect), "a defect (undecodable payload: "+err.Error()+")")
	case len(p.Batch) == 0:
		expect(got == nil, "success (empty batch)")
	case p.BackendID != nil && *p.BackendID != backendID:
		expect(errors.As(got, &mismatch) && mismatch.Expected == backendID && mismatch.Received == *p.BackendID, "BackendIdMismatchError")
	case len(p.Batch) > syncserver.DefaultMaxBatchSize:
		expect(errors.As(got, &unknown), "UnknownError (oversized batch)")
	case brokenRule(t, p.Batch, backendID) != "":
		rule := brokenRule(t, p.Batch, backendID)
		expect(errors.As(got, &unknown) && strings.Contains(unknown.Message, rule), "UnknownError naming "+rule)
	case p.Batch[0].ParentSeqNum != head:
		expect(errors.As(got, &ahead) && ahead.MinimumExpectedNum == head && ahead.ProvidedNum == p.Batch[0].ParentSeqNum,
			fmt.Sprintf("ServerAheadError{%d, %d}", head, p.Batch[0].ParentSeqNum))
	default:
		expect(got == nil, "success")
		return append(append([]syncproto.Event(nil), before...), p.Batch...)
	}
	return before
}

// brokenRule returns the start of the server's message for the first event
// of batch that breaks a push rule ("event 2 "), or "" if all keep them. It
// restates the rules independently of the server's code: consecutive
// numbering within 1..2^53-1, names of 1-256 bytes and ids of at most 256
// bytes without control characters, args at most 64 levels deep, and each
// event fitting a pull page alone.
func brokenRule(t *testing.T, batch []syncproto.Event, backendID string) string {
	t.Helper()
	text := func(s string, empty bool) bool {
		if len(s) > 256 || (s == "" && !empty) {
			return false
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f {
				return false
			}
		}
		return true
	}
	for i, ev := range batch {
		bad := ev.ParentSeqNum < 0 || ev.SeqNum > 1<<53-1 || ev.SeqNum != ev.ParentSeqNum+1 ||
			(i > 0 && ev.ParentSeqNum != batch[i-1].SeqNum) ||
			!text(ev.Name, false) || !text(ev.ClientID, true) || !text(ev.SessionID, true) ||
			argsDepth(ev.Args) > syncproto.DefaultMaxArgsDepth
		if !bad {
			_, err := splitPull([]syncproto.PullItem{{Event: ev, Metadata: &syncproto.SyncMetadata{CreatedAt: "2026-01-01T00:00:00.000Z"}}}, backendID)
			var over *syncproto.OversizeError
			if err != nil && !errors.As(err, &over) {
				t.Fatal(err)
			}
			bad = err != nil
		}
		if bad {
			return fmt.Sprintf("event %d ", i)
		}
	}
	return ""
}

// argsDepth is the nesting depth of a JSON value, found by decoding it;
// values too deep for encoding/json count as deeper than any limit.
func argsDepth(raw json.RawMessage) int {
	if len(raw) == 0 {
		return 0
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return 1 << 30
	}
	var depth func(v any) int
	depth = func(v any) int {
		d := 0
		switch x := v.(type) {
		case map[string]any:
			for _, e := range x {
				d = max(d, depth(e))
			}
			return d + 1
		case []any:
			for _, e := range x {
				d = max(d, depth(e))
			}
			return d + 1
		}
		return 0
	}
	return depth(v)
}

func mustMarshal(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := syncproto.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameEvents compares logs, args as JSON values.
func sameEvents(a, b []syncproto.Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		var vx, vy any
		if json.Unmarshal(x.Args, &vx) != nil || json.Unmarshal(y.Args, &vy) != nil || !reflect.DeepEqual(vx, vy) {
			if !bytes.Equal(x.Args, y.Args) {
				return false
			}
		}
		x.Args, y.Args = nil, nil
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}
