package syncproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"
)

// jsonEncode is encoding/json's encoding of v by reflection, with HTML
// escaping off: the reference the append encoders must match byte for byte.
// Event has no MarshalJSON of its own, so it is encoded field by field.
func jsonEncode(v any) ([]byte, error) { return marshal(v) }

// Reflection-encoded mirrors of the wire shapes whose types encode
// themselves.
type (
	refSome struct {
		Tag   string `json:"_tag"`
		Value string `json:"value"`
	}
	refNone struct {
		Tag string `json:"_tag"`
	}
	refPush struct {
		StoreID   string          `json:"storeId"`
		Payload   json.RawMessage `json:"payload,omitempty"`
		Batch     []Event         `json:"batch"`
		BackendID any             `json:"backendId"`
	}
	refRequest struct {
		Tag     string          `json:"_tag"`
		ID      string          `json:"id"`
		RPC     string          `json:"tag"`
		Payload json.RawMessage `json:"payload"`
		Headers [][2]string     `json:"headers"`
		TraceID string          `json:"traceId,omitempty"`
		SpanID  string          `json:"spanId,omitempty"`
		Sampled *bool           `json:"sampled,omitempty"`
	}
)

// Strings that take every path of appendString: plain ASCII, quotes and
// backslashes, control characters, DEL, HTML characters (not escaped),
// multi-byte runes, U+2028/U+2029 and invalid UTF-8.
var appendStrings = []string{
	"", "v1.TodoCreated", "client-1", `a"b`, `back\slash`, "tab\there", "nl\n", "\x00\x01\x1f", "\x7f",
	"<script>&amp;</script>", "héllo wörld", "日本語", "emoji 🎉", "line\u2028sep\u2029", "bad\xffutf8", "\xc3",
}

// appendArgs are valid args in various shapes, with and without spaces.
var appendArgs = []string{
	`{}`, `{"id":"a","text":"b"}`, ` { "id" : "a" , "n" : [ 1 , 2.5e3 , true , null ] } `, "\n[\t1,\n2 ]\n",
	`"string"`, `12`, `null`, `{"html":"<b>&</b>","u":"\u00e9\u2028"}`, `{"nested":{"a":[{"b":{}}]}}`,
}

func randomEvent(r *rand.Rand) Event {
	pick := func() string { return appendStrings[r.IntN(len(appendStrings))] }
	var args json.RawMessage
	if n := r.IntN(len(appendArgs) + 1); n < len(appendArgs) {
		args = json.RawMessage(appendArgs[n])
	}
	seq := r.Int64N(MaxSeqNum)
	return Event{Name: pick(), Args: args, SeqNum: seq, ParentSeqNum: seq - 1 - r.Int64N(3), ClientID: pick(), SessionID: pick()}
}

func TestAppendEncodersMatchEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		var batch []Event
		for range r.IntN(5) {
			batch = append(batch, randomEvent(r))
		}
		for _, e := range batch {
			want, err := jsonEncode(e)
			if err != nil {
				t.Fatal(err)
			}
			got, err := AppendEvent([]byte("prefix"), &e)
			if err != nil || string(got) != "prefix"+string(want) {
				t.Fatalf("case %d: AppendEvent(%+v) = %s, %v; want %s", i, e, got, err, want)
			}
		}

		p := PushRequest{StoreID: appendStrings[r.IntN(len(appendStrings))], Batch: batch}
		if r.IntN(2) == 0 {
			p.Payload = json.RawMessage(appendArgs[r.IntN(len(appendArgs))])
		}
		ref := refPush{StoreID: p.StoreID, Payload: p.Payload, Batch: []Event{}, BackendID: refNone{"None"}}
		if r.IntN(2) == 0 {
			id := appendStrings[r.IntN(len(appendStrings))]
			p.BackendID, ref.BackendID = &id, refSome{"Some", id}
		}
		for _, e := range batch {
			ref.Batch = append(ref.Batch, e)
		}
		want, err := jsonEncode(ref)
		if err != nil {
			t.Fatal(err)
		}
		payload, err := AppendPushRequest(nil, &p)
		if err != nil || !bytes.Equal(payload, want) {
			t.Fatalf("case %d: AppendPushRequest = %s, %v; want %s", i, payload, err, want)
		}
		// Through encoding/json (MarshalJSON), as a nested value is encoded.
		if viaJSON, err := jsonEncode(p); err != nil || !bytes.Equal(viaJSON, want) {
			t.Fatalf("case %d: PushRequest.MarshalJSON = %s, %v; want %s", i, viaJSON, err, want)
		}

		req := Request{ID: appendStrings[r.IntN(len(appendStrings))], Tag: TagPush, Payload: payload}
		if r.IntN(3) == 0 {
			req.Payload = nil
		}
		for range r.IntN(3) {
			req.Headers = append(req.Headers, [2]string{appendStrings[r.IntN(len(appendStrings))], appendStrings[r.IntN(len(appendStrings))]})
		}
		if r.IntN(2) == 0 {
			sampled := r.IntN(2) == 0
			req.TraceID, req.SpanID, req.Sampled = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", &sampled
		}
		refReq := refRequest{"Request", req.ID, req.Tag, req.Payload, req.Headers, req.TraceID, req.SpanID, req.Sampled}
		if refReq.Payload == nil {
			refReq.Payload = json.RawMessage("null")
		}
		if refReq.Headers == nil {
			refReq.Headers = [][2]string{}
		}
		wantReq, err := jsonEncode(refReq)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := AppendRequest(nil, &req); err != nil || !bytes.Equal(got, wantReq) {
			t.Fatalf("case %d: AppendRequest = %s, %v; want %s", i, got, err, wantReq)
		}
	}
}

func TestAppendEncodersRefuseInvalidJSON(t *testing.T) {
	for _, bad := range []string{`{`, `{"a":}`, `[1,]`, `nul`, `"open`, `{} {}`} {
		e := Event{Name: "v1.X", Args: json.RawMessage(bad), SeqNum: 1}
		if _, err := jsonEncode(e); err == nil {
			t.Fatalf("encoding/json accepted args %q", bad)
		}
		if _, err := AppendEvent(nil, &e); err == nil {
			t.Errorf("AppendEvent with args %q: no error", bad)
		}
		if _, err := AppendPushRequest(nil, &PushRequest{StoreID: "s", Batch: []Event{e}}); err == nil {
			t.Errorf("AppendPushRequest with args %q: no error", bad)
		}
		if _, err := AppendPushRequest(nil, &PushRequest{StoreID: "s", Payload: json.RawMessage(bad)}); err == nil {
			t.Errorf("AppendPushRequest with payload %q: no error", bad)
		}
		if _, err := AppendRequest(nil, &Request{ID: "1", Tag: TagPush, Payload: json.RawMessage(bad)}); err == nil {
			t.Errorf("AppendRequest with payload %q: no error", bad)
		}
	}
}

func BenchmarkEncodePush(b *testing.B) {
	batch := make([]Event, 100)
	for i := range batch {
		batch[i] = Event{Name: "v1.TodoCreated", Args: json.RawMessage(`{"id":"todo-0001","text":"buy milk and bread and cheese","completed":false}`),
			SeqNum: int64(i + 1), ParentSeqNum: int64(i), ClientID: "client-abc", SessionID: "session-xyz"}
	}
	backend := "backend-1"
	p := PushRequest{StoreID: "store-1", Batch: batch, BackendID: &backend}
	b.Run("append", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			payload, err := AppendPushRequest(buf[:0], &p)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := AppendRequest(nil, &Request{ID: "7", Tag: TagPush, Payload: payload}); err != nil {
				b.Fatal(err)
			}
			buf = payload
		}
	})
	b.Run("encode-push", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			payloads, err := EncodePush(batch, p.StoreID, nil, &backend)
			if err != nil {
				b.Fatal(err)
			}
			_ = AppendEncodedRequest(nil, &Request{ID: "7", Tag: TagPush, Payload: payloads[0]})
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		ref := refPush{StoreID: p.StoreID, BackendID: refSome{"Some", backend}}
		for _, e := range batch {
			ref.Batch = append(ref.Batch, e)
		}
		b.ReportAllocs()
		for b.Loop() {
			payload, err := jsonEncode(ref)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := jsonEncode(refRequest{Tag: "Request", ID: "7", RPC: TagPush, Payload: payload, Headers: [][2]string{}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// EncodePush gives the payloads SplitPush and AppendPushRequest give,
// split at the same events, for batches that cross both limits.
func TestEncodePushMatchesSplitPush(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	big := `{"blob":"` + string(bytes.Repeat([]byte("x"), 300_000)) + `"}`
	for i := range 200 {
		var batch []Event
		for range r.IntN(250) {
			e := randomEvent(r)
			if r.IntN(40) == 0 {
				e.Args = json.RawMessage(big)
			}
			batch = append(batch, e)
		}
		var payload json.RawMessage
		if r.IntN(2) == 0 {
			payload = json.RawMessage(` {"auth" : "t"} `)
		}
		var backendID *string
		if r.IntN(2) == 0 {
			id := appendStrings[r.IntN(len(appendStrings))]
			backendID = &id
		}
		parts, err := SplitPush(batch, "store-1", payload, backendID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := EncodePush(batch, "store-1", payload, backendID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(parts) {
			t.Fatalf("case %d: %d payloads, SplitPush cut %d", i, len(got), len(parts))
		}
		for k, part := range parts {
			want, err := AppendPushRequest(nil, &PushRequest{StoreID: "store-1", Payload: payload, Batch: part, BackendID: backendID})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[k], want) {
				t.Fatalf("case %d, part %d: EncodePush differs from AppendPushRequest", i, k)
			}
			if len(got[k]) > MaxPayloadBytes {
				t.Fatalf("case %d, part %d: %d bytes, over the limit", i, k, len(got[k]))
			}
		}
	}
	var oversize *OversizeError
	huge := Event{Name: "v1.X", Args: json.RawMessage(`"` + string(bytes.Repeat([]byte("y"), MaxPayloadBytes)) + `"`), SeqNum: 1}
	if _, err := EncodePush([]Event{huge}, "s", nil, nil); !errors.As(err, &oversize) {
		t.Errorf("an event larger than a request: %v, want an OversizeError", err)
	}
	if _, err := EncodePush([]Event{{Name: "v1.X", Args: json.RawMessage(`{`)}}, "s", nil, nil); err == nil {
		t.Errorf("invalid args: no error")
	}
}

// AppendEncodedRequest writes what AppendRequest writes for the payloads
// this package encodes.
func TestAppendEncodedRequest(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 500 {
		payload, err := AppendPushRequest(nil, &PushRequest{StoreID: "s", Batch: []Event{randomEvent(r), randomEvent(r)}})
		if err != nil {
			t.Fatal(err)
		}
		req := Request{ID: "1", Tag: TagPush, Payload: payload}
		if i%3 == 0 {
			req.Payload = nil
		}
		if i%2 == 0 {
			req.Headers = [][2]string{{"a", appendStrings[r.IntN(len(appendStrings))]}}
		}
		want, err := AppendRequest(nil, &req)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendEncodedRequest(nil, &req); !bytes.Equal(got, want) {
			t.Fatalf("case %d: %s, want %s", i, got, want)
		}
	}
}

// appendRaw writes what json.Compact writes, and refuses what it refuses.
func FuzzAppendRaw(f *testing.F) {
	for _, a := range appendArgs {
		f.Add([]byte(a))
	}
	for _, bad := range []string{`{`, `[1,]`, "\"a\x01\"", `"\u12"`, `01`, `1.`, "tru", `{"a" 1}`} {
		f.Add([]byte(bad))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) == 0 {
			return // encoded as null, which json.Compact refuses
		}
		var want bytes.Buffer
		wantErr := json.Compact(&want, raw)
		got, err := appendRaw([]byte("x"), raw)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("appendRaw(%q): error %v, json.Compact: %v", raw, err, wantErr)
		}
		if err == nil && string(got) != "x"+want.String() {
			t.Fatalf("appendRaw(%q) = %q, want %q", raw, got[1:], want.String())
		}
	})
}
