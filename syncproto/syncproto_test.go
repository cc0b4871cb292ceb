package syncproto_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/livestore-go/livestore/syncproto"
)

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := syncproto.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	return string(b)
}

func strptr(s string) *string { return &s }

func TestEncodeShapes(t *testing.T) {
	ev := syncproto.Event{Name: "v1.TodoCreated", Args: json.RawMessage(`{"id":"a1","text":"<b>&"}`), SeqNum: 5, ParentSeqNum: 4, ClientID: "Xk3f9a", SessionID: "s-2b7q"}
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"event", ev, `{"name":"v1.TodoCreated","args":{"id":"a1","text":"<b>&"},"seqNum":5,"parentSeqNum":4,"clientId":"Xk3f9a","sessionId":"s-2b7q"}`},
		{"event nil args", syncproto.Event{Name: "x", SeqNum: 1}, `{"name":"x","args":null,"seqNum":1,"parentSeqNum":0,"clientId":"","sessionId":""}`},
		{"ping", &syncproto.Ping{}, `{"_tag":"Ping"}`},
		{"pong", &syncproto.Pong{}, `{"_tag":"Pong"}`},
		{"eof", &syncproto.Eof{}, `{"_tag":"Eof"}`},
		{"ack", &syncproto.Ack{RequestID: "3"}, `{"_tag":"Ack","requestId":"3"}`},
		{"interrupt", &syncproto.Interrupt{RequestID: "3"}, `{"_tag":"Interrupt","requestId":"3"}`},
		{"pull request none", &syncproto.Request{ID: "0", Tag: syncproto.TagPull, Payload: json.RawMessage(mustMarshal(t, syncproto.PullRequest{StoreID: "demo", Live: true}))},
			`{"_tag":"Request","id":"0","tag":"SyncWsRpc.Pull","payload":{"storeId":"demo","live":true,"cursor":{"_tag":"None"}},"headers":[]}`},
		{"pull request some", syncproto.PullRequest{StoreID: "demo", Payload: json.RawMessage(`{"token":"t"}`), Cursor: &syncproto.Cursor{BackendID: "b1", EventSequenceNumber: 7}},
			`{"storeId":"demo","payload":{"token":"t"},"live":false,"cursor":{"_tag":"Some","value":{"backendId":"b1","eventSequenceNumber":7}}}`},
		{"push request", syncproto.PushRequest{StoreID: "demo", Batch: nil, BackendID: strptr("b1")},
			`{"storeId":"demo","batch":[],"backendId":{"_tag":"Some","value":"b1"}}`},
		{"push request none", syncproto.PushRequest{StoreID: "demo", Batch: []syncproto.Event{{Name: "x", Args: json.RawMessage(`1`), SeqNum: 1}}},
			`{"storeId":"demo","batch":[{"name":"x","args":1,"seqNum":1,"parentSeqNum":0,"clientId":"","sessionId":""}],"backendId":{"_tag":"None"}}`},
		{"pull response", syncproto.PullResponse{
			Batch:     []syncproto.PullItem{{Event: ev, Metadata: &syncproto.SyncMetadata{CreatedAt: "2025-01-02T03:04:05.678Z"}}, {Event: ev}},
			PageInfo:  syncproto.PageInfo{Kind: syncproto.MoreKnown, Remaining: 12},
			BackendID: "b1",
		}, `{"batch":[{"eventEncoded":` + mustMarshal(t, ev) + `,"metadata":{"_tag":"Some","value":{"_tag":"SyncMessage.SyncMetadata","createdAt":"2025-01-02T03:04:05.678Z"}}},{"eventEncoded":` + mustMarshal(t, ev) + `,"metadata":{"_tag":"None"}}],"pageInfo":{"_tag":"MoreKnown","remaining":12},"backendId":"b1"}`},
		{"empty pull response", syncproto.PullResponse{BackendID: "b1"}, `{"batch":[],"pageInfo":{"_tag":"NoMore"},"backendId":"b1"}`},
		{"more unknown", syncproto.PageInfo{Kind: syncproto.MoreUnknown}, `{"_tag":"MoreUnknown"}`},
		{"chunk", &syncproto.Chunk{RequestID: "0", Values: []json.RawMessage{json.RawMessage(`{"a":1}`)}}, `{"_tag":"Chunk","requestId":"0","values":[{"a":1}]}`},
		{"exit push success", syncproto.ExitSuccess("1", json.RawMessage(`{}`)), `{"_tag":"Exit","requestId":"1","exit":{"_tag":"Success","value":{}}}`},
		{"exit pushed", syncproto.ExitPushed("1"), `{"_tag":"Exit","requestId":"1","exit":{"_tag":"Success","value":{}}}`},
		{"exit stream end", syncproto.ExitSuccess("1", nil), `{"_tag":"Exit","requestId":"1","exit":{"_tag":"Success"}}`},
		{"exit server ahead", syncproto.ExitFail("2", &syncproto.ServerAheadError{MinimumExpectedNum: 7, ProvidedNum: 5}),
			`{"_tag":"Exit","requestId":"2","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"ServerAheadError","minimumExpectedNum":7,"providedNum":5}}}}`},
		{"exit mismatch", syncproto.ExitFail("2", fmt.Errorf("wrapped: %w", &syncproto.BackendIDMismatchError{Expected: "a", Received: "b"})),
			`{"_tag":"Exit","requestId":"2","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"BackendIdMismatchError","expected":"a","received":"b"}}}}`},
		{"exit unknown", syncproto.ExitFail("2", errors.New("disk full")),
			`{"_tag":"Exit","requestId":"2","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"UnknownError","cause":{"name":"Error","message":"disk full"}}}}}`},
		{"exit unknown note", syncproto.ExitFail("2", &syncproto.UnknownError{Message: "m", Note: "n"}),
			`{"_tag":"Exit","requestId":"2","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"UnknownError","cause":{"name":"Error","message":"m"},"note":"n"}}}}`},
		{"exit die", syncproto.ExitDie("x", "bad id"), `{"_tag":"Exit","requestId":"x","exit":{"_tag":"Failure","cause":{"_tag":"Die","defect":"bad id"}}}`},
		{"exit interrupted", syncproto.ExitInterrupted("4"), `{"_tag":"Exit","requestId":"4","exit":{"_tag":"Failure","cause":{"_tag":"Interrupt","fiberId":{"_tag":"Runtime","id":-499,"startTimeMillis":0}}}}`},
		{"string defect", syncproto.StringDefect(`Unknown request tag: "x"`), `{"_tag":"Defect","defect":"Unknown request tag: \"x\""}`},
		{"defect", &syncproto.Defect{Defect: syncproto.EncodeDefect("SyntaxError", "bad json")}, `{"_tag":"Defect","defect":{"name":"SyntaxError","message":"bad json"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustMarshal(t, tt.v); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestAppendChunk(t *testing.T) {
	got := string(syncproto.AppendChunk(nil, "12", json.RawMessage(`{"batch":[]}`)))
	want := mustMarshal(t, &syncproto.Chunk{RequestID: "12", Values: []json.RawMessage{json.RawMessage(`{"batch":[]}`)}})
	if got != want {
		t.Fatalf("got %s want %s", got, want)
	}
}

func TestDecodeClientMessage(t *testing.T) {
	// The first message is verbatim what the reference client sends.
	msg, err := syncproto.DecodeClientMessage([]byte(`{"_tag":"Request","id":"0","tag":"SyncWsRpc.Pull","traceId":"abc","spanId":"def","sampled":false,"headers":[],"payload":{"storeId":"demo","live":true,"cursor":{"_tag":"None"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	req, ok := msg.(*syncproto.Request)
	if !ok || req.ID != "0" || req.Tag != syncproto.TagPull || req.TraceID != "abc" || req.Sampled == nil || *req.Sampled {
		t.Fatalf("got %#v", msg)
	}
	pull, err := syncproto.DecodePullRequest(req.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pull, syncproto.PullRequest{StoreID: "demo", Live: true}) {
		t.Fatalf("pull = %#v", pull)
	}

	cases := []struct {
		in   string
		want syncproto.ClientMessage
	}{
		{`{"_tag":"Ping"}`, &syncproto.Ping{}},
		{`{"_tag":"Eof"}`, &syncproto.Eof{}},
		{`{"_tag":"Ack","requestId":"5"}`, &syncproto.Ack{RequestID: "5"}},
		{` {"_tag":"Interrupt","requestId":"5"} `, &syncproto.Interrupt{RequestID: "5"}},
		{`{"_tag":"Request","id":"abc","tag":"SyncWsRpc.Push","payload":{},"headers":[["x","y"]]}`, &syncproto.Request{ID: "abc", Tag: syncproto.TagPush, Payload: json.RawMessage(`{}`), Headers: [][2]string{{"x", "y"}}}},
	}
	for _, c := range cases {
		got, err := syncproto.DecodeClientMessage([]byte(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %#v want %#v", c.in, got, c.want)
		}
	}
}

func TestDecodeClientMessageErrors(t *testing.T) {
	cases := []struct {
		in        string
		syntax    bool
		requestID string
		unknown   bool
	}{
		{in: `{"_tag":"Request"`, syntax: true},
		{in: `not json`, syntax: true},
		{in: ``, syntax: true},
		{in: `[1,2]`},
		{in: `"Ping"`},
		{in: `{"id":"1"}`, unknown: true},
		{in: `{"_tag":"Bogus"}`, unknown: true},
		{in: `{"_tag":"Request","id":7,"tag":"SyncWsRpc.Pull"}`, requestID: "7"},
		{in: `{"_tag":"Request","id":"3"}`, requestID: "3"},
		{in: `{"_tag":"Request","tag":"SyncWsRpc.Pull"}`},
		{in: `{"_tag":"Ack"}`},
		{in: `{"_tag":"Interrupt","requestId":1}`},
		{in: `{"_tag":1}`},
	}
	for _, c := range cases {
		_, err := syncproto.DecodeClientMessage([]byte(c.in))
		var me *syncproto.MessageError
		if !errors.As(err, &me) {
			t.Errorf("%q: err = %v, want *MessageError", c.in, err)
			continue
		}
		if me.Syntax != c.syntax || me.RequestID != c.requestID || errors.Is(err, syncproto.ErrUnknownTag) != c.unknown {
			t.Errorf("%q: got syntax=%v id=%q unknown=%v (%v)", c.in, me.Syntax, me.RequestID, errors.Is(err, syncproto.ErrUnknownTag), err)
		}
	}
}

func TestDecodePushRequest(t *testing.T) {
	good := `{"storeId":"s","batch":[{"name":"a","args":{"x":1},"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"t"},{"name":"b","seqNum":2,"parentSeqNum":1,"clientId":"c","sessionId":"t","extra":true}],"backendId":{"_tag":"Some","value":"B"}}`
	req, err := syncproto.DecodePushRequest(json.RawMessage(good))
	if err != nil {
		t.Fatal(err)
	}
	if req.StoreID != "s" || len(req.Batch) != 2 || req.BackendID == nil || *req.BackendID != "B" || string(req.Batch[0].Args) != `{"x":1}` || req.Batch[1].Args != nil {
		t.Fatalf("got %#v", req)
	}
	bad := []string{
		`{"batch":[],"backendId":{"_tag":"None"}}`,
		`{"storeId":"s","backendId":{"_tag":"None"}}`,
		`{"storeId":"s","batch":[]}`,
		`{"storeId":"s","batch":[],"backendId":{"_tag":"Maybe"}}`,
		`{"storeId":"s","batch":[],"backendId":{"_tag":"Some"}}`,
		`{"storeId":"s","batch":[{"name":"a","seqNum":1,"clientId":"c","sessionId":"t"}],"backendId":{"_tag":"None"}}`,
		`{"storeId":"s","batch":[{"name":"a","seqNum":1.5,"parentSeqNum":0,"clientId":"c","sessionId":"t"}],"backendId":{"_tag":"None"}}`,
		`{"storeId":"s","batch":[{"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"t"}],"backendId":{"_tag":"None"}}`,
		`{"storeId":"s","batch":{},"backendId":{"_tag":"None"}}`,
		`[]`,
	}
	for _, b := range bad {
		if _, err := syncproto.DecodePushRequest(json.RawMessage(b)); err == nil {
			t.Errorf("%s: no error", b)
		}
	}
}

func TestDecodePullRequest(t *testing.T) {
	req, err := syncproto.DecodePullRequest(json.RawMessage(`{"storeId":"s","payload":{"a":1},"live":false,"cursor":{"_tag":"Some","value":{"backendId":"B","eventSequenceNumber":42}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if req.Cursor == nil || *req.Cursor != (syncproto.Cursor{BackendID: "B", EventSequenceNumber: 42}) || string(req.Payload) != `{"a":1}` {
		t.Fatalf("got %#v", req)
	}
	for _, b := range []string{`{"live":true,"cursor":{"_tag":"None"}}`, `{"storeId":"s","cursor":{"_tag":"None"}}`, `{"storeId":"s","live":true}`, `{"storeId":"s","live":"yes","cursor":{"_tag":"None"}}`} {
		if _, err := syncproto.DecodePullRequest(json.RawMessage(b)); err == nil {
			t.Errorf("%s: no error", b)
		}
	}
}

func TestDecodeServerMessage(t *testing.T) {
	page := `{"batch":[{"eventEncoded":{"name":"a","args":{"x":1},"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"t"},"metadata":{"_tag":"Some","value":{"_tag":"SyncMessage.SyncMetadata","createdAt":"2025-01-01T00:00:00.000Z"}}}],"pageInfo":{"_tag":"MoreKnown","remaining":3},"backendId":"B"}`
	msg, err := syncproto.DecodeServerMessage([]byte(`{"_tag":"Chunk","requestId":"0","values":[` + page + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	chunk := msg.(*syncproto.Chunk)
	var res syncproto.PullResponse
	if err := json.Unmarshal(chunk.Values[0], &res); err != nil {
		t.Fatal(err)
	}
	if res.BackendID != "B" || res.PageInfo != (syncproto.PageInfo{Kind: syncproto.MoreKnown, Remaining: 3}) || len(res.Batch) != 1 ||
		res.Batch[0].Metadata == nil || res.Batch[0].Metadata.CreatedAt != "2025-01-01T00:00:00.000Z" || res.Batch[0].Event.SeqNum != 1 {
		t.Fatalf("got %#v", res)
	}
	if got := mustMarshal(t, res); got != page {
		t.Fatalf("re-encoded page differs:\n%s\n%s", got, page)
	}

	errCases := []struct {
		in   string
		want error
	}{
		{`{"_tag":"Exit","requestId":"1","exit":{"_tag":"Success","value":{}}}`, nil},
		{`{"_tag":"Exit","requestId":"1","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"ServerAheadError","minimumExpectedNum":7,"providedNum":5}}}}`, &syncproto.ServerAheadError{MinimumExpectedNum: 7, ProvidedNum: 5}},
		{`{"_tag":"Exit","requestId":"1","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"BackendIdMismatchError","expected":"a","received":"b"}}}}`, &syncproto.BackendIDMismatchError{Expected: "a", Received: "b"}},
		{`{"_tag":"Exit","requestId":"1","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"UnknownError","cause":"plain"}}}}`, &syncproto.UnknownError{Message: "plain"}},
		{`{"_tag":"Exit","requestId":"1","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"UnknownError","cause":{"name":"Error","message":"m"},"note":"n"}}}}`, &syncproto.UnknownError{Message: "m", Note: "n"}},
		{`{"_tag":"Exit","requestId":"1","exit":{"_tag":"Failure","cause":{"_tag":"Die","defect":"Unknown request tag: X"}}}`, &syncproto.DefectError{Message: "Unknown request tag: X"}},
		{`{"_tag":"Exit","requestId":"1","exit":{"_tag":"Failure","cause":{"_tag":"Sequential","left":{"_tag":"Empty"},"right":{"_tag":"Interrupt","fiberId":{"_tag":"None"}}}}}`, syncproto.ErrInterrupted},
	}
	for _, c := range errCases {
		msg, err := syncproto.DecodeServerMessage([]byte(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		got := msg.(*syncproto.Exit).Err()
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %#v want %#v", c.in, got, c.want)
		}
	}
	for _, in := range []string{`{"_tag":"Chunk","requestId":"1","values":[]}`, `{"_tag":"Exit","requestId":"1","exit":{"_tag":"Maybe"}}`, `{"_tag":"Exit","requestId":"1","exit":{"_tag":"Failure"}}`, `{"_tag":"Nope"}`} {
		if _, err := syncproto.DecodeServerMessage([]byte(in)); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
}

func TestErrorsRoundTrip(t *testing.T) {
	for _, e := range []error{
		&syncproto.ServerAheadError{MinimumExpectedNum: 10, ProvidedNum: 3},
		&syncproto.BackendIDMismatchError{Expected: "x", Received: "y"},
		&syncproto.UnknownError{Message: "boom", Note: "note"},
	} {
		got := syncproto.DecodeError(syncproto.EncodeError(e))
		if !reflect.DeepEqual(got, e) {
			t.Errorf("round trip of %v: got %#v", e, got)
		}
	}
	var ue *syncproto.UnknownError
	if err := syncproto.DecodeError(json.RawMessage(`{"_tag":"SomethingElse"}`)); !errors.As(err, &ue) || !strings.Contains(ue.Message, "SomethingElse") {
		t.Errorf("got %v", err)
	}
}

func TestValidRequestID(t *testing.T) {
	for id, want := range map[string]bool{"0": true, "123": true, "-1": true, "": false, "-": false, "1a": false, "abc": false, " 1": false, strings.Repeat("9", 41): false} {
		if got := syncproto.ValidRequestID(id); got != want {
			t.Errorf("ValidRequestID(%q) = %v", id, got)
		}
	}
}

func chain(from, n int) []syncproto.Event {
	out := make([]syncproto.Event, n)
	for i := range out {
		seq := int64(from + i + 1)
		out[i] = syncproto.Event{Name: "e", Args: json.RawMessage(`{}`), SeqNum: seq, ParentSeqNum: seq - 1, ClientID: "c", SessionID: "s"}
	}
	return out
}

func TestCheckChain(t *testing.T) {
	if err := syncproto.CheckChain(nil); err != nil {
		t.Fatal(err)
	}
	if err := syncproto.CheckChain(chain(4, 10)); err != nil {
		t.Fatal(err)
	}
	top := []syncproto.Event{{Name: "e", SeqNum: syncproto.MaxSeqNum, ParentSeqNum: syncproto.MaxSeqNum - 1}}
	if err := syncproto.CheckChain(top); err != nil {
		t.Fatalf("an event at MaxSeqNum: %v", err)
	}
	with := func(n int, f func(b []syncproto.Event)) []syncproto.Event {
		b := chain(0, n)
		f(b)
		return b
	}
	for _, tc := range []struct {
		name  string
		batch []syncproto.Event
		want  string
	}{
		{"gap", with(3, func(b []syncproto.Event) { b[2].ParentSeqNum, b[2].SeqNum = 5, 6 }),
			"event 2 (e) has parentSeqNum 5; it must be 2, the seqNum of event 1"},
		{"not increasing", with(2, func(b []syncproto.Event) { b[1].SeqNum = 1 }),
			"event 1 (e) has seqNum 1 and parentSeqNum 1; seqNum must be parentSeqNum+1"},
		{"negative", with(1, func(b []syncproto.Event) { b[0].ParentSeqNum, b[0].SeqNum = -2, -1 }),
			"event 0 (e) has parentSeqNum -2; it must not be negative"},
		{"jump", []syncproto.Event{{Name: "e", SeqNum: 3, ParentSeqNum: 1}},
			"event 0 (e) has seqNum 3 and parentSeqNum 1; seqNum must be parentSeqNum+1"},
		{"int64 max from root", []syncproto.Event{{Name: "v1.X", SeqNum: math.MaxInt64, ParentSeqNum: 0}},
			"event 0 (v1.X) has seqNum 9223372036854775807; the largest sequence number is 9007199254740991"},
		{"past MaxSeqNum", []syncproto.Event{{Name: "e", SeqNum: syncproto.MaxSeqNum + 1, ParentSeqNum: syncproto.MaxSeqNum}},
			"event 0 (e) has seqNum 9007199254740992; the largest sequence number is 9007199254740991"},
		{"int64 min", []syncproto.Event{{Name: "e", SeqNum: math.MinInt64, ParentSeqNum: math.MaxInt64}},
			"event 0 (e) has seqNum -9223372036854775808 and parentSeqNum 9223372036854775807; seqNum must be parentSeqNum+1"},
		{"parent at int64 max", []syncproto.Event{{Name: "e", SeqNum: 5, ParentSeqNum: math.MaxInt64}},
			"event 0 (e) has seqNum 5 and parentSeqNum 9223372036854775807; seqNum must be parentSeqNum+1"},
	} {
		err := syncproto.CheckChain(tc.batch)
		var ee *syncproto.EventError
		if !errors.Is(err, syncproto.ErrBrokenChain) || !errors.As(err, &ee) || err.Error() != tc.want {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestSplit(t *testing.T) {
	size := func(s string) (int, error) { return len(s) + 2, nil } // a quoted string
	items := []string{"aaaa", "bb", "c", "dddddd", "e"}
	// wrapper `[]` is 2 bytes.
	pages, err := syncproto.Split(items, 10, 12, 2, size)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		b, _ := json.Marshal(p)
		if len(b) > 12 {
			t.Errorf("page %s is %d bytes", b, len(b))
		}
	}
	if want := [][]string{{"aaaa"}, {"bb", "c"}, {"dddddd"}, {"e"}}; !reflect.DeepEqual(pages, want) {
		t.Errorf("pages = %q, want %q", pages, want)
	}
	pages, _ = syncproto.Split(items, 2, 1000, 2, size)
	if want := [][]string{{"aaaa", "bb"}, {"c", "dddddd"}, {"e"}}; !reflect.DeepEqual(pages, want) {
		t.Errorf("pages = %q, want %q", pages, want)
	}
	if pages, _ := syncproto.Split([]string{}, 2, 1000, 2, size); len(pages) != 0 {
		t.Errorf("empty input gave %q", pages)
	}
	_, err = syncproto.Split([]string{"a", "this one is too long"}, 10, 12, 2, size)
	var oe *syncproto.OversizeError
	if !errors.As(err, &oe) || oe.Index != 1 {
		t.Errorf("err = %v", err)
	}
}

func TestSplitPushLimits(t *testing.T) {
	big := strings.Repeat("x", 20_000)
	batch := chain(0, 250)
	for i := range batch {
		batch[i].Args = json.RawMessage(`{"text":"` + big + `"}`)
	}
	payload := json.RawMessage(`{"authToken":"secret"}`)
	backend := "backend-1"
	pages, err := syncproto.SplitPush(batch, "store", payload, &backend)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, p := range pages {
		total += len(p)
		b, _ := syncproto.Marshal(syncproto.PushRequest{StoreID: "store", Payload: payload, Batch: p, BackendID: &backend})
		if len(p) > syncproto.MaxEventsPerMessage || len(b) > syncproto.MaxPayloadBytes {
			t.Errorf("push page of %d events, %d bytes", len(p), len(b))
		}
	}
	if total != len(batch) || len(pages) < 6 {
		t.Errorf("%d pages with %d events", len(pages), total)
	}

	huge := chain(0, 1)
	huge[0].Args = json.RawMessage(`"` + strings.Repeat("y", syncproto.MaxPayloadBytes) + `"`)
	var oe *syncproto.OversizeError
	if _, err := syncproto.SplitPush(huge, "store", nil, nil); !errors.As(err, &oe) {
		t.Errorf("huge event: %v", err)
	}
}

func TestCutChunk(t *testing.T) {
	tests := []struct {
		in     string
		id     string
		values string
		ok     bool
	}{
		{`{"_tag":"Chunk","requestId":"12","values":[{"a":1},{"b":[2]}]}`, "12", `[{"a":1},{"b":[2]}]`, true},
		{`{"_tag":"Chunk","requestId":"0","values":[1]}` + "\n", "0", `[1]`, true},
		{`{"_tag":"Chunk","values":[1],"requestId":"0"}`, "", "", false},
		{`{"_tag":"Chunk","requestId":"a\"b","values":[1]}`, "", "", false},
		{`{"_tag":"Chunk","requestId":"0","values":[1],"x":2}`, "", "", false},
		{`{"_tag":"Chunk","requestId":"0","values":]}`, "", "", false},
		{`{"_tag":"Exit","requestId":"0"}`, "", "", false},
	}
	for _, tt := range tests {
		id, values, ok := syncproto.CutChunk([]byte(tt.in))
		if id != tt.id || string(values) != tt.values || ok != tt.ok {
			t.Errorf("CutChunk(%s) = %q, %s, %v", tt.in, id, values, ok)
		}
	}
	pages, err := syncproto.DecodePullResponses([]byte(`[{"batch":[],"pageInfo":{"_tag":"MoreUnknown"},"backendId":"b"},{"batch":[],"pageInfo":{"_tag":"NoMore"},"backendId":"b"}]`))
	if err != nil || len(pages) != 2 || pages[0].PageInfo.Kind != syncproto.MoreUnknown {
		t.Fatalf("DecodePullResponses = %+v, %v", pages, err)
	}
	for _, bad := range []string{`[{"batch":[],"pageInfo":{"_tag":"Lots"},"backendId":"b"}]`, `[{"batch":[{"eventEncoded":{},"metadata":{"_tag":"Some"}}],"pageInfo":{"_tag":"NoMore"}}]`, `[1]`} {
		if _, err := syncproto.DecodePullResponses([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
