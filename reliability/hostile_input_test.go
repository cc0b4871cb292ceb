package reliability

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

// The hostile-input suite: one test per way an attacker hurt `livestore
// serve` and its tools. Each attacks a real server process (or CLI), checks
// that the attack is refused or bounded, and then that the store stays
// usable: its log holds exactly the events that were acknowledged, a real
// LiveStore 0.4.0 JS client syncs it (one Node process serves every test, see
// interop/js/multi-client.mjs), and where the attack hurt Go clients, a Go
// store syncs it too.

// envBin names a livestore binary to run instead of building cmd/livestore.
const envBin = "LIVESTORE_BIN"

// ---- raw hostile requests ----

// pushPayload is a push request payload of the given raw batch JSON.
func pushPayload(storeID, batch string) string {
	return `{"storeId":"` + storeID + `","batch":` + batch + `,"backendId":{"_tag":"None"}}`
}

// rawEvent is one event of a push, its fields as raw JSON.
func rawEvent(name, args string, seq, parent int64) string {
	return `{"name":` + name + `,"args":` + args + `,"seqNum":` + strconv.FormatInt(seq, 10) +
		`,"parentSeqNum":` + strconv.FormatInt(parent, 10) + `,"clientId":"evil","sessionId":"evil-s"}`
}

// dialRaw opens a raw WebSocket to storeID; closed when the test ends.
func dialRaw(t testing.TB, addr, storeID string) *rawConn {
	t.Helper()
	c, err := rawUpgrade(addr, "storeId="+storeID+"&transport=ws", 10*time.Second)
	if err != nil {
		t.Fatalf("connect to %s: %v", storeID, err)
	}
	t.Cleanup(func() { resetClose(c) })
	return c
}

// call sends msg (one text frame, bytes as given) and returns the server's
// first message about request id: an Exit, or a Chunk of a pull; or a
// Defect, the answer to a message too broken to tell its request.
func (c *rawConn) call(t testing.TB, id string, msg []byte) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(clientFrame(opText, msg)); err != nil {
		t.Fatalf("send request %s: %v", id, err)
	}
	for {
		text, err := c.readText(32 << 20)
		if err != nil {
			t.Fatalf("no answer to request %s: %v", id, err)
		}
		if strings.Contains(text, `"requestId":"`+id+`"`) || strings.HasPrefix(text, `{"_tag":"Defect"`) {
			return text
		}
	}
}

// ping checks that the connection still answers.
func (c *rawConn) ping(t testing.TB) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(clientFrame(opText, []byte(`{"_tag":"Ping"}`))); err != nil {
		t.Fatalf("ping after the attack: %v", err)
	}
	for {
		text, err := c.readText(32 << 20)
		if err != nil {
			t.Fatalf("ping after the attack: %v", err)
		}
		if text == `{"_tag":"Pong"}` {
			return
		}
	}
}

// refusal decodes answer as a failed Exit, or a Defect, and returns its
// error (nil for a successful Exit).
func refusal(answer string) error {
	msg, err := syncproto.DecodeServerMessage([]byte(answer))
	if err != nil {
		return fmt.Errorf("undecodable answer %.300q: %w", answer, err)
	}
	if d, ok := msg.(*syncproto.Defect); ok {
		return &syncproto.DefectError{Message: syncproto.DefectMessage(d.Defect)}
	}
	ex, ok := msg.(*syncproto.Exit)
	if !ok {
		return fmt.Errorf("answer is a %T, not an Exit: %.300q", msg, answer)
	}
	if ex.Success {
		return nil
	}
	if err := ex.Err(); err != nil {
		return err
	}
	return fmt.Errorf("failed Exit without an error: %.300q", answer)
}

// containsAny reports whether s holds one of the "|"-separated words of
// alternatives, case-insensitively.
func containsAny(s, alternatives string) bool {
	for _, w := range strings.Split(alternatives, "|") {
		if strings.Contains(strings.ToLower(s), strings.ToLower(w)) {
			return true
		}
	}
	return false
}

// wantUnknownError checks that answer is a failure with UnknownError whose
// message holds every word (case-insensitively; "a|b" accepts either); it
// reports whether it is.
func wantUnknownError(t testing.TB, what, answer string, words ...string) bool {
	t.Helper()
	err := refusal(answer)
	var ue *syncproto.UnknownError
	if !errors.As(err, &ue) {
		t.Errorf("%s: answer %.400q, want a failure with UnknownError (%v)", what, answer, err)
		return false
	}
	for _, w := range words {
		if !containsAny(ue.Message+" "+ue.Note, w) {
			t.Errorf("%s: refused with %q, want it to name %q", what, ue.Message, w)
			return false
		}
	}
	t.Logf("%s: refused: %s", what, ue.Message)
	return true
}

// wantRefused checks that answer is a failure of any kind (a tagged error or
// a defect) whose text holds every word (as for wantUnknownError).
func wantRefused(t testing.TB, what, answer string, words ...string) bool {
	t.Helper()
	err := refusal(answer)
	if err == nil {
		t.Errorf("%s: accepted: %.300q", what, answer)
		return false
	}
	for _, w := range words {
		if !containsAny(err.Error(), w) {
			t.Errorf("%s: refused with %q, want it to name %q", what, err, w)
			return false
		}
	}
	t.Logf("%s: refused: %v", what, err)
	return true
}

// ---- the tests of events pushed with hostile fields ----

// TestHostileSeqNumOverflow: a push of e9223372036854775807 at parent 0 was
// accepted; every later push then failed "server ahead" and a Go client
// committing after it wrapped to negative numbers. It must be refused with
// nothing stored, honest pushes at parent 0 must succeed, and a Go store and
// a JS client must sync the store.
func TestHostileSeqNumOverflow(t *testing.T) {
	t.Parallel()
	js := useJS(t)
	srv := startServe(t, freeAddr(t), "--data", t.TempDir())
	const store = "seqnum"
	c := dialRaw(t, srv.addr, store)
	answer := c.call(t, "1", []byte(request("1", "SyncWsRpc.Push", pushPayload(store,
		"["+rawEvent(`"v1.TodoCreated"`, `{"id":"evil","text":"x"}`, 9223372036854775807, 0)+"]"))))
	wantUnknownError(t, "push of e9223372036854775807", answer, "seqNum")
	// Just past what JS numbers hold exactly, and a gap.
	answer = c.call(t, "2", []byte(request("2", "SyncWsRpc.Push", pushPayload(store,
		"["+rawEvent(`"v1.TodoCreated"`, `{"id":"evil","text":"x"}`, syncproto.MaxSeqNum+1, 0)+"]"))))
	wantUnknownError(t, "push of e2^53", answer, "seqNum")
	answer = c.call(t, "3", []byte(request("3", "SyncWsRpc.Push", pushPayload(store,
		"["+rawEvent(`"v1.TodoCreated"`, `{"id":"evil","text":"x"}`, 5, 0)+"]"))))
	wantUnknownError(t, "push of e5 at parent 0", answer, "seqNum")
	c.ping(t)
	checkLog(t, srv.url(), store, nil)

	want := todoIDs("a", 3)
	pushTodos(t, srv.url(), store, 0, want, 20)
	checkUsable(t, js, srv.url(), store, want, usable{goStore: true, jsPush: true})
}

// TestHostileInvalidUTF8: args with bytes that are not UTF-8 were stored and
// sent back in text frames Node refuses, so the store could never be pulled
// again. The push must be refused ("UTF-8") with nothing stored.
func TestHostileInvalidUTF8(t *testing.T) {
	t.Parallel()
	js := useJS(t)
	srv := startServe(t, freeAddr(t), "--data", t.TempDir())
	const store = "utf8"
	before := todoIDs("a", 2)
	head := pushTodos(t, srv.url(), store, 0, before, 20)
	c := dialRaw(t, srv.addr, store)
	for i, args := range []string{"{\"id\":\"evil\",\"text\":\"\xff\xfe\"}", "{\"id\":\"evil\",\"text\":\"ok\",\"\xc3\x28\":1}", "{\"id\":\"evil\",\"text\":\"\xed\xa0\x80\"}"} {
		id := strconv.Itoa(i + 1)
		msg := request(id, "SyncWsRpc.Push", pushPayload(store, "["+rawEvent(`"v1.TodoCreated"`, args, head+1, head)+"]"))
		wantRefused(t, fmt.Sprintf("push with args %q", args), c.call(t, id, []byte(msg)), "UTF-8")
	}
	c.ping(t)
	after := todoIDs("b", 2)
	pushTodos(t, srv.url(), store, head, after, 20)
	checkUsable(t, js, srv.url(), store, append(before, after...), usable{jsPush: true})
}

// TestHostileDeepArgs: args nested 10,000 deep were accepted, and Go clients
// could not decode the page carrying them. The push must be refused
// ("depth"); a Go store and a JS client sync the store.
func TestHostileDeepArgs(t *testing.T) {
	t.Parallel()
	js := useJS(t)
	srv := startServe(t, freeAddr(t), "--data", t.TempDir())
	const store = "deep"
	before := todoIDs("a", 2)
	head := pushTodos(t, srv.url(), store, 0, before, 20)
	c := dialRaw(t, srv.addr, store)
	nested := func(depth int) string {
		return `{"id":"evil","text":"x","note":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
	}
	// The message as a whole passes the JSON decoder's own bound (10,000):
	// answered as a defect or a failure of the request, either naming depth.
	answer := c.call(t, "1", []byte(request("1", "SyncWsRpc.Push", pushPayload(store, "["+rawEvent(`"v1.TodoCreated"`, nested(10_000), head+1, head)+"]"))))
	wantRefused(t, "push of args nested 10,000 deep", answer, "depth|deep")
	answer = c.call(t, "2", []byte(request("2", "SyncWsRpc.Push", pushPayload(store, "["+rawEvent(`"v1.TodoCreated"`, nested(9_000), head+1, head)+"]"))))
	wantUnknownError(t, "push of args nested 9,000 deep", answer, "depth|deep")
	deepObj := `{"id":"evil","text":"x","note":` + strings.Repeat(`{"a":`, 1_000) + "1" + strings.Repeat("}", 1_000) + `}`
	answer = c.call(t, "3", []byte(request("3", "SyncWsRpc.Push", pushPayload(store, "["+rawEvent(`"v1.TodoCreated"`, deepObj, head+1, head)+"]"))))
	wantUnknownError(t, "push of objects nested 1,000 deep", answer, "depth|deep")
	c.ping(t)
	after := todoIDs("b", 2)
	pushTodos(t, srv.url(), store, head, after, 20)
	checkUsable(t, js, srv.url(), store, append(before, after...), usable{goStore: true, jsPush: true})
}

// TestHostileSmallThings: a read-only pull of a new store id created a store
// (and so did rejected pushes); store ids "." and ".." were accepted; a 1 MB
// event was logged as a server ERROR with a generic message; a NUL in an
// event name was accepted. After the fix: no store is created by any of
// these (the storage lists none), "." and ".." get HTTP 400, the 1 MB event
// is refused naming the limit and logged at INFO, the NUL name is refused.
func TestHostileSmallThings(t *testing.T) {
	t.Parallel()
	js := useJS(t)
	dataDir := t.TempDir()
	srv := startServe(t, freeAddr(t), "--data", dataDir, "--log-level", "info")
	const store = "small"
	before := todoIDs("a", 2)
	head := pushTodos(t, srv.url(), store, 0, before, 20)

	// Reads and refused pushes of stores that do not exist.
	log, err := pullLog(srv.url(), "ghost-pulled")
	if err != nil || len(log) != 0 {
		t.Fatalf("pull of a new store: %d events, %v", len(log), err)
	}
	live := dialRaw(t, srv.addr, "ghost-live")
	if a := live.call(t, "1", []byte(request("1", "SyncWsRpc.Pull", `{"storeId":"ghost-live","live":true,"cursor":{"_tag":"None"}}`))); !strings.Contains(a, `"_tag":"Chunk"`) {
		t.Fatalf("live pull of a new store: %.300q", a)
	}
	ahead := dialRaw(t, srv.addr, "ghost-pushed")
	answer := ahead.call(t, "1", []byte(request("1", "SyncWsRpc.Push", pushPayload("ghost-pushed",
		"["+rawEvent(`"v1.TodoCreated"`, `{"id":"x","text":"x"}`, 6, 5)+"]"))))
	var sa *syncproto.ServerAheadError
	if err := refusal(answer); !errors.As(err, &sa) {
		t.Fatalf("push at parent 5 to a new store: %.300q, want ServerAheadError", answer)
	}

	// Store ids that name directories.
	for _, id := range []string{".", ".."} {
		c, err := rawUpgrade(srv.addr, "storeId="+id+"&transport=ws", 10*time.Second)
		if err == nil {
			resetClose(c)
		}
		if err == nil || !strings.Contains(err.Error(), "HTTP 400") {
			t.Errorf("upgrade with storeId %q: %v, want HTTP 400", id, err)
		}
	}

	// A 1 MB event and a NUL in a name, on the honest store.
	c := dialRaw(t, srv.addr, store)
	big := `{"id":"big","text":"` + strings.Repeat("b", 1_000_000) + `"}`
	answer = c.call(t, "1", []byte(request("1", "SyncWsRpc.Push", pushPayload(store, "["+rawEvent(`"v1.TodoCreated"`, big, head+1, head)+"]"))))
	wantUnknownError(t, "push of a 1 MB event", answer, "bytes", "at most|limit")
	answer = c.call(t, "2", []byte(request("2", "SyncWsRpc.Push", pushPayload(store, "["+rawEvent(`"v1.Todo\u0000Created"`, `{"id":"nul","text":"x"}`, head+1, head)+"]"))))
	wantUnknownError(t, "push of an event name with NUL", answer, "name")
	c.ping(t)

	after := todoIDs("b", 2)
	pushTodos(t, srv.url(), store, head, after, 20)
	checkUsable(t, js, srv.url(), store, append(before, after...), usable{jsPush: true})

	// The log: the 1 MB event is the client's fault, not the server's.
	out := srv.out.String()
	if i := strings.Index(out, "level=ERROR"); i >= 0 {
		t.Errorf("the server logged an ERROR for client input:\n%s", lineAt(out, i))
	}
	if !strings.Contains(out, "level=INFO") || !logHas(out, "level=INFO", "big", "bytes") && !logHas(out, "level=INFO", store, "bytes") {
		t.Errorf("no INFO line about the refused 1 MB event in the server log:\n%s", tailString(out, 4<<10))
	}

	stopServe(t, srv)
	stdout, stderr, err := runCLI(t, 30*time.Second, "inspect", "--data", dataDir, "--json")
	if err != nil {
		t.Fatalf("livestore inspect: %v\n%s", err, stderr)
	}
	var stores []struct {
		StoreID string `json:"storeId"`
	}
	if err := json.Unmarshal([]byte(stdout), &stores); err != nil {
		t.Fatalf("livestore inspect --json: %v\n%s", err, stdout)
	}
	var ids []string
	for _, s := range stores {
		ids = append(ids, s.StoreID)
	}
	if !slices.Equal(ids, []string{store}) {
		t.Errorf("the storage lists stores %q, want only %q (pulls and refused pushes must create none)", ids, store)
	}
}

// lineAt returns the line of s holding byte i.
func lineAt(s string, i int) string {
	start := strings.LastIndexByte(s[:i], '\n') + 1
	end := strings.IndexByte(s[i:], '\n')
	if end < 0 {
		return s[start:]
	}
	return s[start : i+end]
}

// logHas reports whether one line of out holds every word.
func logHas(out string, words ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			return true
		}
	}
	return false
}
