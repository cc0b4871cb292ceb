package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livestore-go/livestore"
)

// newClientStoreDir writes a client store with three todos and closes it.
func newClientStoreDir(t *testing.T) string {
	t.Helper()
	app := newTodoApp(t)
	dir := t.TempDir()
	ctx := context.Background()
	s, err := livestore.Open(ctx, app.schema, livestore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Commit(ctx, app.created.New(todoCreated{ID: fmt.Sprint("t", i)})); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Flags work after the positional arguments as before them, for every
// subcommand that takes arguments; "--" ends the flags.
func TestFlagsAfterArguments(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	seedStorage(t, data)
	dir := newClientStoreDir(t)

	code, before, stderr := runCLI(t, "inspect", "--data", data, "--json", "beta")
	if code != 0 || !strings.Contains(before, `"storeId": "beta"`) {
		t.Fatalf("inspect --json beta: exit %d %s%s", code, before, stderr)
	}
	code, after, stderr := runCLI(t, "inspect", "beta", "--data", data, "--json")
	if code != 0 || after != before {
		t.Fatalf("inspect beta --json: exit %d\n%s%s\nwant\n%s", code, after, stderr, before)
	}

	code, stdout, stderr := runCLI(t, "query", "SELECT count(*) AS n FROM todos", "--dir", dir, "--json")
	if code != 0 || strings.Join(strings.Fields(stdout), "") != `{"columns":["n"],"rows":[[3]]}` {
		t.Fatalf("query SQL --dir --json: exit %d %s%s", code, stdout, stderr)
	}

	out := filepath.Join(t.TempDir(), "beta.jsonl")
	code, _, stderr = runCLI(t, "export", "beta", "--data", data, "--out", out)
	if b, err := os.ReadFile(out); code != 0 || err != nil || strings.Count(string(b), "\n") != 3 {
		t.Fatalf("export beta --out: exit %d %s (%v)", code, stderr, err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	code, stdout, stderr = runCLI(t, "import", out, "--data", dst, "--store", "gamma")
	if code != 0 || !strings.Contains(stdout, "gamma: imported 3 events") {
		t.Fatalf("import FILE --data --store: exit %d %s%s", code, stdout, stderr)
	}

	// After "--" a flag-like word is an argument.
	code, _, stderr = runCLI(t, "inspect", "--data", data, "--", "--json")
	if code != 1 || !strings.Contains(stderr, `no store "--json"`) {
		t.Fatalf("inspect -- --json: exit %d %s", code, stderr)
	}
	// An unknown flag after an argument is still a usage error.
	if code, _, stderr := runCLI(t, "inspect", "beta", "--data", data, "--bogus"); code != 2 || !strings.Contains(stderr, "bogus") {
		t.Fatalf("inspect beta --bogus: exit %d %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, "serve", "extra", "--data", data); code != 2 || !strings.Contains(stderr, `unexpected argument "extra"`) {
		t.Fatalf("serve extra: exit %d %s", code, stderr)
	}
}

// doubled returns a prefix said twice in a row in msg, as in "sqlite:
// sqlite:" or "inspect: inspect:", or "".
func doubled(msg string) string {
	words := strings.Fields(msg)
	for i, w := range words {
		if !strings.HasSuffix(w, ":") {
			continue
		}
		for j := i + 1; j < len(words) && j <= i+2; j++ {
			if words[j] == w {
				return strings.Join(words[i:j+1], " ")
			}
		}
	}
	return ""
}

// Error messages say each prefix once and quote a statement once.
func TestErrorsSayThingsOnce(t *testing.T) {
	dir := newClientStoreDir(t)
	notDB := t.TempDir()
	if err := os.WriteFile(filepath.Join(notDB, livestore.DBFileName), []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"query", "--dir", dir, "SELECT nope FROM todos"}, "no such column: nope"},
		{[]string{"query", "--dir", dir, "SELEC 1"}, "syntax error"},
		{[]string{"query", "--dir", dir, "DELETE FROM todos"}, "only reading statements"},
		{[]string{"query", "--dir", notDB, "SELECT 1"}, "is not a store directory: its store.db is not a SQLite database"},
		{[]string{"inspect", "--dir", notDB}, "is not a store directory"},
		{[]string{"inspect", "--dir", t.TempDir()}, "is not a store directory (no store.db)"},
	} {
		code, _, stderr := runCLI(t, tt.args...)
		if code != 1 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, %q; want it to contain %q", tt.args, code, stderr, tt.want)
		}
		if m := doubled(stderr); m != "" {
			t.Errorf("%v: %q says %q", tt.args, stderr, m)
		}
		if q := tt.args[len(tt.args)-1]; strings.HasPrefix(tt.args[0], "query") && strings.Count(stderr, q) > 1 {
			t.Errorf("%v: the statement is quoted %d times: %q", tt.args, strings.Count(stderr, q), stderr)
		}
	}
}

// An empty input imports nothing and says so.
func TestImportEmptyInput(t *testing.T) {
	in := filepath.Join(t.TempDir(), "empty.jsonl")
	if err := os.WriteFile(in, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "import", "--data", filepath.Join(t.TempDir(), "data"), in)
	if code != 0 || !strings.Contains(stdout+stderr, "imported 0 events") {
		t.Fatalf("empty import: exit %d %q %q", code, stdout, stderr)
	}
}
