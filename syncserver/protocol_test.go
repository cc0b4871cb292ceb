package syncserver_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

func TestPingPong(t *testing.T) {
	ts := startServer(t, syncserver.Options{})
	c := dialRaw(t, ts, "ping")
	c.send(`{"_tag":"Ping"}`)
	c.expect(`{"_tag":"Pong"}`)
}

func TestPullEmptyStore(t *testing.T) {
	ts := startServer(t, syncserver.Options{})
	c := dialRaw(t, ts, "empty")
	// Verbatim what the reference client sends first.
	c.send(`{"_tag":"Request","id":"0","tag":"SyncWsRpc.Pull","traceId":"7c3c","spanId":"a1b2","sampled":false,"headers":[],"payload":{"storeId":"empty","live":false,"cursor":{"_tag":"None"}}}`)
	id := backendID(t, ts, "empty")
	c.expect(`{"_tag":"Chunk","requestId":"0","values":[{"batch":[],"pageInfo":{"_tag":"NoMore"},"backendId":"` + id + `"}]}`)
	// The stream ends only after the Ack.
	c.quiet(150 * time.Millisecond)
	c.send(`{"_tag":"Ack","requestId":"0"}`)
	c.expect(`{"_tag":"Exit","requestId":"0","exit":{"_tag":"Success"}}`)
}

var isoMillis = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestPushThenPull(t *testing.T) {
	ts := startServer(t, syncserver.Options{})
	c := dialRaw(t, ts, "todo")
	batch := chain(0, 3, "Xk3f9a")
	c.send(pushMsg(t, "0", "todo", batch, nil))
	c.expect(fmt.Sprintf(pushOK, "0"))

	id := backendID(t, ts, "todo")
	c.send(pullMsg(t, "1", "todo", false, &syncproto.Cursor{BackendID: id, EventSequenceNumber: 1}))
	msg := c.recv()
	res := page(t, msg, "1")
	if res.BackendID != id || res.PageInfo.Kind != syncproto.NoMore || len(res.Batch) != 2 {
		t.Fatalf("page = %s", msg)
	}
	createdAt := res.Batch[0].Metadata.CreatedAt
	if !isoMillis.MatchString(createdAt) {
		t.Fatalf("createdAt %q is not ISO-8601 with milliseconds", createdAt)
	}
	// Exact shape, including field order, of the whole Chunk.
	item := func(ev syncproto.Event) string {
		return `{"eventEncoded":` + mustJSON(t, ev) + `,"metadata":{"_tag":"Some","value":{"_tag":"SyncMessage.SyncMetadata","createdAt":"` + createdAt + `"}}}`
	}
	want := `{"_tag":"Chunk","requestId":"1","values":[{"batch":[` + item(batch[1]) + `,` + item(batch[2]) + `],"pageInfo":{"_tag":"NoMore"},"backendId":"` + id + `"}]}`
	if msg != want {
		t.Fatalf("got  %s\nwant %s", msg, want)
	}
	if !strings.Contains(msg, `"args":{"id":"t2","text":"todo 2"}`) {
		t.Fatalf("args not passed through: %s", msg)
	}
	c.send(`{"_tag":"Ack","requestId":"1"}`)
	c.expect(`{"_tag":"Exit","requestId":"1","exit":{"_tag":"Success"}}`)
}

func TestPushErrors(t *testing.T) {
	ts := startServer(t, syncserver.Options{MaxBatchSize: 5})
	c := dialRaw(t, ts, "errs")
	c.send(pushMsg(t, "0", "errs", chain(0, 4, "a"), nil))
	c.expect(fmt.Sprintf(pushOK, "0"))
	id := backendID(t, ts, "errs")
	wrong := "not-the-backend"

	tests := []struct {
		name string
		msg  string
		want string
	}{
		{"server ahead", pushMsg(t, "1", "errs", chain(2, 2, "b"), &id),
			`{"_tag":"Exit","requestId":"1","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"ServerAheadError","minimumExpectedNum":4,"providedNum":2}}}}`},
		{"duplicate push", pushMsg(t, "2", "errs", chain(0, 4, "a"), nil),
			`{"_tag":"Exit","requestId":"2","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"ServerAheadError","minimumExpectedNum":4,"providedNum":0}}}}`},
		{"push from the future", pushMsg(t, "3", "errs", chain(9, 1, "b"), nil),
			`{"_tag":"Exit","requestId":"3","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"ServerAheadError","minimumExpectedNum":4,"providedNum":9}}}}`},
		{"backend mismatch", pushMsg(t, "4", "errs", chain(4, 1, "b"), &wrong),
			`{"_tag":"Exit","requestId":"4","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"BackendIdMismatchError","expected":"` + id + `","received":"not-the-backend"}}}}`},
		{"empty batch is acknowledged, whatever the backend", pushMsg(t, "5", "errs", nil, &wrong), fmt.Sprintf(pushOK, "5")},
		{"non-chaining batch", pushMsg(t, "6", "errs", append(chain(4, 1, "b"), chain(6, 1, "b")...), &id),
			`{"_tag":"Exit","requestId":"6","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"UnknownError","cause":{"name":"Error","message":"malformed batch: event 1 (v1.TodoCreated) has parentSeqNum 6; it must be 5, the seqNum of event 0"}}}}}`},
		{"batch over MaxBatchSize", pushMsg(t, "7", "errs", chain(4, 6, "b"), &id),
			`{"_tag":"Exit","requestId":"7","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"UnknownError","cause":{"name":"Error","message":"batch of 6 events exceeds the server's limit of 5 events per push"}}}}}`},
		// As in the reference, the URL names the store, not the payload.
		{"payload names another store", pushMsg(t, "8", "other", chain(4, 1, "b"), &id), fmt.Sprintf(pushOK, "8")},
		{"payload missing fields", `{"_tag":"Request","id":"9","tag":"SyncWsRpc.Push","payload":{"storeId":"errs","batch":[{"name":"x"}],"backendId":{"_tag":"None"}},"headers":[]}`,
			`{"_tag":"Exit","requestId":"9","exit":{"_tag":"Failure","cause":{"_tag":"Die","defect":"decode push request: batch[0]: missing field \"seqNum\""}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.t = t
			c.send(tt.msg)
			c.expect(tt.want)
		})
	}
	c.t = t
	checkLog(t, ts, "errs", 5)
	checkLog(t, ts, "other", 0)
	// The connection still works.
	c.send(pushMsg(t, "10", "errs", chain(5, 5, "b"), &id))
	c.expect(fmt.Sprintf(pushOK, "10"))
	checkLog(t, ts, "errs", 10)
}

func TestBadInputKeepsConnection(t *testing.T) {
	ts := startServer(t, syncserver.Options{MaxMessageBytes: 64 << 10})
	c := dialRaw(t, ts, "bad")
	big := chain(0, 1, "a")
	big[0].Args = json.RawMessage(`"` + strings.Repeat("x", 100<<10) + `"`)
	tests := []struct {
		name string
		msg  string
		want string // a regexp
	}{
		{"malformed json", `{"_tag":"Request","id":"0"`, `^\{"_tag":"Defect","defect":\{"name":"SyntaxError","message":"[^"]+"\}\}$`},
		{"not an object", `[1,2,3]`, `^\{"_tag":"Defect","defect":"message is not a JSON object"\}$`},
		{"unknown envelope tag", `{"_tag":"Hello"}`, `^\{"_tag":"Defect","defect":"Unknown request tag: Hello"\}$`},
		// A Defect for the connection, as the reference answers.
		{"unknown procedure", `{"_tag":"Request","id":"3","tag":"SyncWsRpc.Admin","payload":{},"headers":[]}`,
			`^\{"_tag":"Defect","defect":"Unknown request tag: SyncWsRpc.Admin"\}$`},
		{"non-numeric request id", `{"_tag":"Request","id":"abc","tag":"SyncWsRpc.Pull","payload":{"storeId":"bad","live":false,"cursor":{"_tag":"None"}},"headers":[]}`,
			`^\{"_tag":"Exit","requestId":"abc","exit":\{"_tag":"Failure","cause":\{"_tag":"Die","defect":"invalid request id \\"abc\\": must be a decimal integer string such as \\"0\\""\}\}\}$`},
		{"numeric json id", `{"_tag":"Request","id":5,"tag":"SyncWsRpc.Pull","payload":{},"headers":[]}`,
			`^\{"_tag":"Exit","requestId":"5","exit":\{"_tag":"Failure","cause":\{"_tag":"Die","defect":"invalid request id 5: must be a string"\}\}\}$`},
		{"bad pull payload", `{"_tag":"Request","id":"6","tag":"SyncWsRpc.Pull","payload":{"storeId":"bad","cursor":{"_tag":"None"}},"headers":[]}`,
			`^\{"_tag":"Exit","requestId":"6","exit":\{"_tag":"Failure","cause":\{"_tag":"Die","defect":"decode pull request: missing field \\"live\\""\}\}\}$`},
		{"oversize message", pushMsg(t, "7", "bad", big, nil),
			`^\{"_tag":"Exit","requestId":"7","exit":\{"_tag":"Failure","cause":\{"_tag":"Fail","error":\{"_tag":"UnknownError","cause":\{"name":"Error","message":"message of \d+ bytes exceeds the server's limit of 65536 bytes"\}\}\}\}\}$`},
		{"oversize junk", strings.Repeat("z", 70<<10), `^\{"_tag":"Defect","defect":"message of 71680 bytes exceeds the server's limit of 65536 bytes"\}$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.t = t
			c.send(tt.msg)
			got := c.recv()
			if !regexp.MustCompile(tt.want).MatchString(got) {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	c.t = t
	c.send(`{"_tag":"Ack","requestId":"42"}`)       // an Ack for nothing is ignored
	c.send(`{"_tag":"Interrupt","requestId":"99"}`) // so is an Interrupt (as by the reference)
	c.send(`{"_tag":"Eof"}`)
	c.send(`{"_tag":"Ping"}`)
	c.expect(`{"_tag":"Pong"}`)
	c.send(pushMsg(t, "8", "bad", chain(0, 2, "a"), nil))
	c.expect(fmt.Sprintf(pushOK, "8"))
	checkLog(t, ts, "bad", 2)
}

func TestPullPaging(t *testing.T) {
	ts := startServer(t, syncserver.Options{})
	c := dialRaw(t, ts, "paging")
	for i := range 5 {
		c.send(pushMsg(t, fmt.Sprint(i), "paging", chain(int64(i*50), 50, "a"), nil))
		c.expect(fmt.Sprintf(pushOK, fmt.Sprint(i)))
	}
	id := backendID(t, ts, "paging")
	c.send(pullMsg(t, "9", "paging", false, nil))
	wantPages := []struct {
		n    int
		info syncproto.PageInfo
	}{{100, syncproto.PageInfo{Kind: syncproto.MoreKnown, Remaining: 150}}, {100, syncproto.PageInfo{Kind: syncproto.MoreKnown, Remaining: 50}}, {50, syncproto.PageInfo{Kind: syncproto.NoMore}}}
	next := int64(1)
	for i, w := range wantPages {
		res := page(t, c.recv(), "9")
		if len(res.Batch) != w.n || res.PageInfo != w.info || res.BackendID != id {
			t.Fatalf("page %d: %d events, %+v", i, len(res.Batch), res.PageInfo)
		}
		for _, it := range res.Batch {
			if it.Event.SeqNum != next {
				t.Fatalf("page %d: seqNum %d, want %d", i, it.Event.SeqNum, next)
			}
			next++
		}
		c.quiet(100 * time.Millisecond) // nothing more before the Ack
		c.send(`{"_tag":"Ack","requestId":"9"}`)
	}
	c.expect(`{"_tag":"Exit","requestId":"9","exit":{"_tag":"Success"}}`)
}

func TestPullPagingByBytes(t *testing.T) {
	ts := startServer(t, syncserver.Options{})
	c := dialRaw(t, ts, "bytes")
	text := strings.Repeat("é", 10_000) // 20,000 bytes of UTF-8
	for i := range 3 {
		batch := chain(int64(i*40), 40, "a")
		for j := range batch {
			batch[j].Args = json.RawMessage(`{"text":"` + text + `"}`)
		}
		c.send(pushMsg(t, fmt.Sprint(i), "bytes", batch, nil))
		c.expect(fmt.Sprintf(pushOK, fmt.Sprint(i)))
	}
	c.send(pullMsg(t, "5", "bytes", false, nil))
	total := 0
	for total < 120 {
		msg := c.recv()
		m, _ := syncproto.DecodeServerMessage([]byte(msg))
		value := m.(*syncproto.Chunk).Values[0]
		if len(value) > syncproto.MaxPayloadBytes {
			t.Fatalf("page of %d bytes", len(value))
		}
		res := page(t, msg, "5")
		total += len(res.Batch)
		if want := int64(120 - total); (want > 0) != (res.PageInfo.Kind == syncproto.MoreKnown) || res.PageInfo.Remaining != max(want, 0) && want > 0 {
			t.Fatalf("after %d events page info %+v", total, res.PageInfo)
		}
		c.send(`{"_tag":"Ack","requestId":"5"}`)
	}
	c.expect(`{"_tag":"Exit","requestId":"5","exit":{"_tag":"Success"}}`)
}

func TestLiveBroadcast(t *testing.T) {
	ts := startServer(t, syncserver.Options{})
	a := dialRaw(t, ts, "live")
	b := dialRaw(t, ts, "live")
	a.send(pullMsg(t, "0", "live", true, nil))
	b.send(pullMsg(t, "0", "live", true, nil))
	id := backendID(t, ts, "live")
	empty := `{"_tag":"Chunk","requestId":"0","values":[{"batch":[],"pageInfo":{"_tag":"NoMore"},"backendId":"` + id + `"}]}`
	a.expect(empty)
	b.expect(empty)
	// Live pulls never end by themselves.
	a.send(`{"_tag":"Ack","requestId":"0"}`)
	a.quiet(100 * time.Millisecond)

	a.send(pushMsg(t, "1", "live", chain(0, 2, "a"), &id))
	// The pusher gets the acknowledgement, then its own events.
	a.expect(fmt.Sprintf(pushOK, "1"))
	for _, c := range []*raw{a, b} {
		res := page(t, c.recv(), "0")
		if len(res.Batch) != 2 || res.PageInfo.Kind != syncproto.NoMore || res.Batch[1].Event.SeqNum != 2 {
			t.Fatalf("live page %+v", res)
		}
	}
	// Live updates are not held back by missing Acks (b never acked).
	b.send(pushMsg(t, "1", "live", chain(2, 1, "b"), &id))
	b.expect(fmt.Sprintf(pushOK, "1"))
	for _, c := range []*raw{a, b} {
		if res := page(t, c.recv(), "0"); len(res.Batch) != 1 || res.Batch[0].Event.SeqNum != 3 {
			t.Fatalf("live page %+v", res)
		}
	}

	// Interrupt ends the live pull; later pushes are not sent to it.
	b.send(`{"_tag":"Interrupt","requestId":"0"}`)
	b.expect(`{"_tag":"Exit","requestId":"0","exit":{"_tag":"Failure","cause":{"_tag":"Interrupt","fiberId":{"_tag":"Runtime","id":-499,"startTimeMillis":0}}}}`)
	a.send(pushMsg(t, "2", "live", chain(3, 1, "a"), &id))
	a.expect(fmt.Sprintf(pushOK, "2"))
	page(t, a.recv(), "0")
	b.quiet(150 * time.Millisecond)
}

func TestLivePullCatchesUpThenFollows(t *testing.T) {
	ts := startServer(t, syncserver.Options{})
	w := dialRaw(t, ts, "follow")
	for i := range 3 {
		w.send(pushMsg(t, fmt.Sprint(i), "follow", chain(int64(i*100), 100, "w"), nil))
		w.expect(fmt.Sprintf(pushOK, fmt.Sprint(i)))
	}
	r := dialRaw(t, ts, "follow")
	id := backendID(t, ts, "follow")
	r.send(pullMsg(t, "0", "follow", true, &syncproto.Cursor{BackendID: id, EventSequenceNumber: 50}))
	// First backlog page, then pushes arrive while the client holds its Ack.
	res := page(t, r.recv(), "0")
	if len(res.Batch) != 100 || res.PageInfo != (syncproto.PageInfo{Kind: syncproto.MoreKnown, Remaining: 150}) {
		t.Fatalf("first page: %d events, %+v", len(res.Batch), res.PageInfo)
	}
	w.send(pushMsg(t, "3", "follow", chain(300, 10, "w"), &id))
	w.expect(fmt.Sprintf(pushOK, "3"))
	next := int64(151)
	for next <= 310 {
		r.send(`{"_tag":"Ack","requestId":"0"}`)
		res := page(t, r.recv(), "0")
		for _, it := range res.Batch {
			if it.Event.SeqNum != next {
				t.Fatalf("got seqNum %d, want %d", it.Event.SeqNum, next)
			}
			next++
		}
	}
	r.send(`{"_tag":"Ack","requestId":"0"}`)
	w.send(pushMsg(t, "4", "follow", chain(310, 1, "w"), &id))
	w.expect(fmt.Sprintf(pushOK, "4"))
	if res := page(t, r.recv(), "0"); len(res.Batch) != 1 || res.Batch[0].Event.SeqNum != 311 {
		t.Fatalf("live page %+v", res)
	}
	r.quiet(100 * time.Millisecond)
}

func TestPullErrors(t *testing.T) {
	ts := startServer(t, syncserver.Options{})
	c := dialRaw(t, ts, "perr")
	id := backendID(t, ts, "perr")
	c.send(pullMsg(t, "0", "perr", true, &syncproto.Cursor{BackendID: "old-backend", EventSequenceNumber: 3}))
	c.expect(`{"_tag":"Exit","requestId":"0","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"BackendIdMismatchError","expected":"` + id + `","received":"old-backend"}}}}`)
	// As in the reference, the URL names the store, not the payload.
	c.send(pullMsg(t, "1", "other", false, nil))
	c.expect(`{"_tag":"Chunk","requestId":"1","values":[{"batch":[],"pageInfo":{"_tag":"NoMore"},"backendId":"` + id + `"}]}`)
	c.send(`{"_tag":"Ack","requestId":"1"}`)
	c.expect(`{"_tag":"Exit","requestId":"1","exit":{"_tag":"Success"}}`)
	// Reusing the id of an open pull is refused; the open pull continues.
	c.send(pullMsg(t, "2", "perr", true, nil))
	page(t, c.recv(), "2")
	c.send(pullMsg(t, "2", "perr", true, nil))
	c.expect(`{"_tag":"Exit","requestId":"2","exit":{"_tag":"Failure","cause":{"_tag":"Die","defect":"request id \"2\" is already in use by an open pull"}}}`)
	c.send(pushMsg(t, "3", "perr", chain(0, 1, "a"), nil))
	c.expect(fmt.Sprintf(pushOK, "3"))
	page(t, c.recv(), "2")
}

// TestRequestIDsAreCanonical checks that request ids are echoed as the
// reference echoes them, parsed as integers: "007" is request "7", for the
// answers and for the client's Acks.
func TestRequestIDsAreCanonical(t *testing.T) {
	ts := startServer(t, syncserver.Options{})
	c := dialRaw(t, ts, "ids")
	id := backendID(t, ts, "ids")
	empty := func(req string) string {
		return `{"_tag":"Chunk","requestId":"` + req + `","values":[{"batch":[],"pageInfo":{"_tag":"NoMore"},"backendId":"` + id + `"}]}`
	}
	c.send(pullMsg(t, "007", "ids", false, nil))
	c.expect(empty("7"))
	c.send(`{"_tag":"Ack","requestId":"7"}`)
	c.expect(`{"_tag":"Exit","requestId":"7","exit":{"_tag":"Success"}}`)
	c.send(pullMsg(t, "-0", "ids", false, nil))
	c.expect(empty("0"))
	c.send(`{"_tag":"Ack","requestId":"000"}`)
	c.expect(`{"_tag":"Exit","requestId":"0","exit":{"_tag":"Success"}}`)
	c.send(pushMsg(t, "0012", "ids", chain(0, 1, "a"), nil))
	c.expect(fmt.Sprintf(pushOK, "12"))
	big := "18446744073709551617"
	c.send(pullMsg(t, big, "ids", true, nil))
	page(t, c.recv(), big)
	c.send(`{"_tag":"Interrupt","requestId":"0` + big + `"}`)
	c.expect(`{"_tag":"Exit","requestId":"` + big + `","exit":{"_tag":"Failure","cause":{"_tag":"Interrupt","fiberId":{"_tag":"Runtime","id":-499,"startTimeMillis":0}}}}`)
}

// TestPullPagesInWindowsOf256 checks the reference's paging: the log is read
// 256 events at a time and each window is cut into pages of at most 100, so
// 260 events come as 100, 100, 56, 4.
func TestPullPagesInWindowsOf256(t *testing.T) {
	ts := startServer(t, syncserver.Options{})
	c := dialRaw(t, ts, "window")
	for i := range 3 {
		n := min(100, 260-i*100)
		c.send(pushMsg(t, fmt.Sprint(i), "window", chain(int64(i*100), n, "w"), nil))
		c.expect(fmt.Sprintf(pushOK, fmt.Sprint(i)))
	}
	c.send(pullMsg(t, "3", "window", false, nil))
	want := []struct {
		n    int
		info syncproto.PageInfo
	}{
		{100, syncproto.PageInfo{Kind: syncproto.MoreKnown, Remaining: 160}},
		{100, syncproto.PageInfo{Kind: syncproto.MoreKnown, Remaining: 60}},
		{56, syncproto.PageInfo{Kind: syncproto.MoreKnown, Remaining: 4}},
		{4, syncproto.PageInfo{Kind: syncproto.NoMore}},
	}
	for i, w := range want {
		if i > 0 {
			c.send(`{"_tag":"Ack","requestId":"3"}`)
		}
		res := page(t, c.recv(), "3")
		if len(res.Batch) != w.n || res.PageInfo != w.info {
			t.Fatalf("page %d: %d events, %+v; want %d, %+v", i, len(res.Batch), res.PageInfo, w.n, w.info)
		}
	}
	c.send(`{"_tag":"Ack","requestId":"3"}`)
	c.expect(`{"_tag":"Exit","requestId":"3","exit":{"_tag":"Success"}}`)
}
