package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/pgstore/pgtest"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
	"github.com/livestore-go/livestore/syncserver/storagetest"
)

// runCLI runs the command line and returns its exit status and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// seedStorage writes two stores into the SQLite storage in dataDir: "alpha"
// with 2,500 events in batches of 100 stored a millisecond apart, "beta"
// with 3.
func seedStorage(t *testing.T, dataDir string) {
	t.Helper()
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(filepath.Join(dataDir, "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for i := int64(0); i < 2500; i += 100 {
		if err := st.Append(ctx, "alpha", storagetest.Chain(i, 100, fmt.Sprint("c", i%3)), at.Add(time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Append(ctx, "beta", storagetest.Chain(0, 3, "b"), at); err != nil {
		t.Fatal(err)
	}
}

func openSQLite(t *testing.T, dataDir string) *sqlitestore.Store {
	t.Helper()
	st, err := sqlitestore.OpenReadOnly(filepath.Join(dataDir, "sync.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// sameStores checks that b holds exactly a's stores, backend ids, events
// and storage times.
func sameStores(t *testing.T, a, b storageReader) {
	t.Helper()
	ctx := context.Background()
	sa, err := a.Stores(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Stores(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sa) != len(sb) {
		t.Fatalf("%d stores, want %d", len(sb), len(sa))
	}
	for i := range sa {
		if sa[i].StoreID != sb[i].StoreID || sa[i].BackendID != sb[i].BackendID || sa[i].Head != sb[i].Head {
			t.Fatalf("store %+v, want %+v", sb[i], sa[i])
		}
		ea, err := a.Read(ctx, sa[i].StoreID, 0, sa[i].Head, 100000)
		if err != nil {
			t.Fatal(err)
		}
		eb, err := b.Read(ctx, sb[i].StoreID, 0, sb[i].Head, 100000)
		if err != nil {
			t.Fatal(err)
		}
		if len(ea) != len(eb) {
			t.Fatalf("%s: %d events, want %d", sa[i].StoreID, len(eb), len(ea))
		}
		for j := range ea {
			ja, _ := json.Marshal(ea[j].Event)
			jb, _ := json.Marshal(eb[j].Event)
			if !bytes.Equal(ja, jb) || !ea[j].CreatedAt.Equal(eb[j].CreatedAt) {
				t.Fatalf("%s event %d: %s at %v, want %s at %v", sa[i].StoreID, j, jb, eb[j].CreatedAt, ja, ea[j].CreatedAt)
			}
		}
	}
}

func TestExportImportSQLiteToPostgres(t *testing.T) {
	src := filepath.Join(t.TempDir(), "data")
	seedStorage(t, src)
	file := filepath.Join(t.TempDir(), "events.jsonl")
	code, _, stderr := runCLI(t, "export", "--data", src, "--out", file)
	if code != 0 || !strings.Contains(stderr, "exported 2503 events of 2 stores") {
		t.Fatalf("export: exit %d, stderr %s", code, stderr)
	}
	schema := pgtest.Schema(t)
	url := pgtest.URL(t)
	code, stdout, stderr := runCLI(t, "import", "--postgres", url, "--pg-schema", schema, "--batch", "300", file)
	if code != 0 {
		t.Fatalf("import: exit %d, stderr %s", code, stderr)
	}
	if !strings.Contains(stdout, "alpha: imported 2500 events, skipped 0 already present, head e2500") ||
		!strings.Contains(stdout, "beta: imported 3 events") {
		t.Fatalf("import said:\n%s", stdout)
	}
	pg := pgtest.Open(t, schema)
	sameStores(t, openSQLite(t, src), pg)

	// Running it again skips everything and changes nothing.
	code, stdout, stderr = runCLI(t, "import", "--postgres", url, "--pg-schema", schema, file)
	if code != 0 || !strings.Contains(stdout, "alpha: imported 0 events, skipped 2500 already present, head e2500") {
		t.Fatalf("second import: exit %d\n%s%s", code, stdout, stderr)
	}
	sameStores(t, openSQLite(t, src), pg)
}

func TestExportImportResumesAfterBadLine(t *testing.T) {
	src := filepath.Join(t.TempDir(), "data")
	seedStorage(t, src)
	code, export, stderr := runCLI(t, "export", "--data", src, "beta")
	if code != 0 {
		t.Fatalf("export: exit %d, %s", code, stderr)
	}
	lines := strings.SplitAfter(strings.TrimSpace(export), "\n")
	if len(lines) != 3 {
		t.Fatalf("export of beta: %q", export)
	}
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dst := filepath.Join(t.TempDir(), "dst")
	// Line 3 is cut in half: lines 1 and 2 are imported, nothing after.
	broken := write("broken.jsonl", lines[0]+lines[1]+lines[2][:20]+"\n")
	code, stdout, stderr := runCLI(t, "import", "--data", dst, broken)
	if code != 1 || !strings.Contains(stderr, "line 3: not an exported event") || !strings.Contains(stdout, "beta: imported 2 events") {
		t.Fatalf("broken import: exit %d\n%s%s", code, stdout, stderr)
	}
	// The whole file completes it.
	code, stdout, stderr = runCLI(t, "import", "--data", dst, write("whole.jsonl", export))
	if code != 0 || !strings.Contains(stdout, "beta: imported 1 events, skipped 2 already present, head e3") {
		t.Fatalf("resumed import: exit %d\n%s%s", code, stdout, stderr)
	}
	a, b := openSQLite(t, src), openSQLite(t, dst)
	ctx := context.Background()
	ea, _ := a.Read(ctx, "beta", 0, 3, 10)
	eb, _ := b.Read(ctx, "beta", 0, 3, 10)
	if fmt.Sprint(ea) != fmt.Sprint(eb) {
		t.Fatalf("beta differs:\n%v\n%v", eb, ea)
	}
	idA, _ := a.BackendID(ctx, "beta")
	idB, _ := b.BackendID(ctx, "beta")
	if idA != idB {
		t.Fatalf("backend id %s, want %s", idB, idA)
	}

	// A gap in the chain, a store under another backend id, and a renamed
	// mix of stores are refused with the line that is wrong.
	var gap bytes.Buffer
	for _, l := range []string{lines[0], lines[2]} {
		gap.WriteString(l)
	}
	gapDst := filepath.Join(t.TempDir(), "gap")
	code, _, stderr = runCLI(t, "import", "--data", gapDst, write("gap.jsonl", gap.String()))
	if code != 1 || !strings.Contains(stderr, "line 2: event e3 follows e2, but store \"beta\" ends at e1") {
		t.Fatalf("gap: exit %d, %s", code, stderr)
	}
	otherDir := filepath.Join(t.TempDir(), "other")
	if err := os.MkdirAll(otherDir, 0o755); err != nil {
		t.Fatal(err)
	}
	other, err := sqlitestore.Open(filepath.Join(otherDir, "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.CreateStore(ctx, "beta", syncserver.NewBackendID()); err != nil {
		t.Fatal(err)
	}
	other.Close()
	code, _, stderr = runCLI(t, "import", "--data", otherDir, write("again.jsonl", export))
	if code != 1 || !strings.Contains(stderr, "exists with backend id") {
		t.Fatalf("backend id conflict: exit %d, %s", code, stderr)
	}
	_, all, _ := runCLI(t, "export", "--data", src)
	code, _, stderr = runCLI(t, "import", "--data", filepath.Join(t.TempDir(), "x"), "--store", "renamed", write("all.jsonl", all))
	if code != 1 || !strings.Contains(stderr, "--store renames only a single store") {
		t.Fatalf("rename of two stores: exit %d, %s", code, stderr)
	}
}

func TestInspectStorage(t *testing.T) {
	src := filepath.Join(t.TempDir(), "data")
	seedStorage(t, src)
	code, stdout, stderr := runCLI(t, "inspect", "--data", src)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "STORE") || strings.Fields(lines[1])[0] != "alpha" || strings.Fields(lines[1])[1] != "2500" ||
		strings.Fields(lines[2])[0] != "beta" || strings.Fields(lines[2])[1] != "3" {
		t.Fatalf("inspect:\n%s", stdout)
	}
	code, stdout, stderr = runCLI(t, "inspect", "--data", src, "--json", "alpha")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var sum storeSummary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Events != 2500 || sum.Head != 2500 || len(sum.Names) != 1 || sum.Names[0].Count != 2500 || sum.Names[0].Clients != 3 ||
		!sum.First.Equal(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)) || !sum.Last.Equal(time.Date(2026, 11, 1, 12, 0, 2, 400e6, time.UTC)) {
		t.Fatalf("summary %+v", sum)
	}
	if code, _, stderr := runCLI(t, "inspect", "--data", src, "gamma"); code != 1 || !strings.Contains(stderr, `no store "gamma"`) {
		t.Fatalf("unknown store: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, "inspect", "--data", filepath.Join(t.TempDir(), "none")); code != 1 || !strings.Contains(stderr, "no sync storage at") {
		t.Fatalf("missing storage: exit %d, %s", code, stderr)
	}
}

type todoCreated struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

func TestInspectAndQueryClientStore(t *testing.T) {
	app := newTodoApp(t)
	schema, created := app.schema, app.created
	dir := t.TempDir()
	ctx := context.Background()
	store, err := livestore.Open(ctx, schema, livestore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i := range 3 {
		if err := store.Commit(ctx, created.New(todoCreated{ID: fmt.Sprint("t", i), Text: "line\twith tab"})); err != nil {
			t.Fatal(err)
		}
	}
	// The store stays open in this process: the commands read beside it.
	code, stdout, stderr := runCLI(t, "inspect", "--dir", dir)
	if code != 0 || !strings.Contains(stdout, "events      3 (0 client-only)") || !strings.Contains(stdout, "pending     3") ||
		!strings.Contains(stdout, "(never synced)") || !strings.Contains(stdout, "todos  3") {
		t.Fatalf("inspect --dir: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, "query", "--dir", dir, "SELECT id, text, NULL AS n FROM todos ORDER BY id DESC")
	want := "id  text            n\nt2  line\\twith tab  NULL\nt1  line\\twith tab  NULL\nt0  line\\twith tab  NULL\n"
	if code != 0 || stdout != want {
		t.Fatalf("query: exit %d\n%q\nwant %q\n%s", code, stdout, want, stderr)
	}
	code, stdout, stderr = runCLI(t, "query", "--dir", dir, "--json", "--limit", "1", "SELECT name, seqNumGlobal FROM eventlog ORDER BY seqNumGlobal")
	if code != 0 || strings.Join(strings.Fields(stdout), "") != `{"columns":["name","seqNumGlobal"],"rows":[["v1.TodoCreated",1]],"truncated":true,"truncatedBy":"rows"}` {
		t.Fatalf("query --json: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr := runCLI(t, "query", "--dir", dir, "DELETE FROM todos"); code != 1 || !strings.Contains(stderr, "only reading statements") {
		t.Fatalf("write: exit %d, %s", code, stderr)
	}
	if code, _, _ := runCLI(t, "query", "SELECT 1"); code != 2 {
		t.Fatalf("no --dir: exit %d", code)
	}
	rows, err := livestore.Query[todoCreated](ctx, store, app.todos.Select())
	if err != nil || len(rows) != 3 {
		t.Fatalf("store after refused write: %v, %v", rows, err)
	}
}

func TestDevtoolsCommand(t *testing.T) {
	src := filepath.Join(t.TempDir(), "data")
	seedStorage(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"devtools", "--data", src, "--addr", "127.0.0.1:0"}, pw, &stderr)
		pw.Close()
	}()
	first, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("devtools printed nothing: %v; exit %d, stderr %s", err, <-code, stderr.String())
	}
	go io.Copy(io.Discard, pr)
	base := strings.TrimSpace(strings.TrimPrefix(first, "livestore devtools on "))
	// The same path as under `livestore serve`; the root leads there.
	if !strings.HasSuffix(base, "/_devtools/") {
		t.Fatalf("devtools announced %q, want the page under /_devtools/", base)
	}
	root := strings.TrimSuffix(base, "_devtools/")
	for _, p := range []string{"", "_devtools"} {
		resp, err := http.Get(root + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "<html") || resp.Request.URL.Path != "/_devtools/" {
			t.Fatalf("GET /%s: %s at %s", p, resp.Status, resp.Request.URL)
		}
	}
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %s", path, resp.Status, b)
		}
		return string(b)
	}
	if page := get(""); !strings.Contains(page, "<html") {
		t.Fatalf("page: %.200s", page)
	}
	var stores []struct {
		StoreID string `json:"storeId"`
		Head    int64  `json:"head"`
	}
	if err := json.Unmarshal([]byte(get("api/stores")), &stores); err != nil {
		t.Fatal(err)
	}
	if len(stores) != 2 || stores[0].StoreID != "alpha" || stores[0].Head != 2500 {
		t.Fatalf("stores %+v", stores)
	}
	if evs := get("api/stores/beta/events?after=1&limit=5"); !strings.Contains(evs, `"seqNum":2`) || strings.Contains(evs, `"seqNum":1,`) {
		t.Fatalf("events %s", evs)
	}
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("exit %d: %s", c, stderr.String())
	}
}
