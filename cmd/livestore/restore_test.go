package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/memsync"
)

// todoApp is the todo schema of this package's tests.
type todoApp struct {
	schema  *livestore.Schema
	todos   *livestore.Table
	created *livestore.EventDef[todoCreated]
}

func newTodoApp(t *testing.T) todoApp {
	t.Helper()
	todos := livestore.NewTable("todos", livestore.Text("id").PrimaryKey(), livestore.Text("text"))
	created := livestore.Synced[todoCreated]("v1.TodoCreated")
	schema, err := livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{todos},
		Events: []livestore.Definition{created},
		Materializers: []livestore.Materializer{
			livestore.Materialize(created, func(_ *livestore.MaterializeContext, e todoCreated) ([]livestore.Statement, error) {
				return []livestore.Statement{todos.Insert(livestore.Values{"id": e.ID, "text": e.Text})}, nil
			}),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return todoApp{schema: schema, todos: todos, created: created}
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func todoIDs(t *testing.T, s *livestore.Store) string {
	t.Helper()
	rows, err := livestore.Query[todoCreated](context.Background(), s, livestore.SQL("SELECT * FROM todos ORDER BY id"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.ID)
	}
	return strings.Join(ids, " ")
}

// A store holds events no server has when its server's data is wiped; the
// reset policy empties it and saves them to a recovery file. `inspect --dir`
// lists the file, `import --dir` puts its pending events back (a second run
// adds nothing), and the reopened store shows them and pushes them to the
// new server.
func TestRestoreRecoveryFileIntoStoreDir(t *testing.T) {
	app := newTodoApp(t)
	ctx := context.Background()
	srv := memsync.NewServer()
	link := srv.NewLink()
	syncOpts := func() *livestore.SyncOptions {
		return &livestore.SyncOptions{Backend: link, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
			OnBackendIDMismatch: livestore.ResetOnBackendIDMismatch}
	}
	dir := t.TempDir()
	open := func() *livestore.Store {
		s, err := livestore.Open(ctx, app.schema, livestore.Options{Dir: dir, StoreID: "shared", Sync: syncOpts()})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	if err := s.Commit(ctx, app.created.New(todoCreated{ID: "c1"})); err != nil {
		t.Fatal(err)
	}
	// Confirmed on the client too, not only stored on the server: the
	// recovery file then holds c1 as confirmed and p1, p2 as pending.
	waitFor(t, "c1 confirmed", func() bool {
		st, err := s.SyncStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(srv.Events("shared")) == 1 && st.UpstreamHead == 1 && st.PendingCount == 0
	})
	link.SetOnline(false)
	for _, id := range []string{"p1", "p2"} {
		if err := s.Commit(ctx, app.created.New(todoCreated{ID: id, Text: "pending " + id})); err != nil {
			t.Fatal(err)
		}
	}
	srv.Reset("shared")
	link.SetOnline(true)
	var file string
	waitFor(t, "the reset", func() bool {
		st, err := s.SyncStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		file = st.RecoveryFile
		return st.Stopped
	})
	if file == "" {
		t.Fatal("no recovery file")
	}

	// While the store is open its directory is locked.
	code, _, stderr := runCLI(t, "import", "--dir", dir, file)
	if code != 1 || !strings.Contains(stderr, "is locked by") || !strings.Contains(stderr, "stop the program") {
		t.Fatalf("import into an open store: exit %d, %s", code, stderr)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCLI(t, "inspect", "--dir", dir)
	if code != 0 || !strings.Contains(stdout, "RECOVERY FILE") || !regexpMatch(stdout, filepath.Base(file)+`\s+3\s+2\n`) {
		t.Fatalf("inspect --dir: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, "inspect", "--dir", dir, "--json")
	if code != 0 || !strings.Contains(stdout, `"events": 3`) || !strings.Contains(stdout, `"pending": 2`) {
		t.Fatalf("inspect --dir --json: exit %d\n%s%s", code, stdout, stderr)
	}

	code, stdout, stderr = runCLI(t, "import", "--dir", dir, file)
	if code != 0 || !strings.Contains(stdout, "restored 2 pending events into "+dir+" as e1..e2 (0 already in its eventlog, 1 confirmed") {
		t.Fatalf("import --dir: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, "import", file, "--dir", dir)
	if code != 0 || !strings.Contains(stdout, "restored 0 events into "+dir+" (2 already in its eventlog") {
		t.Fatalf("import --dir again: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, _ := runCLI(t, "inspect", "--dir", dir); !strings.Contains(stdout, "pending     2") || !strings.Contains(stdout, "state       stale") {
		t.Fatalf("inspect after restore: exit %d\n%s", code, stdout)
	}

	s = open()
	defer s.Close()
	if got := todoIDs(t, s); got != "p1 p2" {
		t.Fatalf("todos after restore: %q, want p1 p2", got)
	}
	waitFor(t, "the restored events on the new server", func() bool { return len(srv.Events("shared")) == 2 })
	var got []string
	for _, e := range srv.Events("shared") {
		got = append(got, e.Name+string(e.Args))
	}
	if want := `v1.TodoCreated{"id":"p1","text":"pending p1"} v1.TodoCreated{"id":"p2","text":"pending p2"}`; strings.Join(got, " ") != want {
		t.Fatalf("server holds %v, want %s", got, want)
	}
	if code, stdout, _ := runCLI(t, "inspect", "--dir", dir); strings.Contains(stdout, "stale") || !strings.Contains(stdout, "todos  2") {
		t.Fatalf("inspect after reopen: exit %d\n%s", code, stdout)
	}
}

func TestRestoreRefusesNonStore(t *testing.T) {
	code, _, stderr := runCLI(t, "import", "--dir", t.TempDir(), filepath.Join(t.TempDir(), "none.jsonl"))
	if code != 1 || strings.Count(stderr, "livestore:") > 1 {
		t.Fatalf("missing file: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, "import", "--dir", t.TempDir()); code != 2 || !strings.Contains(stderr, "needs the recovery FILE") {
		t.Fatalf("no file: exit %d, %s", code, stderr)
	}
	file := filepath.Join(t.TempDir(), "recovery.jsonl")
	line := `{"storeId":"shared","seqNum":1,"parentSeqNum":0,"name":"v1.TodoCreated","args":{"id":"x"},"clientId":"c","sessionId":"s"}` + "\n"
	if err := os.WriteFile(file, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, "import", "--dir", t.TempDir(), file); code != 1 || !strings.Contains(stderr, "not a store directory") {
		t.Fatalf("not a store: exit %d, %s", code, stderr)
	}
}

func regexpMatch(s, pattern string) bool { return regexp.MustCompile(pattern).MatchString(s) }
