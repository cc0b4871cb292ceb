package difftest

import (
	"encoding/json"
	"strings"
	"testing"
)

// These tests need no server: they pin down normalising and comparing.

func newTestRun() *run {
	return &run{prefix: "dtabcd", backends: map[string]string{}, symBack: map[string]string{}, tr: &Transcript{}}
}

func TestNormalize(t *testing.T) {
	r := newTestRun()
	c := &conn{name: "a", store: "s1"}
	tests := []struct{ name, in, want string }{
		{"page teaches the backend id",
			`{"_tag":"Chunk","requestId":"3","values":[{"batch":[{"eventEncoded":{"name":"x","args":{"n":1.0,"big":1e3},"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"},"metadata":{"_tag":"Some","value":{"_tag":"SyncMessage.SyncMetadata","createdAt":"2026-01-02T03:04:05.678Z"}}}],"pageInfo":{"_tag":"NoMore"},"backendId":"B1"}]}`,
			`{"_tag":"Chunk","requestId":"3","values":[{"backendId":"@backendId(s1)","batch":[{"eventEncoded":{"args":{"big":1000,"n":1},"clientId":"c","name":"x","parentSeqNum":0,"seqNum":1,"sessionId":"s"},"metadata":{"_tag":"Some","value":{"_tag":"SyncMessage.SyncMetadata","createdAt":"@createdAt"}}}],"pageInfo":{"_tag":"NoMore"}}]}`},
		{"known backend id anywhere, unknown kept",
			`{"_tag":"Exit","requestId":"4","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"BackendIdMismatchError","expected":"B1","received":"other"}}}}`,
			`{"_tag":"Exit","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"BackendIdMismatchError","expected":"@backendId(s1)","received":"other"}}},"requestId":"4"}`},
		{"interruption tree collapses",
			`{"_tag":"Exit","requestId":"0","exit":{"_tag":"Failure","cause":{"_tag":"Sequential","left":{"_tag":"Empty"},"right":{"_tag":"Interrupt","fiberId":{"_tag":"Runtime","id":-7,"startTimeMillis":0}}}}}`,
			`{"_tag":"Exit","exit":{"_tag":"Failure","cause":{"_tag":"Interrupt","fiberId":"@fiberId"}},"requestId":"0"}`},
		{"unknown error and store id",
			`{"_tag":"Exit","requestId":"1","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"UnknownError","cause":{"message":"eventlog_dtabcd_s1 broke"}}}}}`,
			`{"_tag":"Exit","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"UnknownError","cause":"@cause"}}},"requestId":"1"}`},
		{"store id inside text", `{"_tag":"X","s":"table eventlog_7_dtabcd_s2 <&>"}`, `{"_tag":"X","s":"table eventlog_7_@storeId(s2) <&>"}`},
		{"long string", `{"s":"` + strings.Repeat("x", 300) + `"}`, `{"s":"` + shorten(strings.Repeat("x", 300)) + `"}`},
		{"not JSON", `oops`, `"@text oops"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := r.normalize(c, received{data: []byte(tc.in)})
			if m.Text != tc.want {
				t.Errorf("\n got %s\nwant %s", m.Text, tc.want)
			}
		})
	}
	if got := r.symBack["s1"]; got != "B1" {
		t.Errorf("learned backend of s1 = %q, want B1", got)
	}
}

func TestShorten(t *testing.T) {
	if got := shorten(strings.Repeat("x", 300)); !strings.HasPrefix(got, "@string(len=300 sha256=") || len(got) != len("@string(len=300 sha256=)")+16 {
		t.Errorf("shorten: %s", got)
	}
	if got := shorten("short"); got != "short" {
		t.Errorf("short string changed: %s", got)
	}
}

func TestCanonicalNumber(t *testing.T) {
	for in, want := range map[string]string{
		"1": "1", "1.0": "1", "1e3": "1000", "-0": "0", "0.1": "0.1", "2.50": "2.5",
		"12345678901234567890": "12345678901234567000", "1e21": "1e+21", "1e-7": "1e-7", "-3": "-3",
	} {
		if got := canonicalNumber(json.Number(in)); got != json.Number(want) {
			t.Errorf("canonicalNumber(%s) = %v, want %s", in, got, want)
		}
	}
}

func TestSortMessages(t *testing.T) {
	in := []Message{
		{Tag: "Exit", RequestID: "10", Text: "exit10"},
		{Tag: "Chunk", RequestID: "9", Text: "chunk9a"},
		{Closed: true, Text: "closed"},
		{Tag: "Pong", Text: "pong"},
		{Tag: "Chunk", RequestID: "9", Text: "chunk9b"},
	}
	var got []string
	for _, m := range sortMessages(in) {
		got = append(got, m.Text)
	}
	if want := "pong chunk9a chunk9b exit10 closed"; strings.Join(got, " ") != want {
		t.Errorf("order %v, want %s", got, want)
	}
}

func TestCompare(t *testing.T) {
	want := []string{
		`open a s1`,
		`recv a {"_tag":"Exit","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"ServerAheadError","minimumExpectedNum":3,"providedNum":0}}},"requestId":"1"}`,
	}
	if d := Compare(want, want); len(d) != 0 {
		t.Fatalf("equal transcripts differ: %v", d)
	}
	got := []string{
		want[0],
		`recv a {"_tag":"Exit","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"ServerAheadError","minimumExpectedNum":2,"providedNum":0}}},"requestId":"1"}`,
		`recv a {"_tag":"Pong"}`,
	}
	d := Compare(got, want)
	if len(d) != 2 {
		t.Fatalf("want 2 differences, got %d: %v", len(d), d)
	}
	if !strings.Contains(d[0], ".exit.cause.error.minimumExpectedNum: got 2, want 3") {
		t.Errorf("field difference not named: %s", d[0])
	}
	if !strings.Contains(d[1], "extra") {
		t.Errorf("extra line not reported: %s", d[1])
	}
}

func TestExpandTokens(t *testing.T) {
	r := newTestRun()
	r.learnBackend("s1", "B1")
	got, err := r.expandTokens(`{"storeId":"@storeId(s1)","backendId":"@backendId(s1)"}`)
	if err != nil || got != `{"storeId":"dtabcd_s1","backendId":"B1"}` {
		t.Errorf("got %s, %v", got, err)
	}
	if _, err := r.expandTokens(`"@backendId(s9)"`); err == nil {
		t.Error("no error for a backend id not learned yet")
	}
}
