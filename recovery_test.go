package livestore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/memsync"
	"github.com/livestore-go/livestore/syncclient"
)

// waitStatus polls s's sync status until cond holds.
func waitStatus(t testing.TB, s *livestore.Store, what string, cond func(livestore.SyncStatus) bool) livestore.SyncStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := s.SyncStatus(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: status %+v", what, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// identity is what makes an event the same event wherever it is numbered.
type identity struct{ Name, Args, ClientID, SessionID string }

func idOf(name string, args []byte, clientID, sessionID string) identity {
	return identity{name, string(args), clientID, sessionID}
}

// localSynced returns the identities of s's synced events after upstream
// head `after`, in log order: its pending events when after is the head.
func localSynced(t testing.TB, s *livestore.Store, after int64) []identity {
	t.Helper()
	var out []identity
	for _, e := range syncedEvents(t, s) {
		if e.SeqNum > after {
			out = append(out, idOf(e.Name, e.Args, e.ClientID, e.SessionID))
		}
	}
	return out
}

func serverIdentities(srv *memsync.Server) []identity {
	var out []identity
	for _, e := range srv.Events("shared") {
		out = append(out, idOf(e.Name, e.Args, e.ClientID, e.SessionID))
	}
	return out
}

func todoIDs(t testing.TB, s *livestore.Store) string {
	t.Helper()
	rows, err := livestore.Query[todo](context.Background(), s, livestore.SQL(`SELECT * FROM todos ORDER BY id`))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.ID)
	}
	return strings.Join(ids, " ")
}

// checkRecovery checks that rec holds exactly the synced events of the
// store before the change: confirmed ones with the old backend id, the
// pending ones marked, numbered as one chain from e1.
func checkRecovery(t testing.TB, rec []livestore.RecoveryEvent, oldID string, confirmed, pending []identity) {
	t.Helper()
	if len(rec) != len(confirmed)+len(pending) {
		t.Fatalf("recovery holds %d events, want %d confirmed + %d pending: %+v", len(rec), len(confirmed), len(pending), rec)
	}
	for i, r := range rec {
		want, wantPending := identity{}, i >= len(confirmed)
		if wantPending {
			want = pending[i-len(confirmed)]
		} else {
			want = confirmed[i]
		}
		if got := idOf(r.Name, r.Args, r.ClientID, r.SessionID); got != want {
			t.Fatalf("recovery event %d is %+v, want %+v", i, got, want)
		}
		if r.Pending() != wantPending || (!wantPending && r.BackendID != oldID) {
			t.Fatalf("recovery event %d: pending %v backendId %q, want pending %v (old backend %q)", i, r.Pending(), r.BackendID, wantPending, oldID)
		}
		if r.StoreID != "shared" || r.SeqNum != int64(i+1) || r.ParentSeqNum != int64(i) {
			t.Fatalf("recovery event %d: store %q e%d<-e%d", i, r.StoreID, r.SeqNum, r.ParentSeqNum)
		}
	}
}

func count(haystack []identity, needle identity) int {
	n := 0
	for _, h := range haystack {
		if h == needle {
			n++
		}
	}
	return n
}

// The server's data is deleted (a new backend id) while a client holds
// events no server has. Under every policy each of them is either on the new
// server, once and in order, or in the recovery file, which holds each of
// them exactly.
func TestBackendChangeKeepsUnsyncedEvents(t *testing.T) {
	for _, policy := range []livestore.BackendIDMismatchPolicy{
		livestore.ShutdownOnBackendIDMismatch,
		livestore.RepushOnBackendIDMismatch,
		livestore.ResetOnBackendIDMismatch,
		livestore.IgnoreBackendIDMismatch,
	} {
		t.Run(policy.String(), func(t *testing.T) {
			a := newTodoApp(t)
			srv := memsync.NewServer()
			link := srv.NewLink()
			opts := syncOpts(link)
			opts.OnBackendIDMismatch = policy
			dir := t.TempDir()
			s := openSynced(t, a.schema, dir, opts)
			mustCommit(t, s, a.created.New(todoCreated{ID: "c1", Text: "confirmed"}), a.created.New(todoCreated{ID: "c2"}))
			waitConverged(t, srv, s)
			oldID := srv.BackendID("shared")
			confirmed := localSynced(t, s, 0)

			link.SetOnline(false)
			mustCommit(t, s, a.created.New(todoCreated{ID: "p1", Text: "pending"}))
			mustCommit(t, s, a.renamed.New(todoCreated{ID: "p1", Text: "+local"}), a.created.New(todoCreated{ID: "p2"}))
			mustCommit(t, s, a.completed.New(todoID{ID: "p1"}))
			pending := localSynced(t, s, 2)
			if len(pending) != 3 {
				t.Fatalf("%d pending events", len(pending))
			}

			srv.Reset("shared")
			other := openSynced(t, a.schema, t.TempDir(), syncOpts(srv.NewLink()))
			mustCommit(t, other, a.created.New(todoCreated{ID: "b1", Text: "new server"}))
			waitConverged(t, srv, other)
			newID := srv.BackendID("shared")
			link.SetOnline(true)

			var st livestore.SyncStatus
			switch policy {
			case livestore.RepushOnBackendIDMismatch:
				st = waitStatus(t, s, "repush", func(st livestore.SyncStatus) bool {
					return st.BackendID == newID && st.PendingCount == 0 && st.UpstreamHead == 4
				})
				waitConvergedState(t, srv, false, s, other)
			case livestore.IgnoreBackendIDMismatch:
				st = waitStatus(t, s, "adoption", func(st livestore.SyncStatus) bool { return st.BackendID == newID })
			default:
				st = waitStatus(t, s, "stop", func(st livestore.SyncStatus) bool { return st.Stopped })
			}

			// The recovery file, whatever the policy.
			files, err := livestore.RecoveryFiles(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 1 || st.RecoveryFile != files[0] || filepath.Dir(st.RecoveryFile) != dir ||
				!strings.HasSuffix(st.RecoveryFile, "-"+oldID+".jsonl") || st.RecoveredCount != 5 {
				t.Fatalf("recovery files %v, status %+v", files, st)
			}
			rec, err := livestore.ReadRecoveryFile(st.RecoveryFile)
			if err != nil {
				t.Fatal(err)
			}
			checkRecovery(t, rec, oldID, confirmed, pending)
			if got, err := s.RecoveredEvents(); err != nil || !reflect.DeepEqual(got, rec) {
				t.Fatalf("RecoveredEvents: %v, %+v", err, got)
			}

			server := serverIdentities(srv)
			switch policy {
			case livestore.RepushOnBackendIDMismatch:
				// Present on the new server, in order, once; the old
				// server's events only in the file.
				want := append(serverIdentities(srv)[:1:1], pending...)
				if !reflect.DeepEqual(server, want) {
					t.Fatalf("server holds %+v, want %+v", server, want)
				}
				if got := todoIDs(t, s); got != "b1 p1 p2" {
					t.Fatalf("todos %q", got)
				}
				// The client-only event stays, rebased with the others.
				var names []string
				for ev, err := range s.Events(context.Background(), eventlog.Root) {
					if err != nil {
						t.Fatal(err)
					}
					names = append(names, ev.SeqNum.String()+" "+ev.Name)
				}
				if got := strings.Join(names, ","); !strings.Contains(got, ".1r") || !strings.Contains(got, "v1.TodoRenamedLocally") {
					t.Fatalf("log %s", got)
				}
			case livestore.ResetOnBackendIDMismatch:
				if got := todoIDs(t, s); got != "" || st.LocalHead != eventlog.Root {
					t.Fatalf("after reset: todos %q, status %+v", got, st)
				}
				if !strings.Contains(st.Err, livestore.ErrBackendReset.Error()) || !strings.Contains(st.Err, st.RecoveryFile) {
					t.Fatalf("error %q does not name the recovery file", st.Err)
				}
			case livestore.ShutdownOnBackendIDMismatch, livestore.IgnoreBackendIDMismatch:
				if got := todoIDs(t, s); got != "c1 c2 p1 p2" {
					t.Fatalf("todos %q", got)
				}
				if got := localSynced(t, s, 0); !reflect.DeepEqual(got, append(confirmed, pending...)) {
					t.Fatalf("local log changed: %+v", got)
				}
				if policy == livestore.ShutdownOnBackendIDMismatch && !strings.Contains(st.Err, st.RecoveryFile) {
					t.Fatalf("error %q does not name the recovery file", st.Err)
				}
			}
			// No pending event is gone without a copy.
			for _, p := range pending {
				if n := count(server, p); n > 1 {
					t.Fatalf("%+v is %d times on the server", p, n)
				}
				if count(server, p) == 0 && count(recIdentities(rec), p) != 1 {
					t.Fatalf("%+v is neither on the server nor in the recovery file", p)
				}
			}
		})
	}
}

func recIdentities(rec []livestore.RecoveryEvent) []identity {
	out := make([]identity, len(rec))
	for i, r := range rec {
		out[i] = idOf(r.Name, r.Args, r.ClientID, r.SessionID)
	}
	return out
}

// The zero policy deletes nothing: local events survive a server whose data
// was deleted, and syncing stops.
func TestBackendChangeDefaultPolicyKeepsLocalData(t *testing.T) {
	a := newTodoApp(t)
	srv := memsync.NewServer()
	link := srv.NewLink()
	s := openSynced(t, a.schema, t.TempDir(), syncOpts(link))
	mustCommit(t, s, a.created.New(todoCreated{ID: "c1"}))
	waitConverged(t, srv, s)
	link.SetOnline(false)
	mustCommit(t, s, a.created.New(todoCreated{ID: "p1"}), a.created.New(todoCreated{ID: "p2"}), a.created.New(todoCreated{ID: "p3"}))
	before := localSynced(t, s, 0)
	srv.Reset("shared")
	link.SetOnline(true)
	waitStatus(t, s, "stop", func(st livestore.SyncStatus) bool { return st.Stopped })
	if got := localSynced(t, s, 0); !reflect.DeepEqual(got, before) {
		t.Fatalf("local events changed:\n%+v\nwant\n%+v", got, before)
	}
	if got := todoIDs(t, s); got != "c1 p1 p2 p3" {
		t.Fatalf("todos %q", got)
	}
	if n := len(srv.Events("shared")); n != 0 {
		t.Fatalf("the default pushed %d events to the new server", n)
	}
}

// An in-memory store has no directory: the events are kept in memory.
func TestBackendChangeInMemoryStoreKeepsEvents(t *testing.T) {
	a := newTodoApp(t)
	srv := memsync.NewServer()
	link := srv.NewLink()
	opts := syncOpts(link)
	opts.OnBackendIDMismatch = livestore.ResetOnBackendIDMismatch
	s := openSynced(t, a.schema, "", opts)
	mustCommit(t, s, a.created.New(todoCreated{ID: "c1"}))
	waitConverged(t, srv, s)
	oldID := srv.BackendID("shared")
	confirmed := localSynced(t, s, 0)
	link.SetOnline(false)
	mustCommit(t, s, a.created.New(todoCreated{ID: "p1"}), a.completed.New(todoID{ID: "p1"}))
	pending := localSynced(t, s, 1)
	srv.Reset("shared")
	link.SetOnline(true)
	st := waitStatus(t, s, "reset", func(st livestore.SyncStatus) bool { return st.Stopped })
	if st.RecoveryFile != "" || st.RecoveredCount != 3 || !strings.Contains(st.Err, "RecoveredEvents") || todoIDs(t, s) != "" {
		t.Fatalf("status %+v", st)
	}
	rec, err := s.RecoveredEvents()
	if err != nil {
		t.Fatal(err)
	}
	checkRecovery(t, rec, oldID, confirmed, pending)
}

// Two clients come back from a wiped server with pending events: each event
// reaches the new server once, each client's in its order, and both converge.
func TestBackendChangeRepushFromTwoClients(t *testing.T) {
	a := newTodoApp(t)
	srv := memsync.NewServer()
	links := []*memsync.Link{srv.NewLink(), srv.NewLink()}
	stores := make([]*livestore.Store, 2)
	for i := range stores {
		opts := syncOpts(links[i])
		opts.OnBackendIDMismatch = livestore.RepushOnBackendIDMismatch
		stores[i] = openSynced(t, a.schema, t.TempDir(), opts)
	}
	mustCommit(t, stores[0], a.created.New(todoCreated{ID: "old"}))
	waitConverged(t, srv, stores...)
	pending := make([][]identity, 2)
	for i, s := range stores {
		links[i].SetOnline(false)
		for j := 0; j < 3; j++ {
			mustCommit(t, s, a.created.New(todoCreated{ID: fmt.Sprintf("s%d-%d", i, j)}))
		}
		pending[i] = localSynced(t, s, 1)
	}
	srv.Reset("shared")
	for _, l := range links {
		l.SetOnline(true)
	}
	newID := srv.BackendID("shared")
	for _, s := range stores {
		waitStatus(t, s, "repush", func(st livestore.SyncStatus) bool { return st.BackendID == newID && st.PendingCount == 0 })
	}
	waitConverged(t, srv, stores...)
	server := serverIdentities(srv)
	if len(server) != 6 {
		t.Fatalf("server holds %d events: %+v", len(server), server)
	}
	for _, evs := range pending {
		last := -1
		for _, p := range evs {
			at := -1
			for k, e := range server {
				if e == p {
					at = k
				}
			}
			if count(server, p) != 1 || at < last {
				t.Fatalf("%+v: %d times on the server, at %d after %d", p, count(server, p), at, last)
			}
			last = at
		}
	}
}

// A store reopened under the shutdown policy meets the same change again:
// the recovery file is not written twice.
func TestBackendChangeShutdownReopenReusesRecoveryFile(t *testing.T) {
	a := newTodoApp(t)
	srv := memsync.NewServer()
	link := srv.NewLink()
	dir := t.TempDir()
	s := openSynced(t, a.schema, dir, syncOpts(link))
	mustCommit(t, s, a.created.New(todoCreated{ID: "c1"}))
	waitConverged(t, srv, s)
	link.SetOnline(false)
	mustCommit(t, s, a.created.New(todoCreated{ID: "p1"}))
	srv.Reset("shared")
	link.SetOnline(true)
	first := waitStatus(t, s, "stop", func(st livestore.SyncStatus) bool { return st.Stopped }).RecoveryFile
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openSynced(t, a.schema, dir, syncOpts(link))
	again := waitStatus(t, s, "stop", func(st livestore.SyncStatus) bool { return st.Stopped }).RecoveryFile
	files, err := livestore.RecoveryFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if first == "" || again != first || len(files) != 1 {
		t.Fatalf("first %q, again %q, files %v", first, again, files)
	}
	// A new pending event makes a new file.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openSynced(t, a.schema, dir, nil)
	mustCommit(t, s, a.created.New(todoCreated{ID: "p2"}))
	s.Close()
	s = openSynced(t, a.schema, dir, syncOpts(link))
	third := waitStatus(t, s, "stop", func(st livestore.SyncStatus) bool { return st.Stopped }).RecoveryFile
	if files, _ := livestore.RecoveryFiles(dir); third == first || len(files) != 2 || files[1] != third {
		t.Fatalf("third %q, files %v", third, files)
	}
	rec, err := livestore.ReadRecoveryFile(third)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec) != 3 || !rec[2].Pending() || rec[0].Pending() {
		t.Fatalf("%+v", rec)
	}
}

// After the reset policy emptied a store, the application reopens it and
// commits the pending events of the recovery file again: they reach the new
// server.
func TestBackendChangeResetThenRecommitPending(t *testing.T) {
	a := newTodoApp(t)
	srv := memsync.NewServer()
	link := srv.NewLink()
	opts := syncOpts(link)
	opts.OnBackendIDMismatch = livestore.ResetOnBackendIDMismatch
	dir := t.TempDir()
	s := openSynced(t, a.schema, dir, opts)
	mustCommit(t, s, a.created.New(todoCreated{ID: "c1"}))
	waitConverged(t, srv, s)
	link.SetOnline(false)
	mustCommit(t, s, a.created.New(todoCreated{ID: "p1", Text: "one"}), a.completed.New(todoID{ID: "p1"}))
	srv.Reset("shared")
	link.SetOnline(true)
	st := waitStatus(t, s, "reset", func(st livestore.SyncStatus) bool { return st.Stopped })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rec, err := livestore.ReadRecoveryFile(st.RecoveryFile)
	if err != nil {
		t.Fatal(err)
	}
	s = openSynced(t, a.schema, dir, opts)
	var again []livestore.Event
	for _, e := range rec {
		if e.Pending() {
			again = append(again, e.Event())
		}
	}
	mustCommit(t, s, again...)
	waitConverged(t, srv, s)
	var got []string
	for _, e := range srv.Events("shared") {
		got = append(got, e.Name+string(e.Args))
	}
	if want := `v1.TodoCreated{"id":"p1","text":"one"} v1.TodoCompleted{"id":"p1"}`; strings.Join(got, " ") != want {
		t.Fatalf("server holds %v, want %s", got, want)
	}
}

// The same over the real server and WebSockets: the server's database is
// replaced by an empty one while a client holds pending events, and the
// repush policy brings them to the new server after another client's event.
func TestBackendChangeRepushOverWebSocket(t *testing.T) {
	a := newTodoApp(t)
	open := func(dir, url string) *livestore.Store {
		t.Helper()
		var sync *livestore.SyncOptions
		if url != "" {
			sync = &livestore.SyncOptions{Backend: syncclient.WebSocketBackend(url, syncclient.Options{}),
				OnBackendIDMismatch: livestore.RepushOnBackendIDMismatch, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
		}
		return openSynced(t, a.schema, dir, sync)
	}
	oldURL, _ := startSyncServer(t)
	dir := t.TempDir()
	s := open(dir, oldURL)
	mustCommit(t, s, a.created.New(todoCreated{ID: "c1"}))
	st := waitStatus(t, s, "sync", func(st livestore.SyncStatus) bool { return st.IsSynced && st.UpstreamHead == 1 })
	oldID := st.BackendID
	confirmed := localSynced(t, s, 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Offline work.
	s = open(dir, "")
	mustCommit(t, s, a.created.New(todoCreated{ID: "p1"}), a.created.New(todoCreated{ID: "p2"}))
	mustCommit(t, s, a.completed.New(todoID{ID: "p2"}))
	pending := localSynced(t, s, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	newURL, storage := startSyncServer(t)
	other := open(t.TempDir(), newURL)
	mustCommit(t, other, a.created.New(todoCreated{ID: "b1"}))
	waitStatus(t, other, "sync", func(st livestore.SyncStatus) bool { return st.IsSynced && st.UpstreamHead == 1 })

	s = open(dir, newURL)
	st = waitStatus(t, s, "repush", func(st livestore.SyncStatus) bool {
		return st.BackendID != oldID && st.BackendID != "" && st.IsSynced && st.UpstreamHead == 4
	})
	var server []identity
	for _, e := range serverLog(t, storage, "shared") {
		server = append(server, idOf(e.Name, e.Args, e.ClientID, e.SessionID))
	}
	if want := append(server[:1:1], pending...); !reflect.DeepEqual(server, want) {
		t.Fatalf("server holds %+v, want b1 then %+v", server, pending)
	}
	rec, err := livestore.ReadRecoveryFile(st.RecoveryFile)
	if err != nil {
		t.Fatal(err)
	}
	checkRecovery(t, rec, oldID, confirmed, pending)
	waitStatus(t, other, "catch up", func(st livestore.SyncStatus) bool { return st.UpstreamHead == 4 })
	if mine, theirs := todoIDs(t, s), todoIDs(t, other); mine != "b1 p1 p2" || theirs != mine {
		t.Fatalf("todos %q and %q", mine, theirs)
	}
}
