package syncserver_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/livestore-go/livestore/internal/lockedbuf"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/pgstore/pgtest"
)

// storages returns a constructor per storage the refusals must hold on.
func storages() map[string]func(t *testing.T) syncserver.Storage {
	return map[string]func(t *testing.T) syncserver.Storage{
		"sqlite":   func(*testing.T) syncserver.Storage { return nil }, // startServer's default
		"postgres": func(t *testing.T) syncserver.Storage { return pgtest.Open(t, pgtest.Schema(t)) },
		"memory":   func(*testing.T) syncserver.Storage { return newMemStorage() },
	}
}

func unknownExit(t *testing.T, id, message string) string {
	t.Helper()
	return mustJSON(t, syncproto.ExitFail(id, &syncproto.UnknownError{Message: message}))
}

func dieExit(t *testing.T, id, message string) string {
	t.Helper()
	return mustJSON(t, syncproto.ExitDie(id, message))
}

// rawPush is a push request with one event whose fields are spliced in as
// raw JSON text, so that tests can send bytes no encoder would write.
func rawPush(id, name, args string, seq, parent int64, clientID string) string {
	return fmt.Sprintf(`{"_tag":"Request","id":"%s","tag":"SyncWsRpc.Push","payload":{"storeId":"h","batch":[`+
		`{"name":"%s","args":%s,"seqNum":%d,"parentSeqNum":%d,"clientId":"%s","sessionId":"s"}],"backendId":{"_tag":"None"}},"headers":[]}`,
		id, name, args, seq, parent, clientID)
}

func nested(depth int) string {
	return strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
}

// TestPushRefusesHostileInput sends, on every storage, events that once got
// through and broke the store for everyone (a seqNum at the top of int64,
// bytes PostgreSQL or Node refuse, args too deep to decode, an event no
// page can carry). Each is refused with a protocol error naming the event
// and the rule, nothing is stored, the refusal is logged as the client's
// error (not ERROR), and the connection goes on working.
func TestPushRefusesHostileInput(t *testing.T) {
	for name, storage := range storages() {
		t.Run(name, func(t *testing.T) {
			var logs lockedbuf.Buffer
			ts := startServer(t, syncserver.Options{Storage: storage(t),
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			c := dialRaw(t, ts, "h")
			c.send(pushMsg(t, "0", "h", chain(0, 2, "a"), nil))
			c.expect(fmt.Sprintf(pushOK, "0"))
			limit, err := syncproto.MaxPulledEventBytes(backendID(t, ts, "h"))
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range hostilePushes(t, limit, syncproto.TagPush) {
				c.t = t
				c.send(tc.msg)
				if got := c.recv(); got != tc.want {
					t.Errorf("%s:\n got %.400s\nwant %.400s", tc.name, got, tc.want)
				}
			}
			checkLog(t, ts, "h", 2)
			if strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("client errors logged as server errors:\n%s", logs.String())
			}
			if !strings.Contains(logs.String(), `level=INFO msg="push refused"`) {
				t.Errorf("refusals not logged:\n%s", logs.String())
			}

			// Events at the limits are stored, and every page sent is
			// valid UTF-8 and fits the page size.
			atLimits := chain(2, 3, "a")
			atLimits[0].Name = strings.Repeat("n", syncproto.MaxNameBytes)
			atLimits[0].ClientID = strings.Repeat("ü", syncproto.MaxIDBytes/2)
			atLimits[1].Args = json.RawMessage(nested(syncproto.DefaultMaxArgsDepth))
			base := len(mustJSON(t, atLimits[2]))
			atLimits[2].Args = json.RawMessage(`{"pad":"` + strings.Repeat("x", limit-base-len(`{"pad":""}`)+len(atLimits[2].Args)) + `"}`)
			if n := len(mustJSON(t, atLimits[2])); n != limit {
				t.Fatalf("built an event of %d bytes, want %d", n, limit)
			}
			c.send(pushMsg(t, "20", "h", atLimits, nil))
			c.expect(fmt.Sprintf(pushOK, "20"))
			checkLog(t, ts, "h", 5)
			c.send(pullMsg(t, "21", "h", false, nil))
			var got []syncproto.Event
			for {
				msg := c.recv()
				if !utf8.ValidString(msg) || len(msg) > syncproto.MaxPayloadBytes+200 {
					t.Fatalf("page of %d bytes, valid UTF-8: %v", len(msg), utf8.ValidString(msg))
				}
				if strings.HasPrefix(msg, `{"_tag":"Exit"`) {
					break
				}
				p := page(t, msg, "21")
				for _, it := range p.Batch {
					got = append(got, it.Event)
				}
				c.send(`{"_tag":"Ack","requestId":"21"}`)
			}
			if len(got) != 5 || got[2].Name != atLimits[0].Name || got[4].SeqNum != 5 {
				t.Fatalf("pulled %d events", len(got))
			}
		})
	}
}

// TestPushMaxArgsDepthOption checks that Options.MaxArgsDepth sets the one
// depth limit.
func TestPushMaxArgsDepthOption(t *testing.T) {
	ts := startServer(t, syncserver.Options{MaxArgsDepth: 3})
	c := dialRaw(t, ts, "d")
	b := chain(0, 2, "a")
	b[0].Args = json.RawMessage(`{"a":[{"b":1}]}`)
	b[1].Args = json.RawMessage(`{"a":[{"b":[]}]}`)
	c.send(pushMsg(t, "0", "d", b, nil))
	c.expect(unknownExit(t, "0", "malformed batch: event 1 (v1.TodoCreated) has args nested 4 levels deep; the limit is 3"))
	c.send(pushMsg(t, "1", "d", b[:1], nil))
	c.expect(fmt.Sprintf(pushOK, "1"))
	checkLog(t, ts, "d", 1)
}

// hostilePush is a push request (to store "h", holding events 1 and 2) that
// must be refused, and the answer it must get.
type hostilePush struct{ name, msg, want string }

// utf8Die stands for the answer to a message with invalid UTF-8: a defect
// naming the offset of the first invalid byte.
const utf8Die = "utf8-die"

// hostilePushes are the pushes that once got through and broke a store,
// as requests of procedure tag (syncproto.TagPush or TagHTTPPush); limit is
// the largest event a pull page of store "h" carries.
func hostilePushes(t *testing.T, limit int, tag string) []hostilePush {
	cases := hostilePushesWS(t, limit)
	for i := range cases {
		tc := &cases[i]
		tc.msg = strings.Replace(tc.msg, `"tag":"`+syncproto.TagPush+`"`, `"tag":"`+tag+`"`, 1)
		if tc.want == utf8Die {
			id := tc.msg[len(`{"_tag":"Request","id":"`):]
			id = id[:strings.IndexByte(id, '"')]
			tc.want = dieExit(t, id, fmt.Sprintf("message is not valid UTF-8 at byte %d", firstInvalidUTF8(tc.msg)))
		}
	}
	return cases
}

func firstInvalidUTF8(s string) int {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

func hostilePushesWS(t *testing.T, limit int) []hostilePush {
	ev := func(f func(ev *syncproto.Event)) []syncproto.Event {
		b := chain(2, 1, "a")
		f(&b[0])
		return b
	}
	huge := ev(func(e *syncproto.Event) { e.Args = json.RawMessage(`"` + strings.Repeat("x", 1<<20) + `"`) })
	hugeSize := len(mustJSON(t, huge[0]))

	return []hostilePush{
		{"seqNum at the top of int64", pushMsg(t, "1", "h", []syncproto.Event{{Name: "v1.TodoCreated", Args: json.RawMessage(`{}`), SeqNum: math.MaxInt64, ParentSeqNum: 0, ClientID: "x", SessionID: "y"}}, nil),
			unknownExit(t, "1", "malformed batch: event 0 (v1.TodoCreated) has seqNum 9223372036854775807; the largest sequence number is 9007199254740991")},
		{"seqNum past 2^53-1", pushMsg(t, "2", "h", ev(func(e *syncproto.Event) { e.SeqNum, e.ParentSeqNum = 1<<53, 1<<53-1 }), nil),
			unknownExit(t, "2", "malformed batch: event 0 (v1.TodoCreated) has seqNum 9007199254740992; the largest sequence number is 9007199254740991")},
		{"seqNum jump", pushMsg(t, "3", "h", ev(func(e *syncproto.Event) { e.SeqNum = 5 }), nil),
			unknownExit(t, "3", "malformed batch: event 0 (v1.TodoCreated) has seqNum 5 and parentSeqNum 2; seqNum must be parentSeqNum+1")},
		{"negative parent", pushMsg(t, "4", "h", ev(func(e *syncproto.Event) { e.SeqNum, e.ParentSeqNum = -1, -2 }), nil),
			unknownExit(t, "4", "malformed batch: event 0 (v1.TodoCreated) has parentSeqNum -2; it must not be negative")},
		{"invalid UTF-8 in args", rawPush("5", "v1.TodoCreated", "{\"text\":\"\xff\xfe\"}", 3, 2, "a"),
			utf8Die},
		{"invalid UTF-8 in a name", rawPush("6", "v1.\xc3", "{}", 3, 2, "a"),
			utf8Die},
		{"invalid UTF-8 in a clientId", rawPush("7", "v1.A", "{}", 3, 2, "\xed\xa0\x80"),
			utf8Die},
		{"NUL in a name", rawPush("8", `v1.Todo\u0000`, "{}", 3, 2, "a"),
			unknownExit(t, "8", `malformed batch: event 0 (name "v1.Todo\x00") has a name with a control character or invalid UTF-8`)},
		{"empty name", pushMsg(t, "9", "h", ev(func(e *syncproto.Event) { e.Name = "" }), nil),
			unknownExit(t, "9", `malformed batch: event 0 (name "") has an empty name`)},
		{"long name", pushMsg(t, "10", "h", ev(func(e *syncproto.Event) { e.Name = strings.Repeat("é", 129) }), nil),
			unknownExit(t, "10", `malformed batch: event 0 (name "`+strings.Repeat(`\u00e9`, 32)+`"…) has a name of 258 bytes; the limit is 256`)},
		{"newline in a clientId", pushMsg(t, "11", "h", ev(func(e *syncproto.Event) { e.ClientID = "a\nb" }), nil),
			unknownExit(t, "11", "malformed batch: event 0 (v1.TodoCreated) has a clientId with a control character or invalid UTF-8")},
		{"long sessionId", pushMsg(t, "12", "h", ev(func(e *syncproto.Event) { e.SessionID = strings.Repeat("s", 257) }), nil),
			unknownExit(t, "12", "malformed batch: event 0 (v1.TodoCreated) has a sessionId of 257 bytes; the limit is 256")},
		{"args 65 deep", pushMsg(t, "13", "h", ev(func(e *syncproto.Event) { e.Args = json.RawMessage(nested(65)) }), nil),
			unknownExit(t, "13", "malformed batch: event 0 (v1.TodoCreated) has args nested 65 levels deep; the limit is 64")},
		{"args 9,990 deep", pushMsg(t, "14", "h", ev(func(e *syncproto.Event) { e.Args = json.RawMessage(nested(9990)) }), nil),
			unknownExit(t, "14", "malformed batch: event 0 (v1.TodoCreated) has args nested 9990 levels deep; the limit is 64")},
		{"1 MiB event", pushMsg(t, "15", "h", huge, nil),
			unknownExit(t, "15", fmt.Sprintf("event 0 (v1.TodoCreated) is %d bytes encoded; a pull page carries at most %d", hugeSize, limit))},
		// Well-formed numbers that are not the head: the head check
		// is unchanged.
		{"chain at 2^53-1, not at the head", pushMsg(t, "16", "h", []syncproto.Event{{Name: "e", Args: json.RawMessage(`{}`), SeqNum: syncproto.MaxSeqNum, ParentSeqNum: syncproto.MaxSeqNum - 1}}, nil),
			`{"_tag":"Exit","requestId":"16","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"ServerAheadError","minimumExpectedNum":2,"providedNum":9007199254740990}}}}`},
	}
}
