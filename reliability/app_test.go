package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
)

// The test app: items, and a counter whose value and "last" column depend on
// the order in which items were added, so that two clients that applied the
// same events in different orders end with different states. Views are
// client-only (they stay on the client that committed them).
type itemAdded struct {
	ID    string `json:"id"`
	Text  string `json:"text"`
	Owner string `json:"owner"`
}

type itemEdited struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

type itemViewed struct {
	ID string `json:"id"`
}

type app struct {
	schema *livestore.Schema
	added  *livestore.EventDef[itemAdded]
	edited *livestore.EventDef[itemEdited]
	viewed *livestore.EventDef[itemViewed]
}

func newApp(t testing.TB) *app {
	t.Helper()
	a, err := makeApp()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func makeApp() (*app, error) {
	a := &app{
		added:  livestore.Synced[itemAdded]("v1.ItemAdded"),
		edited: livestore.Synced[itemEdited]("v1.ItemEdited"),
		viewed: livestore.ClientOnly[itemViewed]("v1.ItemViewed"),
	}
	items := livestore.NewTable("items",
		livestore.Text("id").PrimaryKey(),
		livestore.Text("text").Default(""),
		livestore.Text("owner").Default(""),
		livestore.Integer("pos").Default(0),
		livestore.Integer("edits").Default(0))
	counters := livestore.NewTable("counters",
		livestore.Text("name").PrimaryKey(),
		livestore.Integer("value").Default(0),
		livestore.Text("lastId").Default(""))
	views := livestore.NewTable("views",
		livestore.Text("id").PrimaryKey(),
		livestore.Integer("n").Default(0))
	var err error
	a.schema, err = livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{items, counters, views},
		Events: []livestore.Definition{a.added, a.edited, a.viewed},
		Materializers: []livestore.Materializer{
			livestore.Materialize(a.added, func(_ *livestore.MaterializeContext, e itemAdded) ([]livestore.Statement, error) {
				return []livestore.Statement{
					livestore.SQL(`INSERT INTO counters (name, value, lastId) VALUES ('items', 1, ?)
ON CONFLICT (name) DO UPDATE SET value = value + 1, lastId = excluded.lastId`, e.ID),
					livestore.SQL(`INSERT INTO items (id, text, owner, pos) VALUES (?, ?, ?, (SELECT value FROM counters WHERE name = 'items'))`,
						e.ID, e.Text, e.Owner),
				}, nil
			}),
			livestore.Materialize(a.edited, func(_ *livestore.MaterializeContext, e itemEdited) ([]livestore.Statement, error) {
				return []livestore.Statement{
					livestore.SQL(`UPDATE items SET text = ?, edits = edits + 1 WHERE id = ?`, e.Text, e.ID),
					livestore.SQL(`INSERT INTO counters (name, value, lastId) VALUES ('edits', 1, ?)
ON CONFLICT (name) DO UPDATE SET value = value + 1, lastId = excluded.lastId`, e.ID),
				}, nil
			}),
			livestore.Materialize(a.viewed, func(_ *livestore.MaterializeContext, e itemViewed) ([]livestore.Statement, error) {
				return []livestore.Statement{livestore.SQL(`INSERT INTO views (id, n) VALUES (?, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1`, e.ID)}, nil
			}),
		},
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// eventKey identifies a synced event of the test app: the item id of an
// ItemAdded, the text of an ItemEdited (workloads make edit texts unique).
// Keys let tests find each event written once, and only once, in a log.
func eventKey(name string, args json.RawMessage) string {
	var v struct {
		ID   string `json:"id"`
		Text string `json:"text"`
	}
	_ = json.Unmarshal(args, &v)
	switch name {
	case "v1.ItemAdded":
		return "add:" + v.ID
	case "v1.ItemEdited":
		return "edit:" + v.Text
	}
	return ""
}

// wsBackend is the store's WebSocket backend with pings frequent enough for
// lost connections to be noticed quickly.
func wsBackend(url string) livestore.SyncBackend {
	return syncclient.WebSocketBackend(url, fastClientOptions())
}

func fastClientOptions() syncclient.Options {
	return syncclient.Options{PingInterval: 300 * time.Millisecond, WriteTimeout: 5 * time.Second, HandshakeTimeout: time.Second}
}

func syncOptions(b livestore.SyncBackend) *livestore.SyncOptions {
	return &livestore.SyncOptions{Backend: b, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
}

// openStore opens a store in dir (synced when sync is not nil), closed when
// the test ends.
func openStore(t testing.TB, a *app, dir, storeID string, sync *livestore.SyncOptions) *livestore.Store {
	t.Helper()
	s, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: dir, StoreID: storeID, Sync: sync,
		Durability: livestore.DurabilityProcess})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// syncedEvents returns a store's synced events in the server's global form.
func syncedEvents(ctx context.Context, s *livestore.Store) ([]syncproto.Event, error) {
	var out []syncproto.Event
	for ev, err := range s.Events(ctx, eventlog.Root) {
		if err != nil {
			return nil, err
		}
		if !ev.SeqNum.IsClientOnly() {
			out = append(out, syncproto.Event{Name: ev.Name, Args: ev.Args, SeqNum: ev.SeqNum.Global,
				ParentSeqNum: ev.ParentSeqNum.Global, ClientID: ev.ClientID, SessionID: ev.SessionID})
		}
	}
	return out, nil
}

// logDiff describes the first difference between two logs, "" if equal.
func logDiff(got, want []syncproto.Event) string {
	for i := 0; i < len(got) && i < len(want); i++ {
		g, w := got[i], want[i]
		if g.SeqNum != w.SeqNum || g.ParentSeqNum != w.ParentSeqNum || g.Name != w.Name || g.ClientID != w.ClientID ||
			g.SessionID != w.SessionID || !sameJSON(g.Args, w.Args) {
			return fmt.Sprintf("event %d: %s vs %s", i, fmtEvent(g), fmtEvent(w))
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d events vs %d", len(got), len(want))
	}
	return ""
}

func fmtEvent(e syncproto.Event) string {
	return fmt.Sprintf("e%d<-e%d %s %s %s/%s", e.SeqNum, e.ParentSeqNum, e.Name, e.Args, e.ClientID, e.SessionID)
}

func sameJSON(a, b json.RawMessage) bool {
	if string(a) == string(b) {
		return true
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return string(ja) == string(jb)
}

// checkServerLog asserts the log is e1..eN without gaps and without an event
// twice, and returns the position of each event by key.
func checkServerLog(t testing.TB, log []syncproto.Event) map[string]int64 {
	t.Helper()
	keys := make(map[string]int64, len(log))
	for i, ev := range log {
		if ev.SeqNum != int64(i+1) || ev.ParentSeqNum != int64(i) {
			t.Fatalf("server log: gap or disorder at index %d: %s", i, fmtEvent(ev))
		}
		k := eventKey(ev.Name, ev.Args)
		if k == "" {
			t.Fatalf("server log: unexpected event %s", fmtEvent(ev))
		}
		if prev, dup := keys[k]; dup {
			t.Fatalf("server log: event %s stored twice (e%d and e%d)", k, prev, ev.SeqNum)
		}
		keys[k] = ev.SeqNum
	}
	return keys
}

// checkAcked asserts that every acknowledged event key is in the log.
func checkAcked(t testing.TB, keys map[string]int64, acked map[string]bool, who string) {
	t.Helper()
	for k := range acked {
		if _, ok := keys[k]; !ok {
			t.Fatalf("%s: acknowledged event %s is missing from the server log", who, k)
		}
	}
}

// checkStoreConsistent asserts that a store's eventlog chains (each event's
// parent is the event before it, up to the rebase generation) and that its state equals a rebuild from its
// eventlog.
func checkStoreConsistent(t testing.TB, s *livestore.Store, what string) {
	t.Helper()
	ctx := context.Background()
	prev := eventlog.Root
	for ev, err := range s.Events(ctx, eventlog.Root) {
		if err != nil {
			t.Fatal(err)
		}
		// The rebase generation of a parent is not compared: events pulled
		// from the server name their parent with generation 0, also when the
		// local copy of the parent was confirmed after a rebase (e5r1).
		if ev.ParentSeqNum.Global != prev.Global || ev.ParentSeqNum.Client != prev.Client || ev.SeqNum.Compare(prev) <= 0 {
			t.Fatalf("%s: eventlog does not chain: %s (parent %s) after %s", what, ev.SeqNum, ev.ParentSeqNum, prev)
		}
		prev = ev.SeqNum
	}
	before, err := s.DumpState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Rematerialize(ctx); err != nil {
		t.Fatalf("%s: rematerialize: %v", what, err)
	}
	after, err := s.DumpState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before != after {
		t.Fatalf("%s: state differs from a rebuild from its eventlog:\n%s", what, firstLineDiff(before, after))
	}
}

// withoutTable removes one table's section from a DumpState text.
func withoutTable(dump, table string) string {
	var b strings.Builder
	skip := false
	for _, line := range strings.SplitAfter(dump, "\n") {
		if strings.HasPrefix(line, "table ") {
			skip = strings.TrimSpace(line) == "table "+table
		}
		if !skip {
			b.WriteString(line)
		}
	}
	return b.String()
}

func firstLineDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(la) || i < len(lb); i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  %s\n  %s", i+1, x, y)
		}
	}
	return "(equal)"
}

// waitConverged waits until every store has nothing pending and holds exactly
// the server's log (serverLog reads it), then checks that their states are
// equal (ignoring the client-only views table) and equal to rebuilds from
// their eventlogs. It returns the server log.
func waitConverged(t testing.TB, timeout time.Duration, serverLog func() ([]syncproto.Event, error), stores ...*livestore.Store) []syncproto.Event {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	var log []syncproto.Event
	start := time.Now()
	for {
		var err error
		log, err = serverLog()
		ok := err == nil
		for i := 0; ok && i < len(stores); i++ {
			st, err := stores[i].SyncStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Stopped {
				t.Fatalf("store %d: sync stopped: %s", i, st.Err)
			}
			ok = st.PendingCount == 0 && st.UpstreamHead == int64(len(log))
		}
		if ok {
			if d := time.Since(start); d > time.Second {
				t.Logf("converged %v after the faults ended", d.Round(time.Millisecond))
			}
			break
		}
		if time.Now().After(deadline) {
			for i, s := range stores {
				st, _ := s.SyncStatus(ctx)
				t.Logf("store %d: %+v", i, st)
			}
			t.Fatalf("no convergence within %v: server log has %d events (read error %v)", timeout, len(log), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var ref string
	for i, s := range stores {
		evs, err := syncedEvents(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if d := logDiff(evs, log); d != "" {
			t.Fatalf("store %d: eventlog differs from the server's: %s", i, d)
		}
		checkStoreConsistent(t, s, fmt.Sprintf("store %d", i))
		dump, err := s.DumpState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		dump = withoutTable(dump, "views")
		if i == 0 {
			ref = dump
		} else if dump != ref {
			t.Fatalf("store %d: state differs from store 0's: %s", i, firstLineDiff(dump, ref))
		}
	}
	return log
}

// ackTracker records the events a store has seen confirmed by the server.
type ackTracker struct {
	s       *livestore.Store
	scanned int64           // confirmed events up to this global were recorded
	acked   map[string]bool // keys of this store's own confirmed events
}

func newAckTracker(s *livestore.Store) *ackTracker {
	return &ackTracker{s: s, acked: map[string]bool{}}
}

// poll records the store's events confirmed since the last poll.
func (a *ackTracker) poll(ctx context.Context) error {
	st, err := a.s.SyncStatus(ctx)
	if err != nil {
		return err
	}
	if st.UpstreamHead <= a.scanned {
		return nil
	}
	for ev, err := range a.s.Events(ctx, eventlog.SeqNum{Global: a.scanned}) {
		if err != nil {
			return err
		}
		if ev.SeqNum.Global > st.UpstreamHead {
			break
		}
		if !ev.SeqNum.IsClientOnly() && ev.ClientID == a.s.ClientID() {
			a.acked[eventKey(ev.Name, ev.Args)] = true
		}
	}
	a.scanned = st.UpstreamHead
	return nil
}
