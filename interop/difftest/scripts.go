package difftest

import (
	"strconv"
	"strings"
	"time"
)

// Scripts returns every script, in a fixed order.
func Scripts() []Script {
	return []Script{
		pingPong(),
		pullEmptyStore(),
		pushThenPull(),
		eventEncoding(),
		serverAhead(),
		unchainedBatch(),
		pushBackendID(),
		pushEmptyBatch(),
		pullCursor(),
		pullPaging(),
		pullByteLimit(),
		livePull(),
		liveLargePush(),
		requestIDs(),
		envelopes(),
		twoStores(),
	}
}

// quiet is long enough for any answer of an idle local server.
const quiet = time.Second

func steps(groups ...[]Step) []Step {
	var out []Step
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// pullAll is a complete non-live pull of pages pages: Ack after each, then the Exit.
func pullAll(conn, id, store string, cursor any, pages int) []Step {
	s := []Step{Send(conn, Pull(id, store, false, cursor))}
	for range pages {
		s = append(s, Recv(conn, Chunks(id, 1)), Send(conn, Ack(id)))
	}
	return append(s, Recv(conn, ExitOf(id)))
}

// push sends a push and waits for its Exit (and for nothing else).
func push(conn, id, store string, backendID any, batch ...obj) []Step {
	return []Step{Send(conn, Push(id, store, backendID, batch...)), Recv(conn, ExitOf(id))}
}

// pushListen is push on a connection that has pulled before: the reference
// broadcasts to every pull ever made on it, ended ones included, so it
// listens on after the Exit (see RecvAll).
func pushListen(conn, id, store string, backendID any, batch ...obj) []Step {
	return []Step{Send(conn, Push(id, store, backendID, batch...)), RecvAll(conn, ExitOf(id))}
}

func pingPong() Script {
	return Script{
		Name:  "ping-pong",
		About: "Ping is answered with Pong, byte-exact or not, alone or in a JSON array",
		Steps: []Step{
			Open("a", "s1"),
			SendRaw("a", `{"_tag":"Ping"}`),
			Recv("a", Tagged("Pong", 1)),
			SendRaw("a", `{ "_tag" : "Ping" }`),
			Recv("a", Tagged("Pong", 1)),
			SendRaw("a", `[{"_tag":"Ping"},{"_tag":"Ping"}]`),
			Quiet("a", quiet),
		},
	}
}

func pullEmptyStore() Script {
	return Script{
		Name:  "pull-empty-store",
		About: "a store without events answers one empty NoMore page; a non-live pull ends only after its Ack, a live one never",
		Steps: []Step{
			Open("a", "s1"),
			Send("a", Pull("0", "s1", false, NoCursor())),
			Recv("a", Chunks("0", 1)),
			Quiet("a", quiet),
			Send("a", Ack("0")),
			Recv("a", ExitOf("0")),
			Send("a", Pull("1", "s1", true, NoCursor())),
			Recv("a", Chunks("1", 1)),
			Send("a", Ack("1")),
			Quiet("a", quiet),
		},
	}
}

func pushThenPull() Script {
	return Script{
		Name:  "push-then-pull",
		About: "pushes in order are acknowledged with {}; a pull returns the events with one createdAt per push",
		Steps: steps(
			[]Step{Open("a", "s1")},
			push("a", "0", "s1", NoBackend(), Todo(1, 0)),
			push("a", "1", "s1", NoBackend(), Todos(1, 2)...),
			pullAll("a", "2", "s1", NoCursor(), 1),
		),
	}
}

func eventEncoding() Script {
	return Script{
		Name:  "event-encoding",
		About: "how event args round-trip: dates, nested JSON, unicode, number forms, null and missing args",
		Steps: steps(
			[]Step{Open("a", "s1")},
			push("a", "0", "s1", NoBackend(),
				Event(1, 0, "v1.TodoCreated", obj{"id": "t1", "text": "ü ß 日本語 🎉 \"q\" \\ \n \u2028 <&>"}),
				Event(2, 1, "v1.TodoDeleted", obj{"id": "t1", "deletedAt": "2025-01-02T03:04:05.678Z"}),
				Event(3, 2, "v1.TodoAnnotated", obj{"id": "t1", "note": obj{
					"list": []any{1, 2.5, -3, true, nil, obj{"deep": []any{"x"}}}, "empty": obj{}, "emptyList": []any{},
				}}),
				Event(4, 3, "v1.TodoAnnotated", obj{"id": "t2", "note": nil}),
				Event(5, 4, "v1.Unknown", nil),
			),
			// Number spellings that a JSON re-encoder may change.
			[]Step{SendRaw("a", `{"_tag":"Request","id":"1","tag":"SyncWsRpc.Push","traceId":"t","spanId":"s","sampled":false,"headers":[],`+
				`"payload":{"storeId":"@storeId(s1)","backendId":{"_tag":"None"},"batch":[`+
				`{"name":"v1.Numbers","args":{"a":1.0,"b":1e3,"c":0.1,"d":-0,"e":12345678901234567890,"f":"\u00fc\ud83c\udf89"},"seqNum":6,"parentSeqNum":5,"clientId":"client-a","sessionId":"session-a"},`+
				`{"name":"v1.NoArgs","seqNum":7,"parentSeqNum":6,"clientId":"client-a","sessionId":"session-a"}]}}`),
				Recv("a", ExitOf("1"))},
			pullAll("a", "2", "s1", NoCursor(), 1),
		),
	}
}

func serverAhead() Script {
	return Script{
		Name:  "push-server-ahead",
		About: "a push whose first parentSeqNum is not the head fails with ServerAheadError{minimumExpectedNum: head, providedNum: parent}",
		Steps: steps(
			[]Step{Open("a", "s1")},
			push("a", "0", "s1", NoBackend(), Todos(0, 3)...),
			push("a", "1", "s1", NoBackend(), Todo(1, 0)),     // stale
			push("a", "2", "s1", NoBackend(), Todo(6, 5)),     // gap
			push("a", "3", "s1", NoBackend(), Todo(3, 2)),     // one behind
			push("a", "4", "s1", NoBackend(), Todos(3, 2)...), // at head
			push("a", "5", "s1", NoBackend(), Todos(0, 3)...), // the first push again
			pullAll("a", "6", "s1", NoCursor(), 1),
		),
	}
}

func unchainedBatch() Script {
	return Script{
		Name:  "push-unchained-batch",
		About: "the reference checks only the first parentSeqNum of a batch; the head becomes the last seqNum",
		Steps: steps(
			[]Step{Open("a", "s1")},
			push("a", "0", "s1", NoBackend(), Todo(1, 0), Todo(3, 1)), // gap inside the batch
			push("a", "1", "s1", NoBackend(), Todo(4, 3)),
			push("a", "2", "s1", NoBackend(), Todo(9, 4), Todo(6, 9)), // seqNum goes down
			push("a", "3", "s1", NoBackend(), Todo(7, 6), Todo(7, 6)), // duplicate seqNum
			push("a", "4", "s1", NoBackend(), Todo(9, 6)),             // seqNum already stored
			pullAll("a", "5", "s1", NoCursor(), 1),
		),
	}
}

func pushBackendID() Script {
	return Script{
		Name:  "push-backend-id",
		About: "a push naming another backendId fails with BackendIdMismatchError, checked before the head; empty batches are not checked",
		Steps: steps(
			[]Step{Open("a", "s1")},
			pullAll("a", "0", "s1", NoCursor(), 1),
			pushListen("a", "1", "s1", SomeBackend(BackendID("s1")), Todo(1, 0)),
			pushListen("a", "2", "s1", SomeBackend("wrong-backend-id"), Todo(2, 1)),
			pushListen("a", "3", "s1", SomeBackend("wrong-backend-id")),
			pushListen("a", "4", "s1", SomeBackend("wrong-backend-id"), Todo(1, 0)), // wrong id and stale
			pushListen("a", "5", "s1", NoBackend(), Todo(2, 1)),
			// A push with a wrong backendId as the very first request of a store.
			[]Step{Open("b", "s2")},
			push("b", "0", "s2", SomeBackend("wrong-backend-id"), Todo(1, 0)),
			pullAll("b", "1", "s2", NoCursor(), 1),
		),
	}
}

func pushEmptyBatch() Script {
	return Script{
		Name:  "push-empty-batch",
		About: "an empty push is acknowledged, stores nothing and is not broadcast, at any parent",
		Steps: steps(
			[]Step{
				Open("a", "s1"),
				Send("a", Pull("0", "s1", true, NoCursor())),
				Recv("a", Chunks("0", 1)),
				Send("a", Ack("0")),
			},
			push("a", "1", "s1", NoBackend()),
			[]Step{Quiet("a", quiet)},
			[]Step{
				Send("a", Push("2", "s1", NoBackend(), Todo(1, 0))),
				Recv("a", ExitOf("2"), Chunks("0", 1)),
			},
			push("a", "3", "s1", NoBackend()),
			[]Step{Quiet("a", quiet)},
			pullAll("a", "4", "s1", NoCursor(), 1),
		),
	}
}

func pullCursor() Script {
	return Script{
		Name:  "pull-cursor",
		About: "a cursor returns the events after its seqNum; a cursor of another backendId fails with BackendIdMismatchError",
		Steps: steps(
			[]Step{Open("a", "s1")},
			push("a", "0", "s1", NoBackend(), Todos(0, 5)...),
			pullAll("a", "1", "s1", NoCursor(), 1),
			pullAll("a", "2", "s1", Cursor(BackendID("s1"), 3), 1),
			pullAll("a", "3", "s1", Cursor(BackendID("s1"), 5), 1),
			pullAll("a", "4", "s1", Cursor(BackendID("s1"), 99), 1),
			pullAll("a", "5", "s1", Cursor(BackendID("s1"), 0), 1),
			[]Step{
				Send("a", Pull("6", "s1", false, Cursor("wrong-backend-id", 0))),
				Recv("a", ExitOf("6")),
				Send("a", Pull("7", "s1", true, Cursor("wrong-backend-id", 3))),
				Recv("a", ExitOf("7")),
			},
		),
	}
}

func pullPaging() Script {
	return Script{
		Name:  "pull-paging",
		About: "260 events come in Ack-paced pages (at most 100 events) with MoreKnown{remaining}, then NoMore",
		Steps: steps(
			[]Step{Open("a", "s1")},
			push("a", "0", "s1", NoBackend(), Todos(0, 100)...),
			push("a", "1", "s1", NoBackend(), Todos(100, 100)...),
			push("a", "2", "s1", NoBackend(), Todos(200, 60)...),
			[]Step{
				Send("a", Pull("3", "s1", false, NoCursor())),
				Recv("a", Chunks("3", 1)),
				Quiet("a", quiet), // no second page before the Ack
				Send("a", Ack("3")),
				Recv("a", Chunks("3", 1)),
				Send("a", Ack("3")),
				Recv("a", Chunks("3", 1)),
				Send("a", Ack("3")),
				Recv("a", Chunks("3", 1)),
				Quiet("a", quiet), // no Exit before the last Ack
				Send("a", Ack("3")),
				Recv("a", ExitOf("3")),
				// A live pull pages the same way, then stays open.
				Send("a", Pull("4", "s1", true, Cursor(BackendID("s1"), 10))),
				Recv("a", Chunks("4", 1)),
				Send("a", Ack("4")),
				Recv("a", Chunks("4", 1)),
				Send("a", Ack("4")),
				Recv("a", Chunks("4", 1)),
				Send("a", Ack("4")),
				Quiet("a", quiet),
			},
			[]Step{
				Send("a", Push("5", "s1", NoBackend(), Todo(261, 260))),
				RecvAll("a", ExitOf("5"), Chunks("4", 1)),
			},
		),
	}
}

// bigTodo is a v1.TodoAnnotated event with a note of n bytes.
func bigTodo(seq, parent, n int) obj {
	return Event(seq, parent, "v1.TodoAnnotated", obj{"id": "t1", "note": strings.Repeat("x", n)})
}

func pullByteLimit() Script {
	const size = 300_000
	var pushes []Step
	for i := range 5 {
		pushes = append(pushes, push("a", strconv.Itoa(i), "s1", NoBackend(), bigTodo(i+1, i, size))...)
	}
	return Script{
		Name:  "pull-byte-limit",
		About: "pages and broadcasts are also cut at 900,000 bytes of encoded JSON",
		Steps: steps(
			[]Step{Open("a", "s1"), Open("b", "s1")},
			pushes,
			pullAll("a", "5", "s1", NoCursor(), 3),
			[]Step{
				Send("b", Pull("0", "s1", true, Cursor(BackendID("s1"), 5))),
				Recv("b", Chunks("0", 1)),
				Send("b", Ack("0")),
			},
			pushListen("a", "6", "s1", NoBackend(), bigTodo(6, 5, size), bigTodo(7, 6, size), bigTodo(8, 7, size)),
			[]Step{Recv("b", Chunks("0", 2))},
		),
	}
}

func livePull() Script {
	return Script{
		Name:  "live-pull",
		About: "a push is broadcast to every live pull of the store, the pusher's included, without waiting for Acks",
		Steps: steps(
			[]Step{
				Open("a", "s1"), Open("b", "s1"), Open("c", "s1"),
				Send("a", Pull("0", "s1", true, NoCursor())),
				Recv("a", Chunks("0", 1)),
				Send("a", Ack("0")),
				Send("b", Pull("0", "s1", true, NoCursor())),
				Recv("b", Chunks("0", 1)),
				Send("b", Ack("0")),
			},
			// c's pull is not live and has ended: does it still get broadcasts?
			pullAll("c", "0", "s1", NoCursor(), 1),
			[]Step{
				Send("b", Push("1", "s1", NoBackend(), Todos(0, 2)...)),
				Recv("b", ExitOf("1"), Chunks("0", 1)),
				Recv("a", Chunks("0", 1)),
				Quiet("c", quiet),
				// a never acked that chunk; the next broadcast comes anyway.
				Send("a", Push("1", "s1", NoBackend(), Todo(3, 2))),
				Recv("a", ExitOf("1"), Chunks("0", 1)),
				Recv("b", Chunks("0", 1)),
				// A second live pull on a, from a cursor.
				Send("a", Pull("2", "s1", true, Cursor(BackendID("s1"), 1))),
				Recv("a", Chunks("2", 1)),
				Send("a", Ack("2")),
				Send("b", Push("2", "s1", NoBackend(), Todo(4, 3))),
				Recv("b", ExitOf("2"), Chunks("0", 1)),
				Recv("a", Chunks("0", 1), Chunks("2", 1)),
				// After an Interrupt, a pull gets no more broadcasts.
				Send("a", Interrupt("0")),
				Quiet("a", quiet),
				Send("b", Push("3", "s1", NoBackend(), Todo(5, 4))),
				Recv("b", ExitOf("3"), Chunks("0", 1)),
				Recv("a", Chunks("2", 1)),
				Quiet("a", quiet),
			},
		),
	}
}

func liveLargePush() Script {
	return Script{
		Name:  "live-large-push",
		About: "a push of 150 events reaches live pulls as chunks of at most 100 events, each NoMore",
		Steps: steps(
			[]Step{
				Open("a", "s1"), Open("b", "s1"),
				Send("b", Pull("0", "s1", true, NoCursor())),
				Recv("b", Chunks("0", 1)),
				Send("b", Ack("0")),
			},
			push("a", "0", "s1", NoBackend(), Todos(0, 150)...),
			[]Step{Recv("b", Chunks("0", 2))},
		),
	}
}

func requestIDs() Script {
	raw := func(id string) string {
		return `{"_tag":"Request","id":` + id + `,"tag":"SyncWsRpc.Pull","traceId":"t","spanId":"s","sampled":false,"headers":[],` +
			`"payload":{"storeId":"@storeId(s1)","live":false,"cursor":{"_tag":"None"}}}`
	}
	return Script{
		Name:  "request-ids",
		About: "request ids are decimal integer strings, echoed in their canonical form; anything else breaks the connection",
		Steps: []Step{
			Open("a", "s1"),
			SendRaw("a", raw(`"7"`)),
			Recv("a", Chunks("7", 1)),
			Send("a", Ack("7")),
			Recv("a", ExitOf("7")),
			SendRaw("a", raw(`"007"`)),
			Quiet("a", quiet),
			SendRaw("a", raw(`"18446744073709551617"`)),
			Quiet("a", quiet),
			Open("b", "s1"),
			SendRaw("b", raw(`"abc"`)),
			Quiet("b", quiet),
			SendRaw("b", raw(`"1"`)),
			Quiet("b", quiet),
			SendRaw("b", `{"_tag":"Ping"}`),
			Quiet("b", quiet),
			Open("c", "s1"),
			SendRaw("c", raw(`5`)),
			Quiet("c", quiet),
			SendRaw("c", raw(`"1"`)),
			Quiet("c", quiet),
		},
	}
}

func envelopes() Script {
	pull := `"tag":"SyncWsRpc.Pull","payload":{"storeId":"@storeId(s1)","live":false,"cursor":{"_tag":"None"}}`
	return Script{
		Name:  "envelopes",
		About: "unusual envelopes: minimal fields, unknown tags, bad payloads, bad JSON, batches, another storeId",
		Steps: []Step{
			Open("a", "s1"),
			SendRaw("a", `{"_tag":"Request","id":"1",`+pull+`}`),
			Quiet("a", quiet),
			Open("b", "s1"),
			SendRaw("b", `{"_tag":"Request","id":"1","tag":"SyncWsRpc.Nope","payload":{},"headers":[]}`),
			Quiet("b", quiet),
			Open("c", "s1"),
			SendRaw("c", `{"_tag":"Request","id":"1","tag":"SyncWsRpc.Pull","headers":[],"payload":{"storeId":"@storeId(s1)","cursor":{"_tag":"None"}}}`),
			Quiet("c", quiet),
			Open("d", "s1"),
			SendRaw("d", `not json`),
			Quiet("d", quiet),
			Open("e", "s1"),
			SendRaw("e", `[{"_tag":"Request","id":"1","headers":[],`+pull+`},{"_tag":"Request","id":"2","headers":[],`+pull+`}]`),
			Quiet("e", quiet),
			Open("f", "s1"),
			SendRaw("f", `{"_tag":"Eof"}`),
			Quiet("f", quiet),
			Open("g", "s1"),
			SendRaw("g", `{"_tag":"Request","id":"1","tag":"SyncWsRpc.Pull","headers":[],"payload":{"storeId":"@storeId(s1)","live":false,"cursor":{"_tag":"Some","value":{"backendId":"x","eventSequenceNumber":2.5}}}}`),
			Quiet("g", quiet),
			Open("h", "s1"),
			SendRaw("h", `{"_tag":"Request","id":"1","tag":"SyncWsRpc.Push","headers":[],"payload":{"storeId":"@storeId(s1)","backendId":{"_tag":"None"},"batch":[{"name":"v1.X","args":{},"seqNum":1,"parentSeqNum":0}]}}`),
			Quiet("h", quiet),
			Open("i", "s1"),
			SendRaw("i", `{"_tag":"Request","id":"1","tag":"SyncWsRpc.Push","headers":[],"payload":{"storeId":"@storeId(s2)","backendId":{"_tag":"None"},"batch":[{"name":"v1.X","args":{},"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"}]}}`),
			Quiet("i", quiet),
			SendRaw("i", `{"_tag":"Request","id":"2","headers":[],`+pull+`}`),
			Quiet("i", quiet),
		},
	}
}

func twoStores() Script {
	return Script{
		Name:  "two-stores",
		About: "stores are isolated: own backendId, own log, own broadcasts",
		Steps: steps(
			[]Step{
				Open("a", "s1"), Open("b", "s2"),
				Send("b", Pull("0", "s2", true, NoCursor())),
				Recv("b", Chunks("0", 1)),
				Send("b", Ack("0")),
			},
			push("a", "0", "s1", NoBackend(), Todo(1, 0)),
			pullAll("a", "1", "s1", NoCursor(), 1),
			[]Step{
				Quiet("b", quiet),
				Send("b", Pull("1", "s2", false, Cursor(BackendID("s1"), 0))),
				Recv("b", ExitOf("1")),
			},
			pushListen("b", "2", "s2", SomeBackend(BackendID("s1")), Todo(1, 0)),
		),
	}
}
