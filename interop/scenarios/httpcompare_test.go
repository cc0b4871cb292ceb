package scenarios

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

// httpExchange is one request of the HTTP transport and what to compare of
// its answer.
type httpExchange struct {
	name string
	body string
	// freeText: the answer's defect texts are the servers' own words
	// (schema and JSON parser messages) and are not compared.
	freeText bool
}

// httpExchanges are the requests compared, in order, on one fresh store.
// Store id, backend id and createdAt are filled in or normalised.
func httpExchanges(t *testing.T, storeID string) []httpExchange {
	t.Helper()
	req := func(id, tag string, payload any) string {
		p, err := syncproto.Marshal(payload)
		if err != nil {
			t.Fatal(err)
		}
		b, err := syncproto.Marshal(&syncproto.Request{ID: id, Tag: tag, Payload: p})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	push := func(id string, after int64, n int, backendID *string) string {
		return req(id, syncproto.TagHTTPPush, syncproto.PushRequest{StoreID: storeID, Batch: seqEvents(after, n), BackendID: backendID})
	}
	pull := func(id string, cursor *syncproto.Cursor) string {
		return req(id, syncproto.TagHTTPPull, syncproto.HTTPPullRequest{StoreID: storeID, Cursor: cursor})
	}
	other := "not-the-backend"
	return []httpExchange{
		{"ping", req("0", syncproto.TagHTTPPing, syncproto.PingRequest{StoreID: storeID}), false},
		{"pull of an empty store", pull("1", nil), false},
		{"push", push("2", 0, 3, nil), false},
		{"stale push", push("3", 1, 1, nil), false},
		{"push to another backend", push("4", 3, 1, &other), false},
		{"empty push to another backend", req("5", syncproto.TagHTTPPush, syncproto.PushRequest{StoreID: storeID, Batch: []syncproto.Event{}, BackendID: &other}), false},
		{"push 100", push("6", 3, 100, nil), false},
		{"push 100 more", push("7", 103, 100, nil), false},
		{"push 60", push("8", 203, 60, nil), false},
		{"pull of 263 events", pull("9", nil), false},
		{"pull from another backend's cursor", pull("10", &syncproto.Cursor{BackendID: other, EventSequenceNumber: 3}), false},
		{"unknown procedure", req("11", "SyncHttpRpc.Nope", map[string]string{}), false},
		{"request id with zeros", strings.Replace(req("12", syncproto.TagHTTPPing, syncproto.PingRequest{StoreID: storeID}), `"id":"12"`, `"id":"012"`, 1), false},
		{"envelope Ping", `{"_tag":"Ping"}`, false},
		{"Ack", `{"_tag":"Ack","requestId":"9"}`, false},
		{"pull without a cursor", `{"_tag":"Request","id":"13","tag":"SyncHttpRpc.Pull","payload":{"storeId":"x"},"headers":[]}`, true},
		{"not JSON", `{"_tag":`, true},
	}
}

// seqEvents are n chained events after seqNum after.
func seqEvents(after int64, n int) []syncproto.Event {
	out := make([]syncproto.Event, n)
	for i := range out {
		seq := after + int64(i) + 1
		out[i] = syncproto.Event{Name: "v1.TodoCreated", Args: json.RawMessage(fmt.Sprintf(`{"id":"t%d","text":"todo %d"}`, seq, seq)),
			SeqNum: seq, ParentSeqNum: seq - 1, ClientID: "cmp", SessionID: "s-cmp"}
	}
	return out
}

// testHTTPAnswersMatch sends the same requests of the HTTP transport to the
// reference server and to ours, each on a fresh store, and compares the
// answers message by message (HTTP status, then each message as a JSON
// value, with backend ids and createdAt normalised).
func testHTTPAnswersMatch(t *testing.T, referenceURL string) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	ours := startGoServer(t, onSQLite)
	transcript := func(base string) []string {
		storeID := newStoreID("http-cmp")
		var out []string
		for _, ex := range httpExchanges(t, storeID) {
			status, answer := postHTTP(ctx, t, overHTTP.url(base), storeID, ex.body)
			out = append(out, fmt.Sprintf("%s: HTTP %d %s", ex.name, status, normalizeAnswer(t, answer, ex.freeText)))
		}
		return out
	}
	want, got := transcript(referenceURL), transcript(ours.URL())
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("answers differ:\nreference: %.600s\nours:      %.600s", want[i], got[i])
		}
	}
}

func postHTTP(ctx context.Context, t *testing.T, base, storeID, body string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/?storeId="+storeID+"&transport=http", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("answer of type %q: %s", ct, b)
	}
	return resp.StatusCode, b
}

// normalizeAnswer re-encodes an answer with sorted object keys, backend ids
// and createdAt replaced by placeholders and, with freeText, defect texts
// too.
func normalizeAnswer(t *testing.T, answer []byte, freeText bool) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(answer))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, answer)
	}
	v = normalizeValue(v, "", freeText)
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func normalizeValue(v any, key string, freeText bool) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeValue(e, k, freeText)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalizeValue(e, key, freeText)
		}
		return x
	case string:
		switch {
		case key == "backendId" || key == "expected":
			return "@backendId"
		case key == "createdAt":
			return "@createdAt"
		case freeText && (key == "defect" || key == "message"):
			return "@text"
		}
	}
	return v
}
