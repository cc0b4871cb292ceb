package syncproto_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

func TestCheckEvent(t *testing.T) {
	ok := syncproto.Event{Name: "v1.TodoCreated", Args: json.RawMessage(`{"id":"a","tags":["x"]}`), SeqNum: 1, ClientID: "Xk3f9a", SessionID: "s-2b7q"}
	if err := syncproto.CheckEvent(0, &ok, 64); err != nil {
		t.Fatal(err)
	}
	limits := ok
	limits.Name = strings.Repeat("n", syncproto.MaxNameBytes)
	limits.ClientID = strings.Repeat("c", syncproto.MaxIDBytes)
	limits.SessionID = strings.Repeat("é", syncproto.MaxIDBytes/2)
	limits.Args = json.RawMessage(strings.Repeat("[", 64) + strings.Repeat("]", 64))
	if err := syncproto.CheckEvent(0, &limits, 64); err != nil {
		t.Fatalf("event at every limit: %v", err)
	}
	emptyIDs := ok
	emptyIDs.ClientID, emptyIDs.SessionID = "", ""
	if err := syncproto.CheckEvent(0, &emptyIDs, 64); err != nil {
		t.Fatalf("empty ids: %v", err)
	}

	for _, tc := range []struct {
		name string
		edit func(ev *syncproto.Event)
		want string
	}{
		{"empty name", func(ev *syncproto.Event) { ev.Name = "" },
			`event 3 (name "") has an empty name`},
		{"long name", func(ev *syncproto.Event) { ev.Name = strings.Repeat("n", 257) },
			`event 3 (name "` + strings.Repeat("n", 64) + `"…) has a name of 257 bytes; the limit is 256`},
		{"NUL in name", func(ev *syncproto.Event) { ev.Name = "v1.A\x00" },
			`event 3 (name "v1.A\x00") has a name with a control character or invalid UTF-8`},
		{"newline in name", func(ev *syncproto.Event) { ev.Name = "v1.A\nB" },
			`event 3 (name "v1.A\nB") has a name with a control character or invalid UTF-8`},
		{"DEL in name", func(ev *syncproto.Event) { ev.Name = "v1.A\x7f" },
			`event 3 (name "v1.A\x7f") has a name with a control character or invalid UTF-8`},
		{"invalid UTF-8 name", func(ev *syncproto.Event) { ev.Name = "v1.\xff" },
			`event 3 (name "v1.\xff") has a name with a control character or invalid UTF-8`},
		{"long clientId", func(ev *syncproto.Event) { ev.ClientID = strings.Repeat("c", 257) },
			`event 3 (v1.TodoCreated) has a clientId of 257 bytes; the limit is 256`},
		{"control in clientId", func(ev *syncproto.Event) { ev.ClientID = "a\x1fb" },
			`event 3 (v1.TodoCreated) has a clientId with a control character or invalid UTF-8`},
		{"long sessionId", func(ev *syncproto.Event) { ev.SessionID = strings.Repeat("s", 300) },
			`event 3 (v1.TodoCreated) has a sessionId of 300 bytes; the limit is 256`},
		{"NUL in sessionId", func(ev *syncproto.Event) { ev.SessionID = "\x00" },
			`event 3 (v1.TodoCreated) has a sessionId with a control character or invalid UTF-8`},
		{"deep args", func(ev *syncproto.Event) {
			ev.Args = json.RawMessage(`{"a":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`)
		}, `event 3 (v1.TodoCreated) has args nested 65 levels deep; the limit is 64`},
	} {
		ev := ok
		tc.edit(&ev)
		err := syncproto.CheckEvent(3, &ev, 64)
		var ee *syncproto.EventError
		if !errors.Is(err, syncproto.ErrInvalidEvent) || !errors.As(err, &ee) || ee.Index != 3 || err.Error() != tc.want {
			t.Errorf("%s: err = %v\nwant %s", tc.name, err, tc.want)
		}
	}
}

func TestCheckBatchChecksChainThenEvents(t *testing.T) {
	b := chain(0, 3)
	b[1].Name = ""
	b[2].ParentSeqNum = 7
	if err := syncproto.CheckBatch(b, 64); !errors.Is(err, syncproto.ErrBrokenChain) {
		t.Fatalf("err = %v, want the chain error first", err)
	}
	b[2].ParentSeqNum = 2
	if err := syncproto.CheckBatch(b, 64); !errors.Is(err, syncproto.ErrInvalidEvent) || !strings.HasPrefix(err.Error(), "event 1 ") {
		t.Fatalf("err = %v", err)
	}
	b[1].Name = "e"
	if err := syncproto.CheckBatch(b, 64); err != nil {
		t.Fatal(err)
	}
}

func TestJSONDepth(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{``, 0},
		{`null`, 0},
		{`"[[[{"`, 0},
		{`{}`, 1},
		{`[1,2,3]`, 1},
		{`{"a":[]}`, 2},
		{`{"a":"]]]\"[[[","b":[{"c":[1]}]}`, 4},
		{`[[],[[]],[]]`, 3},
		{`"\\"`, 0},
		{`["\\",[["\\\""]]]`, 3},
		{strings.Repeat("[", 10000) + strings.Repeat("]", 10000), 10000},
		{`[[[`, 3}, // unterminated: counts what opened
		{`"unterminated [`, 0},
	} {
		if got := syncproto.JSONDepth([]byte(tc.in)); got != tc.want {
			t.Errorf("JSONDepth(%.40q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// FuzzJSONDepth compares the byte scanner with the depth seen by
// encoding/json's tokenizer, for every input that is valid JSON.
func FuzzJSONDepth(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":"]"}]}`, `[[["\"["]]]`, `"x"`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := syncproto.JSONDepth(data)
		if !json.Valid(data) {
			return
		}
		if want := tokenDepth(t, data); got != want {
			t.Fatalf("JSONDepth(%q) = %d, the tokenizer sees depth %d", data, got, want)
		}
	})
}

// tokenDepth is the deepest nesting of valid JSON as encoding/json's
// tokenizer walks it (a decoded value would lose duplicate keys).
func tokenDepth(t *testing.T, data []byte) int {
	dec := json.NewDecoder(bytes.NewReader(data))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return deepest
		}
		if err != nil {
			t.Fatalf("tokenize valid JSON %q: %v", data, err)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// TestMaxPulledEventBytes checks the bound is exact: an event of exactly
// that encoded size fits a pull page alone, one byte more does not.
func TestMaxPulledEventBytes(t *testing.T) {
	const backendID = "b-0123456789"
	limit, err := syncproto.MaxPulledEventBytes(backendID)
	if err != nil {
		t.Fatal(err)
	}
	if limit <= 899_000 || limit >= syncproto.MaxPayloadBytes {
		t.Fatalf("limit %d is not just below the page size", limit)
	}
	sized := func(n int) syncproto.Event {
		ev := syncproto.Event{Name: "v1.Big", SeqNum: 1, ClientID: "c", SessionID: "s", Args: json.RawMessage(`""`)}
		base := len(mustMarshal(t, ev))
		ev.Args = json.RawMessage(`"` + strings.Repeat("x", n-base) + `"`)
		if got := len(mustMarshal(t, ev)); got != n {
			t.Fatalf("built an event of %d bytes, want %d", got, n)
		}
		return ev
	}
	createdAt := time.Date(2026, 11, 30, 16, 43, 18, 123e6, time.UTC)
	// The longest page holding ev alone, encoded by Marshal.
	longest := func(ev syncproto.Event) int {
		meta := &syncproto.SyncMetadata{CreatedAt: syncproto.FormatCreatedAt(createdAt)}
		return len(mustMarshal(t, syncproto.PullResponse{Batch: []syncproto.PullItem{{Event: ev, Metadata: meta}},
			PageInfo: syncproto.PageInfo{Kind: syncproto.MoreKnown, Remaining: syncproto.MaxSeqNum + 1}, BackendID: backendID}))
	}
	enc, err := syncproto.NewPageEncoder(backendID)
	if err != nil {
		t.Fatal(err)
	}
	// pages encodes ev as the server does, alone on its page.
	pages := func(ev syncproto.Event) error {
		item, err := enc.Item(&ev, createdAt)
		if err != nil {
			t.Fatal(err)
		}
		_, err = enc.Pages([][]byte{item}, func(int, int) syncproto.PageInfo { return syncproto.PageInfo{} })
		return err
	}
	fits := sized(limit)
	if n := longest(fits); n != syncproto.MaxPayloadBytes {
		t.Fatalf("event of %d bytes makes a page of %d bytes, want exactly %d", limit, n, syncproto.MaxPayloadBytes)
	}
	if err := pages(fits); err != nil {
		t.Fatalf("event of %d bytes: %v", limit, err)
	}
	if err := syncproto.CheckEventSize(0, &fits, limit); err != nil {
		t.Fatal(err)
	}
	over := sized(limit + 1)
	var oe *syncproto.OversizeError
	if err := pages(over); !errors.As(err, &oe) {
		t.Fatalf("event of %d bytes: err = %v, want an OversizeError", limit+1, err)
	}
	err = syncproto.CheckEventSize(4, &over, limit)
	want := "event 4 (v1.Big) is " + itoa(limit+1) + " bytes encoded; a pull page carries at most " + itoa(limit)
	if !errors.Is(err, syncproto.ErrEventTooLarge) || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
	// The cheap bound never lets a large event through unmeasured: an
	// event whose strings all need escaping.
	quoted := syncproto.Event{Name: strings.Repeat(`"`, 256), ClientID: strings.Repeat(`\`, 256), SessionID: strings.Repeat("\u2028", 85), Args: json.RawMessage(`{}`)}
	n := len(mustMarshal(t, quoted))
	if err := syncproto.CheckEventSize(0, &quoted, n-1); !errors.Is(err, syncproto.ErrEventTooLarge) {
		t.Fatalf("escaped event of %d bytes against a limit of %d: %v", n, n-1, err)
	}
	if err := syncproto.CheckEventSize(0, &quoted, n); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestDecodeClientMessageRefusesInvalidUTF8(t *testing.T) {
	push := func(name, args string) []byte {
		return []byte(`{"_tag":"Request","id":"12","tag":"SyncWsRpc.Push","payload":{"storeId":"s","batch":[{"name":"` + name +
			`","args":` + args + `,"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"}],"backendId":{"_tag":"None"}},"headers":[]}`)
	}
	if _, err := syncproto.DecodeClientMessage(push("v1.é", `{"t":"ü"}`)); err != nil {
		t.Fatalf("valid UTF-8: %v", err)
	}
	for _, tc := range []struct {
		name   string
		msg    []byte
		wantID string
		at     string
	}{
		{"in args", push("v1.A", "{\"t\":\"\xff\xfe\"}"), "12", "at byte 113"},
		{"in name", push("v1.\xc3", `{}`), "12", "at byte 97"},
		{"truncated sequence", push("v1.A", "\"\xe2\x82\""), "12", "at byte 108"},
		{"surrogate half", push("v1.A", "\"\xed\xa0\x80\""), "12", "at byte 108"},
		{"in an id", []byte("{\"_tag\":\"Request\",\"id\":\"1\xff\",\"tag\":\"SyncWsRpc.Pull\",\"payload\":{}}"), "", "at byte 25"},
		{"in an Ack", []byte("{\"_tag\":\"Ack\",\"requestId\":\"1\", \"x\":\"\xff\"}"), "", "at byte 36"},
	} {
		_, err := syncproto.DecodeClientMessage(tc.msg)
		var me *syncproto.MessageError
		if !errors.Is(err, syncproto.ErrInvalidUTF8) || !errors.As(err, &me) || me.RequestID != tc.wantID || me.Syntax ||
			!strings.HasSuffix(err.Error(), tc.at) {
			t.Errorf("%s: err = %v (%+v), want request id %q, %s", tc.name, err, me, tc.wantID, tc.at)
		}
	}
}
