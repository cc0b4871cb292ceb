package livestore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/memsync"
	"github.com/livestore-go/livestore/syncproto"
)

func syncOpts(l *memsync.Link) *livestore.SyncOptions {
	return &livestore.SyncOptions{Backend: l, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
}

func openSynced(t testing.TB, schema *livestore.Schema, dir string, sync *livestore.SyncOptions) *livestore.Store {
	t.Helper()
	s, err := livestore.Open(context.Background(), schema, livestore.Options{Dir: dir, StoreID: "shared", Sync: sync})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// syncedEvents lists a store's synced events in the server's global form.
func syncedEvents(t testing.TB, s *livestore.Store) []syncproto.Event {
	t.Helper()
	var out []syncproto.Event
	for ev, err := range s.Events(context.Background(), eventlog.Root) {
		if err != nil {
			t.Fatal(err)
		}
		if !ev.SeqNum.IsClientOnly() {
			out = append(out, syncproto.Event{Name: ev.Name, Args: ev.Args, SeqNum: ev.SeqNum.Global,
				ParentSeqNum: ev.ParentSeqNum.Global, ClientID: ev.ClientID, SessionID: ev.SessionID})
		}
	}
	return out
}

func eventsString(evs []syncproto.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%d<-%d %s %s %s/%s\n", e.SeqNum, e.ParentSeqNum, e.Name, e.Args, e.ClientID, e.SessionID)
	}
	return b.String()
}

// waitConverged waits until every store has pushed everything and holds
// exactly the server's log, then checks their states are identical.
func waitConverged(t testing.TB, srv *memsync.Server, stores ...*livestore.Store) {
	t.Helper()
	waitConvergedState(t, srv, true, stores...)
}

// waitConvergedState is waitConverged; compareState false skips comparing
// states across stores (client-only events make them differ by design).
func waitConvergedState(t testing.TB, srv *memsync.Server, compareState bool, stores ...*livestore.Store) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for {
		server := srv.Events("shared")
		done := true
		for _, s := range stores {
			st, err := s.SyncStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Stopped {
				t.Fatalf("sync stopped: %s", st.Err)
			}
			if st.PendingCount != 0 || st.UpstreamHead != int64(len(server)) {
				done = false
				break
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			for i, s := range stores {
				st, _ := s.SyncStatus(ctx)
				t.Logf("store %d: %+v", i, st)
			}
			t.Fatalf("no convergence; server has %d events", len(server))
		}
		time.Sleep(2 * time.Millisecond)
	}
	want := eventsString(srv.Events("shared"))
	for i, s := range stores {
		// Every event's parent is exactly the event before it, generation
		// included.
		prev := eventlog.Root
		for ev, err := range s.Events(ctx, eventlog.Root) {
			if err != nil {
				t.Fatal(err)
			}
			if ev.ParentSeqNum != prev {
				t.Fatalf("store %d: %s has parent %s, the event before it is %s", i, ev.SeqNum, ev.ParentSeqNum, prev)
			}
			prev = ev.SeqNum
		}
		if got := eventsString(syncedEvents(t, s)); got != want {
			t.Fatalf("store %d eventlog differs from the server's:\n%s\nserver:\n%s", i, got, want)
		}
	}
	ref := dump(t, stores[0])
	for i, s := range stores[1:] {
		if d := dump(t, s); compareState && d != ref {
			t.Fatalf("store %d state differs from store 0:\n%s\nvs\n%s", i+1, d, ref)
		}
	}
	// And each state equals a fresh rematerialization of its log.
	for i, s := range stores {
		before := dump(t, s)
		if err := s.Rematerialize(ctx); err != nil {
			t.Fatal(err)
		}
		if d := dump(t, s); d != before {
			t.Fatalf("store %d state differs from its rematerialization:\n%s\nvs\n%s", i, before, d)
		}
	}
}

func TestSyncTwoAndThreeClientsConverge(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			a := newTodoApp(t)
			srv := memsync.NewServer()
			stores := make([]*livestore.Store, n)
			for i := range stores {
				stores[i] = openSynced(t, a.schema, t.TempDir(), syncOpts(srv.NewLink()))
			}
			ctx := context.Background()
			errs := make(chan error, n)
			for i, s := range stores {
				go func() {
					for j := 0; j < 40; j++ {
						id := fmt.Sprintf("c%d-%d", i, j)
						evs := []livestore.Event{a.created.New(todoCreated{ID: id, Text: id})}
						if j%4 == 0 {
							evs = append(evs, a.completed.New(todoID{ID: id}))
						}
						if err := s.Commit(ctx, evs...); err != nil {
							errs <- err
							return
						}
					}
					errs <- nil
				}()
			}
			for range stores {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			waitConverged(t, srv, stores...)
			rows, _ := livestore.Query[todo](ctx, stores[0], a.todos.Select())
			if len(rows) != 40*n {
				t.Fatalf("%d rows", len(rows))
			}
		})
	}
}

func TestSyncOfflineClientRejoins(t *testing.T) {
	a := newTodoApp(t)
	srv := memsync.NewServer()
	online := openSynced(t, a.schema, t.TempDir(), syncOpts(srv.NewLink()))
	link := srv.NewLink()
	link.SetOnline(false)
	dir := t.TempDir()
	offline := openSynced(t, a.schema, dir, syncOpts(link))
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		mustCommit(t, offline, a.created.New(todoCreated{ID: fmt.Sprint("off", i), Text: "x"}))
		if i%10 == 0 {
			mustCommit(t, online, a.created.New(todoCreated{ID: fmt.Sprint("on", i), Text: "y"}))
		}
	}
	st, _ := offline.SyncStatus(ctx)
	if st.PendingCount != 1000 || st.Connected || st.IsSynced {
		t.Fatalf("offline status = %+v", st)
	}
	link.SetOnline(true)
	waitConverged(t, srv, online, offline)
	if n := len(srv.Events("shared")); n != 1100 {
		t.Fatalf("server has %d events", n)
	}
	// The rebased events are numbered after the server's.
	evs := syncedEvents(t, offline)
	if evs[len(evs)-1].SeqNum != 1100 {
		t.Fatalf("last seqNum %d", evs[len(evs)-1].SeqNum)
	}
}

func TestSyncRebaseKeepsClientOnlyEvents(t *testing.T) {
	a := newTodoApp(t)
	srv := memsync.NewServer()
	l1, l2 := srv.NewLink(), srv.NewLink()
	s1 := openSynced(t, a.schema, t.TempDir(), syncOpts(l1))
	s2 := openSynced(t, a.schema, t.TempDir(), syncOpts(l2))
	mustCommit(t, s1, a.created.New(todoCreated{ID: "shared", Text: "base"}))
	waitConverged(t, srv, s1, s2)

	l2.SetOnline(false)
	// s2: client-only event, synced event, client-only, synced, UI doc.
	mustCommit(t, s2, a.renamed.New(todoCreated{ID: "shared", Text: "+local1"}))
	mustCommit(t, s2, a.created.New(todoCreated{ID: "mine", Text: "m"}))
	mustCommit(t, s2, a.renamed.New(todoCreated{ID: "mine", Text: "+local2"}), a.completed.New(todoID{ID: "mine"}))
	mustCommit(t, s2, a.ui.Set("main", map[string]any{"filter": "mine"}))
	// Meanwhile s1 adds events upstream.
	for i := 0; i < 3; i++ {
		mustCommit(t, s1, a.created.New(todoCreated{ID: fmt.Sprint("up", i), Text: "u"}))
	}
	waitConverged(t, srv, s1)
	l2.SetOnline(true)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, _ := s2.SyncStatus(context.Background())
		if st.PendingCount == 0 && st.UpstreamHead == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
	var seqs []string
	for ev, err := range s2.Events(context.Background(), eventlog.Root) {
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ev.SeqNum.String()+":"+ev.Name)
	}
	want := "e1:v1.TodoCreated e1.1:v1.TodoRenamedLocally e2:v1.TodoCreated e3:v1.TodoCreated e4:v1.TodoCreated " +
		"e5r1:v1.TodoCreated e5.1r1:v1.TodoRenamedLocally e6r1:v1.TodoCompleted e6.1r1:uiStateSet"
	if got := strings.Join(seqs, " "); got != want {
		t.Fatalf("log after rebase:\n%s\nwant\n%s", got, want)
	}
	rows, _ := livestore.Query[todo](context.Background(), s2, a.todos.Select().OrderBy("id"))
	texts := map[string]string{}
	for _, r := range rows {
		texts[r.ID] = fmt.Sprint(r.Text, r.Completed)
	}
	if texts["shared"] != "base+local1false" || texts["mine"] != "m+local2true" || len(rows) != 5 {
		t.Fatalf("state after rebase: %v", texts)
	}
	ui, _ := a.ui.Get(context.Background(), s2, "main")
	if ui.Filter != "mine" {
		t.Fatalf("client document lost: %+v", ui)
	}
	// s1 got s2's synced events but none of its client-only ones.
	waitConvergedState(t, srv, false, s1, s2)
	r1, _ := livestore.Query[todo](context.Background(), s1, a.todos.Where(livestore.Eq("id", "mine")))
	if len(r1) != 1 || r1[0].Text != "m" || !r1[0].Completed {
		t.Fatalf("s1 sees %+v", r1)
	}
}

func TestSyncReactivityAfterRebase(t *testing.T) {
	a := newTodoApp(t)
	srv := memsync.NewServer()
	l1, l2 := srv.NewLink(), srv.NewLink()
	s1 := openSynced(t, a.schema, t.TempDir(), syncOpts(l1))
	s2 := openSynced(t, a.schema, t.TempDir(), syncOpts(l2))
	l2.SetOnline(false)
	for i := 0; i < 20; i++ {
		mustCommit(t, s2, a.created.New(todoCreated{ID: fmt.Sprint("mine", i)}))
		mustCommit(t, s1, a.created.New(todoCreated{ID: fmt.Sprint("theirs", i)}))
	}
	waitConverged(t, srv, s1)
	count := livestore.QueryDBFirst(a.todos.Count(), struct{ Count int }{})
	r := newRecorder[struct{ Count int }]()
	un, _ := livestore.Subscribe(context.Background(), s2, count, r.fn)
	defer un()
	r.wait(t, 1)
	l2.SetOnline(true)
	waitConverged(t, srv, s1, s2)
	settle(t, s2, count)
	// The rollback removed s2's 20 rows before the rebase put them back on
	// top of s1's: a subscriber sees 20, then 40, never the 0 or 20-of-theirs
	// in between.
	for _, v := range r.values() {
		if v.Count != 20 && v.Count != 40 {
			t.Fatalf("subscriber saw intermediate state: %v", r.values())
		}
	}
	if vals := r.values(); vals[len(vals)-1].Count != 40 {
		t.Fatalf("final %v", vals)
	}
}

func TestSyncBackendIDPolicies(t *testing.T) {
	for _, c := range []struct {
		name   string
		policy livestore.BackendIDMismatchPolicy
	}{{"reset", livestore.ResetOnBackendIDMismatch}, {"shutdown", livestore.ShutdownOnBackendIDMismatch}, {"ignore", livestore.IgnoreBackendIDMismatch}} {
		t.Run(c.name, func(t *testing.T) {
			a := newTodoApp(t)
			srv := memsync.NewServer()
			link := srv.NewLink()
			opts := syncOpts(link)
			opts.OnBackendIDMismatch = c.policy
			s := openSynced(t, a.schema, t.TempDir(), opts)
			mustCommit(t, s, a.created.New(todoCreated{ID: "a"}))
			waitConverged(t, srv, s)
			first := srv.BackendID("shared")
			srv.Reset("shared")
			link.Drop()
			ctx := context.Background()
			deadline := time.Now().Add(30 * time.Second)
			for {
				st, _ := s.SyncStatus(ctx)
				done := false
				switch c.policy {
				case livestore.IgnoreBackendIDMismatch:
					done = st.BackendID != first && st.BackendID != ""
				default:
					done = st.Stopped
				}
				if done {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("status %+v", st)
				}
				time.Sleep(2 * time.Millisecond)
			}
			rows, _ := livestore.Query[todo](ctx, s, a.todos.Select())
			st, _ := s.SyncStatus(ctx)
			switch c.policy {
			case livestore.ResetOnBackendIDMismatch:
				if len(rows) != 0 || st.LocalHead != eventlog.Root || !strings.Contains(st.Err, "reset") {
					t.Fatalf("reset: rows %d, status %+v", len(rows), st)
				}
			case livestore.ShutdownOnBackendIDMismatch:
				if len(rows) != 1 || !strings.Contains(st.Err, "backend id") {
					t.Fatalf("shutdown: rows %d, status %+v", len(rows), st)
				}
			case livestore.IgnoreBackendIDMismatch:
				if len(rows) != 1 || st.Stopped {
					t.Fatalf("ignore: rows %d, status %+v", len(rows), st)
				}
			}
			// The store keeps working locally in every case.
			mustCommit(t, s, a.created.New(todoCreated{ID: "after"}))
		})
	}
}

func TestSyncUnknownEventsFromNewerClients(t *testing.T) {
	a := newTodoApp(t)
	srv := memsync.NewServer()
	// A newer client knows an event the older one does not.
	newer := livestore.Synced[todoID]("v2.TodoArchived")
	todos := livestore.NewTable("todos", livestore.Text("id").PrimaryKey(), livestore.Text("text").Default(""),
		livestore.Boolean("completed").Default(false), livestore.DateTime("deletedAt").Nullable())
	_ = todos
	newSchema, err := livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{a.todos, a.ui.Table},
		Events: []livestore.Definition{a.created, newer},
		Materializers: []livestore.Materializer{
			livestore.Materialize(a.created, func(_ *livestore.MaterializeContext, e todoCreated) ([]livestore.Statement, error) {
				return []livestore.Statement{a.todos.Insert(livestore.Values{"id": e.ID, "text": e.Text})}, nil
			}),
			livestore.Materialize(newer, func(_ *livestore.MaterializeContext, e todoID) ([]livestore.Statement, error) {
				return []livestore.Statement{a.todos.Delete().Where(livestore.Eq("id", e.ID))}, nil
			}),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sNew := openSynced(t, newSchema, t.TempDir(), syncOpts(srv.NewLink()))
	sOld := openSynced(t, a.schema, t.TempDir(), syncOpts(srv.NewLink()))
	mustCommit(t, sNew, a.created.New(todoCreated{ID: "x"}), newer.New(todoID{ID: "x"}), a.created.New(todoCreated{ID: "y"}))
	mustCommit(t, sOld, a.created.New(todoCreated{ID: "z"}))
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s1, _ := sOld.SyncStatus(ctx)
		s2, _ := sNew.SyncStatus(ctx)
		if s1.UpstreamHead == 4 && s2.UpstreamHead == 4 && s1.PendingCount == 0 && s2.PendingCount == 0 {
			break
		}
		if s1.Stopped || time.Now().After(deadline) {
			t.Fatalf("old %+v new %+v", s1, s2)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if got, want := eventsString(syncedEvents(t, sOld)), eventsString(srv.Events("shared")); got != want {
		t.Fatalf("old client log:\n%s\nwant\n%s", got, want)
	}
	// The old client skipped the archive it does not understand.
	rows, _ := livestore.Query[todo](ctx, sOld, a.todos.Select().OrderBy("id"))
	if len(rows) != 3 {
		t.Fatalf("old client rows: %+v", rows)
	}
}

func TestSyncPayloadReachesBackend(t *testing.T) {
	a := newTodoApp(t)
	got := make(chan json.RawMessage, 1)
	backend := payloadSpy{got: got, inner: memsync.NewServer().NewLink()}
	_ = openSynced(t, a.schema, "", &livestore.SyncOptions{Backend: backend, Payload: json.RawMessage(`{"authToken":"t0k"}`)})
	select {
	case p := <-got:
		if string(p) != `{"authToken":"t0k"}` {
			t.Fatalf("payload %s", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no connect")
	}
}

type payloadSpy struct {
	got   chan json.RawMessage
	inner *memsync.Link
}

func (p payloadSpy) Connect(ctx context.Context, storeID string, payload json.RawMessage) (livestore.SyncConn, error) {
	select {
	case p.got <- payload:
	default:
	}
	return p.inner.Connect(ctx, storeID, payload)
}

func TestSyncStatusSignal(t *testing.T) {
	a := newTodoApp(t)
	srv := memsync.NewServer()
	s := openSynced(t, a.schema, t.TempDir(), syncOpts(srv.NewLink()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mustCommit(t, s, a.created.New(todoCreated{ID: "a"}))
	for st, err := range livestore.Watch(ctx, s, s.SyncStatusSignal()) {
		if err != nil {
			t.Fatal(err)
		}
		if st.IsSynced && st.UpstreamHead == 1 {
			return
		}
	}
	t.Fatal("never synced")
}

func TestOpenWithSyncRecordsChangesetsOfOldEvents(t *testing.T) {
	// Events committed without sync have no changesets; opening with sync
	// must still be able to rebase them.
	a := newTodoApp(t)
	dir := t.TempDir()
	s := openStore(t, a.schema, dir)
	mustCommit(t, s, a.created.New(todoCreated{ID: "local"}))
	s.Close()
	srv := memsync.NewServer()
	other := openSynced(t, a.schema, t.TempDir(), syncOpts(srv.NewLink()))
	mustCommit(t, other, a.created.New(todoCreated{ID: "remote"}))
	waitConverged(t, srv, other)
	s2 := openSynced(t, a.schema, dir, syncOpts(srv.NewLink()))
	waitConverged(t, srv, other, s2)
	if err := errors.Unwrap(nil); err != nil {
		t.Fatal(err)
	}
}
