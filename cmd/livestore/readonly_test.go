package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/livestore-go/livestore/internal/sqlite"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
	"github.com/livestore-go/livestore/syncserver/storagetest"
)

func fileSum(t *testing.T, path string) [sha256.Size]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// mcpListStores runs "livestore mcp args..." in this process, lists its
// tools, calls list_stores and returns that call's JSON.
func mcpListStores(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		err := serveMCP(ctx, args, inR, outW, &stderr)
		outW.Close()
		done <- err
	}()
	client := sdkmcp.NewClient(&sdkmcp.Implementation{Name: "test", Version: "v0"}, nil)
	cs, err := client.Connect(ctx, &sdkmcp.IOTransport{Reader: outR, Writer: inW}, nil)
	if err != nil {
		t.Fatalf("connect: %v; stderr %s", err, stderr.String())
	}
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(ctx, &sdkmcp.CallToolParams{Name: "list_stores"})
	if err != nil || res.IsError {
		t.Fatalf("list_stores: %v %+v", err, res)
	}
	b, _ := json.Marshal(res.StructuredContent)
	cs.Close()
	if err := <-done; err != nil {
		t.Fatalf("mcp: %v", err)
	}
	return string(b)
}

// runDevtoolsGET runs "livestore devtools --data dir", GETs api/stores and
// stops it.
func runDevtoolsGET(t *testing.T, dir string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"devtools", "--data", dir, "--addr", "127.0.0.1:0"}, pw, &stderr)
		pw.Close()
	}()
	first, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("devtools printed nothing: %v; exit %d, stderr %s", err, <-code, stderr.String())
	}
	go io.Copy(io.Discard, pr)
	base := strings.TrimSpace(strings.TrimPrefix(first, "livestore devtools on "))
	resp, err := http.Get(base + "api/stores")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The page answers only loopback names (DNS rebinding).
	if c, body := get(t, base+"api/stores", "evil.example"); c != http.StatusForbidden || strings.Contains(body, "alpha") {
		t.Errorf("devtools, foreign Host: %d %.200s", c, body)
	}
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("devtools exit %d: %s", c, stderr.String())
	}
	return string(b)
}

// The reading commands leave the storage file's bytes as they were.
func TestReadOnlyToolsLeaveStorageUnchanged(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	seedStorage(t, data)
	path := filepath.Join(data, "sync.db")
	before := fileSum(t, path)

	if code, out, stderr := runCLI(t, "inspect", "--data", data); code != 0 || !strings.Contains(out, "alpha") {
		t.Fatalf("inspect: exit %d %s %s", code, out, stderr)
	}
	if code, out, stderr := runCLI(t, "inspect", "--data", data, "beta"); code != 0 || !strings.Contains(out, "events     3") {
		t.Fatalf("inspect beta: exit %d %s %s", code, out, stderr)
	}
	if code, _, stderr := runCLI(t, "export", "--data", data, "--out", filepath.Join(t.TempDir(), "x.jsonl")); code != 0 {
		t.Fatalf("export: exit %d %s", code, stderr)
	}
	if stores := mcpListStores(t, "--data", data); !strings.Contains(stores, `"alpha"`) {
		t.Fatalf("mcp list_stores: %s", stores)
	}
	if stores := runDevtoolsGET(t, data); !strings.Contains(stores, `"alpha"`) {
		t.Fatalf("devtools api/stores: %s", stores)
	}
	if after := fileSum(t, path); after != before {
		t.Fatalf("sync.db changed: sha256 %x, was %x", after, before)
	}
}

// What is not a sync storage is an error of every reading command, never
// an empty list, and is left as it was.
func TestReadOnlyToolsRefuseNonStorage(t *testing.T) {
	// Each case's sync.db content (nil: a directory named sync.db).
	notDB := bytes.Repeat([]byte("not a database\n"), 300)

	other := filepath.Join(t.TempDir(), "other.db")
	c, err := sqlite.Open(other, sqlite.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Exec("CREATE TABLE todos (id TEXT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	otherDB, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}

	// A copy of sync.db taken without its -wal while the server runs: the
	// tables are still in the WAL.
	live := t.TempDir()
	st, err := sqlitestore.Open(filepath.Join(live, "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Append(t.Context(), "alpha", storagetest.Chain(0, 3, "c"), time.Now()); err != nil {
		t.Fatal(err)
	}
	walless, err := os.ReadFile(filepath.Join(live, "sync.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	tests := []struct {
		name    string
		content []byte
		want    string
	}{
		{"text file", notDB, "not a database"},
		{"another SQLite database", otherDB, "not a livestore sync storage"},
		{"empty file", []byte{}, "not a livestore sync storage"},
		{"directory", nil, "sync.db"},
		{"copy without its WAL", walless, "sync.db-wal"},
	}
	for _, tt := range tests {
		for _, cmd := range []string{"inspect", "export", "mcp", "devtools"} {
			// A fresh copy for each command: the case is what a user
			// meets first.
			dir := t.TempDir()
			path := filepath.Join(dir, "sync.db")
			if tt.content == nil {
				os.Mkdir(path, 0o755)
			} else if err := os.WriteFile(path, tt.content, 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{cmd, "--data", dir}
			if cmd == "devtools" {
				args = append(args, "--addr", "127.0.0.1:0")
			}
			code, stdout, stderr := runCLI(t, args...)
			if code != 1 || !strings.Contains(stderr, tt.want) || stdout != "" {
				t.Errorf("%s: %s: exit %d, stdout %q, stderr %q; want exit 1 naming %q", tt.name, cmd, code, stdout, stderr, tt.want)
			}
			if tt.content != nil {
				if b, _ := os.ReadFile(path); !bytes.Equal(b, tt.content) {
					t.Errorf("%s: %s changed the file", tt.name, cmd)
				}
			}
		}
	}
}
