package difftest

import (
	"encoding/json"
	"fmt"
	"time"
)

// A Script is one scenario; its transcript is stored as testdata/<Name>.golden.
type Script struct {
	Name  string // file-name safe
	About string // one line: what it shows
	Steps []Step
}

// A Step is one action of a script. Make steps with Open, Send, SendRaw, Recv,
// Quiet and Close.
type Step struct {
	kind  stepKind
	conn  string        // connection name, e.g. "a"
	store string        // Open: symbolic store name, e.g. "s1"
	msg   string        // Send/SendRaw: message text (Send: JSON with tokens)
	until []Cond        // Recv: all must hold
	wait  time.Duration // Quiet: how long to listen; Recv: how long to go on listening
}

type stepKind int

const (
	stepOpen stepKind = iota
	stepSend
	stepSendRaw
	stepRecv
	stepQuiet
	stepClose
)

// Open connects conn to the sync endpoint of the symbolic store
// (GET /?storeId=<real id>&transport=ws). Each run maps a symbolic store to a
// fresh real store id, so runs never see each other's data.
func Open(conn, store string) Step { return Step{kind: stepOpen, conn: conn, store: store} }

// Send sends msg, a JSON value (usually built with the message helpers below),
// on conn. The tokens BackendID(store) and StoreID(store) inside strings are
// replaced by the real values before sending.
func Send(conn string, msg any) Step {
	b, err := json.Marshal(msg)
	if err != nil {
		panic(fmt.Sprintf("difftest: message %v: %v", msg, err)) // a bug in a script
	}
	return Step{kind: stepSend, conn: conn, msg: string(b)}
}

// SendRaw sends text exactly as given (for malformed or unusual envelopes).
// Tokens are replaced as for Send.
func SendRaw(conn, text string) Step { return Step{kind: stepSendRaw, conn: conn, msg: text} }

// Recv collects messages on conn until every condition holds, in the order the
// messages arrive, and fails after the step timeout. Messages that arrive
// later stay queued for the next step on conn.
func Recv(conn string, until ...Cond) Step { return Step{kind: stepRecv, conn: conn, until: until} }

// RecvAll is Recv, then listens on for Linger more. It suits an action whose
// answers may differ between servers beyond what the conditions name (for
// example a broadcast the reference sends to an ended pull): the extra
// messages then land in this step on every server, not in a later one.
func RecvAll(conn string, until ...Cond) Step {
	return Step{kind: stepRecv, conn: conn, until: until, wait: Linger}
}

// Linger is how long RecvAll listens after its conditions hold.
const Linger = 300 * time.Millisecond

// Quiet listens on conn for d and records whatever arrives; a script uses it to
// show that nothing is sent (e.g. no next page before the Ack). It cannot
// prove absence beyond d.
func Quiet(conn string, d time.Duration) Step { return Step{kind: stepQuiet, conn: conn, wait: d} }

// Close closes conn from the client side.
func Close(conn string) Step { return Step{kind: stepClose, conn: conn} }

// A Cond is a condition over the messages a Recv step has collected.
type Cond struct {
	desc string
	ok   func(got []Message) bool
}

func (c Cond) String() string { return c.desc }

// ExitOf holds once an Exit for request id has arrived.
func ExitOf(id string) Cond {
	return Cond{fmt.Sprintf("Exit of request %s", id), func(got []Message) bool {
		return count(got, func(m Message) bool { return m.Tag == "Exit" && m.RequestID == id }) > 0
	}}
}

// Chunks holds once n Chunk messages for request id have arrived.
func Chunks(id string, n int) Cond {
	return Cond{fmt.Sprintf("%d Chunk(s) of request %s", n, id), func(got []Message) bool {
		return count(got, func(m Message) bool { return m.Tag == "Chunk" && m.RequestID == id }) >= n
	}}
}

// Tagged holds once n messages with _tag tag have arrived (e.g. "Pong", "Defect").
func Tagged(tag string, n int) Cond {
	return Cond{fmt.Sprintf("%d %s message(s)", n, tag), func(got []Message) bool {
		return count(got, func(m Message) bool { return m.Tag == tag }) >= n
	}}
}

// Closed holds once the server has closed the connection.
func Closed() Cond {
	return Cond{"connection closed", func(got []Message) bool {
		return count(got, func(m Message) bool { return m.Closed }) > 0
	}}
}

func count(got []Message, pred func(Message) bool) int {
	n := 0
	for _, m := range got {
		if pred(m) {
			n++
		}
	}
	return n
}

// Tokens stand for values known only while a script runs.

// BackendID stands for the backend id the server reported for store (learned
// from the first pull page a script receives for it).
func BackendID(store string) string { return "@backendId(" + store + ")" }

// StoreID stands for the real store id of a symbolic store.
func StoreID(store string) string { return "@storeId(" + store + ")" }

// Message helpers: the Effect RPC envelopes of the sync-cf WebSocket protocol.

type obj = map[string]any

// Request is an Effect RPC request envelope as the JS client sends it.
func Request(id, tag string, payload any) obj {
	return obj{"_tag": "Request", "id": id, "tag": tag, "payload": payload,
		"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "sampled": false, "headers": []any{}}
}

// Pull is a SyncWsRpc.Pull request; cursor is NoCursor() or Cursor(...).
func Pull(id, store string, live bool, cursor any) obj {
	return Request(id, "SyncWsRpc.Pull", obj{"storeId": StoreID(store), "live": live, "cursor": cursor})
}

// NoCursor is the Option None cursor: pull from the start.
func NoCursor() obj { return obj{"_tag": "None"} }

// Cursor is Option Some: pull the events after seqNum of the given backend.
func Cursor(backendID string, seqNum int) obj {
	return obj{"_tag": "Some", "value": obj{"backendId": backendID, "eventSequenceNumber": seqNum}}
}

// Push is a SyncWsRpc.Push request; backendID is NoBackend() or SomeBackend(...).
func Push(id, store string, backendID any, batch ...obj) obj {
	if batch == nil {
		batch = []obj{}
	}
	return Request(id, "SyncWsRpc.Push", obj{"storeId": StoreID(store), "batch": batch, "backendId": backendID})
}

// NoBackend is the Option None backend id of a push (client never synced).
func NoBackend() obj { return obj{"_tag": "None"} }

// SomeBackend is Option Some backend id of a push.
func SomeBackend(id string) obj { return obj{"_tag": "Some", "value": id} }

// Ack acknowledges the last Chunk of request id (flow control).
func Ack(id string) obj { return obj{"_tag": "Ack", "requestId": id} }

// Interrupt ends request id.
func Interrupt(id string) obj { return obj{"_tag": "Interrupt", "requestId": id} }

// Ping is the keep-alive the JS client sends every 10 s.
func Ping() obj { return obj{"_tag": "Ping"} }

// Event is a global encoded event of the interop todo schema.
func Event(seq, parent int, name string, args any) obj {
	return obj{"name": name, "args": args, "seqNum": seq, "parentSeqNum": parent,
		"clientId": "client-a", "sessionId": "session-a"}
}

// Todo is a v1.TodoCreated event with id "t<seq>".
func Todo(seq, parent int) obj {
	return Event(seq, parent, "v1.TodoCreated", obj{"id": fmt.Sprintf("t%d", seq), "text": fmt.Sprintf("todo %d", seq)})
}

// Todos is a chained batch of n v1.TodoCreated events after parent.
func Todos(parent, n int) []obj {
	batch := make([]obj, n)
	for i := range batch {
		batch[i] = Todo(parent+i+1, parent+i)
	}
	return batch
}
