package livestore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
)

func TestQueryReadOnly(t *testing.T) {
	a := newTodoApp(t)
	for _, dir := range []string{"", t.TempDir()} {
		s := openStore(t, a.schema, dir)
		ctx := context.Background()
		if err := s.Commit(ctx, a.created.New(todoCreated{ID: "1", Text: "one"}), a.created.New(todoCreated{ID: "2", Text: "two"})); err != nil {
			t.Fatal(err)
		}
		var rows [][]any
		cols, err := s.QueryReadOnly(ctx, "SELECT id, completed, text FROM todos WHERE id > ? ORDER BY id", []any{"0"}, func(row []any) error {
			rows = append(rows, row)
			return nil
		})
		if err != nil || strings.Join(cols, ",") != "id,completed,text" || len(rows) != 2 || rows[1][0] != "2" || rows[1][1] != int64(0) {
			t.Fatalf("dir %q: %v %v %v", dir, cols, rows, err)
		}
		for _, write := range []string{"DELETE FROM todos", "INSERT INTO todos (id) VALUES ('x')", "VACUUM", "PRAGMA user_version = 3"} {
			if _, err := s.QueryReadOnly(ctx, write, nil, func([]any) error { return nil }); err == nil || !strings.Contains(err.Error(), "allowed") {
				t.Errorf("dir %q: %s: %v", dir, write, err)
			}
		}
		tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, err = s.QueryReadOnly(tctx, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n) SELECT count(*) FROM n", nil, func([]any) error { return nil })
		cancel()
		if err == nil {
			t.Fatalf("dir %q: an endless query returned", dir)
		}
		// The store goes on after an interrupted query.
		if err := s.Commit(ctx, a.created.New(todoCreated{ID: "3"})); err != nil {
			t.Fatal(err)
		}
		if got, _ := livestore.Get(ctx, s, livestore.QueryDB[todo](a.todos.Select())); len(got) != 3 {
			t.Fatalf("dir %q: %d todos", dir, len(got))
		}
	}
}

func TestEventLogPages(t *testing.T) {
	a := newTodoApp(t)
	s := openStore(t, a.schema, t.TempDir())
	ctx := context.Background()
	for i := range 12 {
		evs := []livestore.Event{a.created.New(todoCreated{ID: fmt.Sprint(i)})}
		if i%4 == 3 {
			evs = append(evs, a.renamed.New(todoCreated{ID: fmt.Sprint(i), Text: "local"}))
		}
		if err := s.Commit(ctx, evs...); err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(evs []livestore.LoggedEvent) string {
		var out []string
		for _, e := range evs {
			out = append(out, e.SeqNum.String())
		}
		return strings.Join(out, " ")
	}
	page, more, err := s.EventLog(ctx, livestore.EventLogQuery{Limit: 5})
	if err != nil || !more || seqs(page) != "e1 e2 e3 e4 e4.1" || page[0].Synced {
		t.Fatalf("first page %s more=%v %v", seqs(page), more, err)
	}
	page, more, _ = s.EventLog(ctx, livestore.EventLogQuery{After: page[4].SeqNum, Limit: 5})
	if !more || seqs(page) != "e5 e6 e7 e8 e8.1" {
		t.Fatalf("second page %s more=%v", seqs(page), more)
	}
	page, more, _ = s.EventLog(ctx, livestore.EventLogQuery{After: page[4].SeqNum, Limit: 5})
	if more || seqs(page) != "e9 e10 e11 e12 e12.1" {
		t.Fatalf("last page %s more=%v", seqs(page), more)
	}
	from, to := eventlog.SeqNum{Global: 4, Client: 1}, eventlog.SeqNum{Global: 8, Client: 1}
	page, _, _ = s.EventLog(ctx, livestore.EventLogQuery{From: &from, To: &to, Name: "v1.TodoRenamedLocally"})
	if seqs(page) != "e4.1 e8.1" || !page[0].SeqNum.IsClientOnly() {
		t.Fatalf("by name in range: %s", seqs(page))
	}
	page, _, _ = s.EventLog(ctx, livestore.EventLogQuery{Status: livestore.PendingEvents, Limit: 100})
	if len(page) != 12 {
		t.Fatalf("pending: %s", seqs(page))
	}
	page, _, _ = s.EventLog(ctx, livestore.EventLogQuery{Status: livestore.SyncedEvents})
	if len(page) != 0 {
		t.Fatalf("synced without a server: %s", seqs(page))
	}
}

func TestImportEvents(t *testing.T) {
	a := newTodoApp(t)
	ctx := context.Background()
	lines := []livestore.RecoveryEvent{
		{StoreID: "x", BackendID: "b1", SeqNum: 1, ParentSeqNum: 0, Name: "v1.TodoCreated", Args: []byte(`{"id":"1","text":"one"}`), ClientID: "c", SessionID: "s", CreatedAt: "2026-01-01T00:00:00Z"},
		{StoreID: "x", BackendID: "b1", SeqNum: 2, ParentSeqNum: 1, Name: "v1.TodoCompleted", Args: []byte(`{"id":"1"}`), ClientID: "c", SessionID: "s"},
		{StoreID: "x", SeqNum: 3, ParentSeqNum: 2, Name: "v1.TodoCreated", Args: []byte(`{"id":"2","text":"two"}`), ClientID: "d", SessionID: "t"},
	}
	s := openStore(t, a.schema, t.TempDir())
	all := livestore.QueryDB[todo](a.todos.Select())
	got := make(chan []todo, 4)
	unsubscribe, err := livestore.Subscribe(ctx, s, all, func(rows []todo) { got <- rows })
	if err != nil {
		t.Fatal(err)
	}
	defer unsubscribe()
	<-got
	// A line that does not follow the one before changes nothing.
	bad := append([]livestore.RecoveryEvent{}, lines...)
	bad[2].ParentSeqNum = 1
	if _, err := s.ImportEvents(ctx, bad); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("bad import: %v", err)
	}
	if n, err := s.ImportEvents(ctx, lines); err != nil || n != 3 {
		t.Fatalf("import: %d %v", n, err)
	}
	rows := <-got
	if len(rows) != 2 || !rows[0].Completed || rows[1].Text != "two" {
		t.Fatalf("state after import: %+v", rows)
	}
	st, _ := s.SyncStatus(ctx)
	if st.UpstreamHead != 2 || st.BackendID != "b1" || st.PendingCount != 1 || st.LocalHead.String() != "e3" {
		t.Fatalf("status after import: %+v", st)
	}
	page, _, _ := s.EventLog(ctx, livestore.EventLogQuery{})
	if len(page) != 3 || !page[0].Synced || page[2].Synced || page[2].ClientID != "d" || !strings.Contains(string(page[0].SyncMetadata), `"createdAt":"2026-01-01T00:00:00Z"`) {
		t.Fatalf("log after import: %+v", page)
	}
	if _, err := s.ImportEvents(ctx, lines); !errors.Is(err, livestore.ErrStoreNotEmpty) {
		t.Fatalf("second import: %v", err)
	}
	// A commit after the import continues the log.
	if err := s.Commit(ctx, a.created.New(todoCreated{ID: "3"})); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.Head(ctx); h.String() != "e4" {
		t.Fatalf("head %s", h)
	}
}

func TestObserve(t *testing.T) {
	a := newTodoApp(t)
	s := openStore(t, a.schema, t.TempDir())
	ctx := context.Background()
	changes := make(chan livestore.Change, 16)
	stop, err := s.Observe(func(c livestore.Change) { changes <- c })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, a.created.New(todoCreated{ID: "1"})); err != nil {
		t.Fatal(err)
	}
	if c := <-changes; !c.Wrote || strings.Join(c.Tables, ",") != "todos" || len(c.Reran) != 0 {
		t.Fatalf("change = %+v", c)
	}
	q := livestore.QueryDB[todo](a.todos.Select(), "all")
	unsubscribe, err := livestore.Subscribe(ctx, s, q, func([]todo) {})
	if err != nil {
		t.Fatal(err)
	}
	defer unsubscribe()
	if err := s.Commit(ctx, a.ui.Set("main", uiState{Filter: "done"})); err != nil {
		t.Fatal(err)
	}
	if c := <-changes; !c.Wrote || strings.Join(c.Tables, ",") != "uiState" {
		t.Fatalf("client document change = %+v", c)
	}
	if err := s.Commit(ctx, a.created.New(todoCreated{ID: "2"})); err != nil {
		t.Fatal(err)
	}
	var reran []int64
	for len(reran) == 0 {
		reran = (<-changes).Reran
	}
	nodes := s.ReactiveNodes()
	if len(nodes) != 1 || len(reran) != 1 || reran[0] != nodes[0].ID || nodes[0].RunCount != 2 || nodes[0].MeanDuration <= 0 {
		t.Fatalf("reran %v, nodes %+v", reran, nodes)
	}
	// The pass after the client document's write re-ran nothing and is not
	// recorded: its table counts with the next one's.
	if last := s.LastRefresh(); strings.Join(last.Tables, ",") != "todos,uiState" || len(last.Reran) != 1 || last.Pass == 0 {
		t.Fatalf("last refresh = %+v", last)
	}
	stop()
	if err := s.Commit(ctx, a.created.New(todoCreated{ID: "3"})); err != nil {
		t.Fatal(err)
	}
	// The refresh of the subscribed query has run once the value is read.
	if _, err := livestore.Get(ctx, s, q); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-changes:
		t.Fatalf("change after stop: %+v", c)
	default:
	}
	s.Close()
	if _, err := s.Observe(func(livestore.Change) {}); !errors.Is(err, livestore.ErrStoreClosed) {
		t.Fatalf("observe a closed store: %v", err)
	}
}
