package syncserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/internal/lockedbuf"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// httpAnswer is the server's answer to one request of the HTTP transport.
type httpAnswer struct {
	status int
	header http.Header
	body   string
	msgs   []string // the messages of a JSON array answer
}

// post sends body as a request of the HTTP transport to store storeID.
func post(t *testing.T, ts *testServer, storeID, body string, header http.Header) httpAnswer {
	t.Helper()
	return postReader(t, ts, storeID, strings.NewReader(body), header)
}

func postReader(t *testing.T, ts *testServer, storeID string, body io.Reader, header http.Header) httpAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.http.URL+"/?storeId="+storeID+"&transport=http", body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	return do(t, req)
}

func do(t *testing.T, req *http.Request) httpAnswer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return readAnswer(t, resp)
}

func readAnswer(t *testing.T, resp *http.Response) httpAnswer {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := httpAnswer{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if resp.Header.Get("Content-Type") == "application/json" {
		var raws []json.RawMessage
		if err := json.Unmarshal(b, &raws); err != nil {
			t.Fatalf("answer is not a JSON array: %v\n%.300s", err, b)
		}
		for _, r := range raws {
			a.msgs = append(a.msgs, string(r))
		}
	}
	return a
}

// one asserts an answer of exactly one message, with status, and returns it.
func (a httpAnswer) one(t *testing.T, status int) string {
	t.Helper()
	if a.status != status || len(a.msgs) != 1 {
		t.Fatalf("HTTP %d with %d messages, want %d with one: %.500s", a.status, len(a.msgs), status, a.body)
	}
	return a.msgs[0]
}

func httpPush(t *testing.T, id, storeID string, batch []syncproto.Event, backendID *string) string {
	t.Helper()
	return mustJSON(t, &syncproto.Request{ID: id, Tag: syncproto.TagHTTPPush, Payload: json.RawMessage(mustJSON(t, syncproto.PushRequest{StoreID: storeID, Batch: batch, BackendID: backendID}))})
}

func httpPull(t *testing.T, id, storeID string, cursor *syncproto.Cursor) string {
	t.Helper()
	return mustJSON(t, &syncproto.Request{ID: id, Tag: syncproto.TagHTTPPull, Payload: json.RawMessage(mustJSON(t, syncproto.HTTPPullRequest{StoreID: storeID, Cursor: cursor}))})
}

// TestHTTPTransport runs the procedures of the HTTP transport as the
// reference answers them: ping, pushes (stored, and sent to live pulls of
// the WebSocket transport), their errors, pulls paged in one answer, and the
// answers to malformed messages.
func TestHTTPTransport(t *testing.T) {
	ts := startServer(t, syncserver.Options{})
	ping := `{"_tag":"Request","id":"0","tag":"SyncHttpRpc.Ping","payload":{"storeId":"s"},"headers":[]}`
	if got := post(t, ts, "s", ping, nil).one(t, 200); got != `{"_tag":"Exit","requestId":"0","exit":{"_tag":"Success","value":{"_tag":"SyncMessage.Pong"}}}` {
		t.Fatalf("ping: %s", got)
	}

	ws := dialRaw(t, ts, "s")
	ws.send(pullMsg(t, "0", "s", true, nil))
	backend := page(t, ws.recv(), "0").BackendID
	ws.send(`{"_tag":"Ack","requestId":"0"}`)
	for i := range 3 {
		got := post(t, ts, "s", httpPush(t, fmt.Sprint(i+1), "s", chain(int64(i*100), 100, "h"), &backend), nil).one(t, 200)
		if want := fmt.Sprintf(pushOK, fmt.Sprint(i+1)); got != want {
			t.Fatalf("push %d: %s", i, got)
		}
	}
	for seen := 0; seen < 300; {
		seen += len(page(t, ws.recv(), "0").Batch)
	}
	checkLog(t, ts, "s", 300)

	ahead := post(t, ts, "s", httpPush(t, "7", "s", chain(10, 1, "h"), &backend), nil).one(t, 200)
	if want := `{"_tag":"Exit","requestId":"7","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"ServerAheadError","minimumExpectedNum":300,"providedNum":10}}}}`; ahead != want {
		t.Fatalf("stale push: %s", ahead)
	}
	other := "other"
	mismatch := post(t, ts, "s", httpPull(t, "8", "s", &syncproto.Cursor{BackendID: other, EventSequenceNumber: 1}), nil).one(t, 200)
	if want := mustJSON(t, syncproto.ExitFail("8", &syncproto.BackendIDMismatchError{Expected: backend, Received: other})); mismatch != want {
		t.Fatalf("pull with another backend's cursor: %s", mismatch)
	}

	// A pull from cursor 20: pages of the 256-event windows, then the Exit,
	// all in one answer.
	a := post(t, ts, "s", httpPull(t, "9", "s", &syncproto.Cursor{BackendID: backend, EventSequenceNumber: 20}), nil)
	if a.status != 200 || len(a.msgs) != 5 {
		t.Fatalf("pull answer: HTTP %d, %d messages", a.status, len(a.msgs))
	}
	var sizes []string
	for _, m := range a.msgs[:4] {
		p := page(t, m, "9")
		sizes = append(sizes, fmt.Sprintf("%d %v", len(p.Batch), p.PageInfo))
	}
	if got, want := strings.Join(sizes, ", "), "100 {MoreKnown 180}, 100 {MoreKnown 80}, 56 {MoreKnown 24}, 24 {NoMore 0}"; got != want {
		t.Fatalf("pages %s, want %s", got, want)
	}
	if a.msgs[4] != `{"_tag":"Exit","requestId":"9","exit":{"_tag":"Success"}}` {
		t.Fatalf("end of pull: %s", a.msgs[4])
	}
	empty := post(t, ts, "fresh", httpPull(t, "10", "fresh", nil), nil)
	if len(empty.msgs) != 2 || len(page(t, empty.msgs[0], "10").Batch) != 0 {
		t.Fatalf("pull of an empty store: %s", empty.body)
	}

	for _, tc := range []struct{ name, msg, want string }{
		{"not JSON", `not json`, `{"_tag":"Defect","defect":{"name":"SyntaxError","message":"message is not valid JSON"}}`},
		{"unknown procedure", `{"_tag":"Request","id":"1","tag":"SyncWsRpc.Pull","payload":{},"headers":[]}`, `{"_tag":"Defect","defect":"Unknown request tag: SyncWsRpc.Pull"}`},
		{"bad payload", `{"_tag":"Request","id":"2","tag":"SyncHttpRpc.Pull","payload":{"storeId":"s"},"headers":[]}`, dieExit(t, "2", `decode pull request: missing field "cursor"`)},
		{"bad id", `{"_tag":"Request","id":"x","tag":"SyncHttpRpc.Ping","payload":{"storeId":"s"}}`, dieExit(t, "x", `invalid request id "x": must be a decimal integer string such as "0"`)},
		{"envelope ping", `{"_tag":"Ping"}`, `{"_tag":"Pong"}`},
	} {
		if got := post(t, ts, "s", tc.msg, nil).one(t, 200); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
	if a := post(t, ts, "s", `{"_tag":"Ack","requestId":"1"}`, nil); a.status != 200 || a.body != "[]" {
		t.Fatalf("Ack: HTTP %d %s", a.status, a.body)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.http.URL+"/?storeId=s&transport=http", nil)
	if a := do(t, req); a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != "POST, OPTIONS" {
		t.Fatalf("GET: HTTP %d, Allow %q", a.status, a.header.Get("Allow"))
	}
	checkLog(t, ts, "s", 300)
	if v := metricValue(t, ts, `livestore_sync_http_requests_total{procedure="push"}`); v != 4 {
		t.Fatalf("HTTP pushes counted: %v, want 4", v)
	}
}

// TestHTTPRefusesHostileInput sends the pushes that the WebSocket transport
// refuses (TestPushRefusesHostileInput), over HTTP, on every storage: each
// gets the same answer and nothing is stored.
func TestHTTPRefusesHostileInput(t *testing.T) {
	for name, storage := range storages() {
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, syncserver.Options{Storage: storage(t)})
			post(t, ts, "h", httpPush(t, "0", "h", chain(0, 2, "a"), nil), nil).one(t, 200)
			limit, err := syncproto.MaxPulledEventBytes(backendID(t, ts, "h"))
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range hostilePushes(t, limit, syncproto.TagHTTPPush) {
				if got := post(t, ts, "h", tc.msg, nil).one(t, 200); got != tc.want {
					t.Errorf("%s:\n got %.400s\nwant %.400s", tc.name, got, tc.want)
				}
			}
			checkLog(t, ts, "h", 2)
		})
	}
}

// TestHTTPLimits: an oversized body (of known or unknown length) is
// answered with 413 and the request's UnknownError; a batch over
// MaxBatchSize with its UnknownError; nothing is stored.
func TestHTTPLimits(t *testing.T) {
	ts := startServer(t, syncserver.Options{MaxMessageBytes: 64 << 10, MaxBatchSize: 10})
	big := chain(0, 5, "a")
	for i := range big {
		big[i].Args = json.RawMessage(`{"text":"` + strings.Repeat("x", 20_000) + `"}`)
	}
	body := httpPush(t, "3", "l", big, nil)
	want := unknownExit(t, "3", "request body exceeds the server's limit of 65536 bytes")
	if got := post(t, ts, "l", body, nil).one(t, http.StatusRequestEntityTooLarge); got != want {
		t.Fatalf("oversized body:\n got %s\nwant %s", got, want)
	}
	// Without a Content-Length (chunked), the limit is met while reading.
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, body)
		_ = pw.Close()
	}()
	if got := postReader(t, ts, "l", pr, nil).one(t, http.StatusRequestEntityTooLarge); got != want {
		t.Fatalf("oversized chunked body:\n got %s\nwant %s", got, want)
	}
	got := post(t, ts, "l", httpPush(t, "4", "l", chain(0, 11, "a"), nil), nil).one(t, 200)
	if want := unknownExit(t, "4", "batch of 11 events exceeds the server's limit of 10 events per push"); got != want {
		t.Fatalf("batch over the limit:\n got %s\nwant %s", got, want)
	}
	checkLog(t, ts, "l", 0)
	post(t, ts, "l", httpPush(t, "5", "l", chain(0, 10, "a"), nil), nil).one(t, 200)
	checkLog(t, ts, "l", 10)
}

// TestHTTPPullAnswerIsCut: one answer holds at most MaxHTTPPullPages pages;
// the last says how many events remain.
func TestHTTPPullAnswerIsCut(t *testing.T) {
	ts := startServer(t, syncserver.Options{MaxHTTPPullPages: 2})
	fillStore(t, ts, "cut", 250, 10)
	a := post(t, ts, "cut", httpPull(t, "0", "cut", nil), nil)
	if len(a.msgs) != 3 {
		t.Fatalf("%d messages, want 2 pages and the Exit: %.300s", len(a.msgs), a.body)
	}
	if p := page(t, a.msgs[1], "0"); p.PageInfo != (syncproto.PageInfo{Kind: syncproto.MoreKnown, Remaining: 50}) || p.Batch[len(p.Batch)-1].Event.SeqNum != 200 {
		t.Fatalf("last page of the answer: %v, up to %d", p.PageInfo, p.Batch[len(p.Batch)-1].Event.SeqNum)
	}
	a = post(t, ts, "cut", httpPull(t, "1", "cut", &syncproto.Cursor{BackendID: backendID(t, ts, "cut"), EventSequenceNumber: 200}), nil)
	if p := page(t, a.msgs[0], "1"); len(a.msgs) != 2 || len(p.Batch) != 50 || p.PageInfo.Kind != syncproto.NoMore {
		t.Fatalf("the rest: %d messages, %d events, %v", len(a.msgs), len(p.Batch), p.PageInfo)
	}
}

// TestHTTPAdmission: Auth, Origin and the connection limit apply to every
// request of the HTTP transport, before its body is read.
func TestHTTPAdmission(t *testing.T) {
	var logs lockedbuf.Buffer
	ts := startServer(t, syncserver.Options{
		Logger:         slog.New(slog.NewTextHandler(&logs, nil)),
		OriginPatterns: []string{"app.example.com"},
		MaxConnections: 1,
		Auth: func(_ context.Context, storeID string, payload json.RawMessage, h http.Header) (syncserver.Access, error) {
			if string(payload) == `{"authToken":"ok"}` || h.Get("Authorization") == "Bearer ok" {
				return syncserver.Access{}, nil
			}
			if string(payload) == `{"authToken":"pull"}` {
				return syncserver.Access{ReadOnly: true}, nil
			}
			return syncserver.Access{}, errors.New("no valid token")
		},
	})
	push := httpPush(t, "0", "a", chain(0, 1, "a"), nil)
	if a := post(t, ts, "a", push, nil); a.status != http.StatusUnauthorized || a.body != "unauthorized: no valid token\n" {
		t.Fatalf("no credentials: HTTP %d %q", a.status, a.body)
	}
	post(t, ts, "a", push, http.Header{"Authorization": {"Bearer ok"}}).one(t, 200)
	checkLog(t, ts, "a", 1)
	withPayload := func(token string) string {
		return ts.http.URL + "/?storeId=a&transport=http&payload=" + fmt.Sprintf("%%7B%%22authToken%%22%%3A%%22%s%%22%%7D", token)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, withPayload("pull"), strings.NewReader(httpPush(t, "1", "a", chain(1, 1, "a"), nil)))
	if got := do(t, req).one(t, 200); got != unknownExit(t, "1", "unauthorized: this connection may only pull") {
		t.Fatalf("push with a pull-only token: %s", got)
	}
	checkLog(t, ts, "a", 1)

	// Origins: refused, or allowed with the CORS header a page needs.
	ok := http.Header{"Authorization": {"Bearer ok"}}
	evil := http.Header{"Authorization": {"Bearer ok"}, "Origin": {"https://evil.example"}}
	if a := post(t, ts, "a", httpPull(t, "2", "a", nil), evil); a.status != http.StatusForbidden {
		t.Fatalf("other origin: HTTP %d %s", a.status, a.body)
	}
	app := http.Header{"Authorization": {"Bearer ok"}, "Origin": {"https://app.example.com"}}
	if a := post(t, ts, "a", httpPull(t, "3", "a", nil), app); a.status != 200 || a.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("allowed origin: HTTP %d, CORS %q", a.status, a.header.Get("Access-Control-Allow-Origin"))
	}
	for origin, status := range map[string]int{"https://app.example.com": http.StatusNoContent, "https://evil.example": http.StatusForbidden} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodOptions, ts.http.URL+"/?storeId=a&transport=http", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type, x-livestore-store-id")
		a := do(t, req)
		if a.status != status {
			t.Fatalf("preflight from %s: HTTP %d, want %d", origin, a.status, status)
		}
		if status == http.StatusNoContent && (a.header.Get("Access-Control-Allow-Methods") != "POST" || a.header.Get("Access-Control-Allow-Headers") != "content-type, x-livestore-store-id") {
			t.Fatalf("preflight answer headers: %v", a.header)
		}
	}

	// A request whose body is still coming holds the server's one place.
	body := `{"_tag":"Request","id":"5","tag":"SyncHttpRpc.Ping","payload":{"storeId":"a"},"headers":[]}`
	slow := startRequest(t, ts, "a", "Authorization: Bearer ok", len(body), body[:20])
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Once the server has read the headers, the request is admitted.
		a := post(t, ts, "a", httpPull(t, "6", "a", nil), ok)
		if a.status == http.StatusServiceUnavailable {
			if a.body != "server connection limit (1) reached\n" {
				t.Fatalf("refusal: %q", a.body)
			}
			break
		}
		// The place is given back just after an answer is written, so the
		// held request may have arrived while the last answer's request
		// still had it, and been refused itself: then hold it again.
		if slow.refused() {
			slow = startRequest(t, ts, "a", "Authorization: Bearer ok", len(body), body[:20])
		}
		if time.Now().After(deadline) {
			t.Fatalf("second request while one is in progress: HTTP %d", a.status)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A request refused meanwhile is answered at once, though its body has
	// not all come: the server does not wait to read it.
	if a := startRequest(t, ts, "a", "Authorization: Bearer ok", len(body), body[:20]).answer(); a.status != http.StatusServiceUnavailable {
		t.Fatalf("request refused before its body came: HTTP %d %s", a.status, a.body)
	}
	if got := slow.finish(body[20:]).one(t, 200); !strings.Contains(got, "SyncMessage.Pong") {
		t.Fatalf("held request: %s", got)
	}
	post(t, ts, "a", httpPull(t, "7", "a", nil), ok) // the place is free again
	for _, series := range []string{`livestore_sync_connections_refused_total{reason="auth"}`, `livestore_sync_connections_refused_total{reason="origin"}`} {
		if v := metricValue(t, ts, series); v < 1 {
			t.Errorf("%s = %v", series, v)
		}
	}
	if !strings.Contains(logs.String(), "origin not allowed") || !strings.Contains(logs.String(), "connection refused by auth") {
		t.Errorf("refusals not logged:\n%s", logs.String())
	}
}

// TestHTTPBodyTimeout: a client that stops sending its body is answered
// (400) once HTTPBodyTimeout has passed, and its place is freed.
func TestHTTPBodyTimeout(t *testing.T) {
	ts := startServer(t, syncserver.Options{HTTPBodyTimeout: 100 * time.Millisecond, MaxConnections: 1})
	slow := startRequest(t, ts, "slow", "", 100, `{"_tag":"Request",`)
	a := slow.answer()
	if a.status != http.StatusBadRequest || len(a.msgs) != 1 || !strings.Contains(a.msgs[0], "read request body") {
		t.Fatalf("stalled body: HTTP %d %s", a.status, a.body)
	}
	if a := post(t, ts, "slow", httpPull(t, "0", "slow", nil), nil); a.status != 200 {
		t.Fatalf("next request: HTTP %d %s", a.status, a.body)
	}
}

// slowRequest is a request of the HTTP transport written by hand on a TCP
// connection, so that its body can stop half-way.
type slowRequest struct {
	t    *testing.T
	conn net.Conn
}

// startRequest sends the headers of a POST to store storeID (with header,
// a "Name: value" line or ""), declaring a body of length bytes, and the
// first part of the body.
func startRequest(t *testing.T, ts *testServer, storeID, header string, length int, part string) *slowRequest {
	t.Helper()
	conn, err := net.Dial("tcp", ts.http.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if header != "" {
		header += "\r\n"
	}
	head := fmt.Sprintf("POST /?storeId=%s&transport=http HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n",
		storeID, ts.http.Listener.Addr(), header, length)
	if _, err := io.WriteString(conn, head+part); err != nil {
		t.Fatal(err)
	}
	return &slowRequest{t: t, conn: conn}
}

// refused reports whether the server has already answered the request
// with 503 (its connection limit was reached when the headers came). Any
// other early answer fails the test.
func (r *slowRequest) refused() bool {
	r.t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	br := bufio.NewReader(r.conn)
	if _, err := br.Peek(1); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false // no answer yet: the request is being served
		}
		r.t.Fatalf("held request: %v", err)
	}
	_ = r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	if a := readAnswer(r.t, resp); a.status != http.StatusServiceUnavailable {
		r.t.Fatalf("held request answered early: HTTP %d %s", a.status, a.body)
	}
	return true
}

// finish sends the rest of the body and reads the answer.
func (r *slowRequest) finish(rest string) httpAnswer {
	r.t.Helper()
	if _, err := io.WriteString(r.conn, rest); err != nil {
		r.t.Fatal(err)
	}
	return r.answer()
}

func (r *slowRequest) answer() httpAnswer {
	r.t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(r.conn), nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return readAnswer(r.t, resp)
}
