package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver/pgstore/pgtest"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// startMCPProcess runs "livestore args..." in a child process (this test
// binary, through TestMCPProcess) and connects to it over its standard
// input and output.
func startMCPProcess(t *testing.T, args ...string) (*sdkmcp.ClientSession, *bytes.Buffer) {
	t.Helper()
	argv, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^TestMCPProcess$")
	cmd.Env = append(os.Environ(), "LIVESTORE_TEST_MCP_ARGS="+string(argv))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	client := sdkmcp.NewClient(&sdkmcp.Implementation{Name: "test", Version: "v0"}, nil)
	cs, err := client.Connect(t.Context(), &sdkmcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v; stderr:\n%s", err, stderr.String())
	}
	t.Cleanup(func() {
		if err := cs.Close(); err != nil {
			t.Errorf("close: %v; stderr:\n%s", err, stderr.String())
		}
	})
	return cs, &stderr
}

// callTool calls a tool and returns its text and whether it is a tool
// error; a protocol error fails the test.
func callTool(t *testing.T, cs *sdkmcp.ClientSession, name string, args any) (string, bool) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &sdkmcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error %v", name, err)
	}
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*sdkmcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n"), res.IsError
}

func toolList(t *testing.T, cs *sdkmcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

func storageHead(t *testing.T, data, storeID string) int64 {
	t.Helper()
	st, err := sqlitestore.OpenReadOnly(filepath.Join(data, "sync.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h, err := st.Head(t.Context(), storeID)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func pushArgs(head int, names ...string) map[string]any {
	evs := make([]any, len(names))
	for i, n := range names {
		evs[i] = map[string]any{"name": n, "args": map[string]any{"n": 10 + i}}
	}
	return map[string]any{"storeId": "cli", "head": head, "events": evs}
}

// push_events over a child process's real pipes appends at the head and
// refuses a push at a stale head, an unknown name and malformed input.
func TestMCPPushEvents(t *testing.T) {
	data := mcpDataDir(t)
	cs, _ := startMCPProcess(t, "mcp", "--data", data, "--allow-writes")
	if got, want := toolList(t, cs), []string{"list_stores", "push_events", "read_events"}; !slices.Equal(got, want) {
		t.Fatalf("tools %v, want %v", got, want)
	}
	if text, isErr := callTool(t, cs, "push_events", pushArgs(3, "v1.A", "v1.A")); isErr || !strings.Contains(text, `"head":5`) {
		t.Fatalf("push: %s", text)
	}
	for _, tc := range []struct {
		args any
		want string
	}{
		{pushArgs(3, "v1.A"), "the store's head is 5, not 3: another writer appended since"},
		{pushArgs(5, "v1.B"), `name "v1.B" does not occur in the log of "cli"`},
		{map[string]any{"storeId": "cli", "head": "five", "events": []any{}}, "head must be a whole number"},
		{map[string]any{"storeId": "cli", "head": 5, "events": 7}, "events must be"},
		{map[string]any{"storeId": "cli", "head": 5, "events": []any{"v1.A"}}, ""},
	} {
		text, isErr := callTool(t, cs, "push_events", tc.args)
		if !isErr || !strings.Contains(text, tc.want) {
			t.Errorf("push_events %v: %q (error %v), want a tool error containing %q", tc.args, text, isErr, tc.want)
		}
	}
	// The server still answers after the refusals.
	if text, isErr := callTool(t, cs, "read_events", map[string]any{"storeId": "cli", "after": 3}); isErr || strings.Count(text, `"seqNum"`) != 2 {
		t.Fatalf("read_events: %s", text)
	}
	if h := storageHead(t, data, "cli"); h != 5 {
		t.Fatalf("storage head %d, want 5", h)
	}
}

// Without --allow-writes there is no push_events, and a call of it changes
// nothing.
func TestMCPReadOnlyByDefault(t *testing.T) {
	data := mcpDataDir(t)
	cs, _ := startMCPProcess(t, "mcp", "--data", data)
	if slices.Contains(toolList(t, cs), "push_events") {
		t.Fatal("push_events listed without --allow-writes")
	}
	res, err := cs.CallTool(t.Context(), &sdkmcp.CallToolParams{Name: "push_events", Arguments: pushArgs(3, "v1.A")})
	if err == nil && !res.IsError {
		t.Fatal("push_events succeeded without --allow-writes")
	}
	if h := storageHead(t, data, "cli"); h != 3 {
		t.Fatalf("storage head %d, want 3", h)
	}
}

// A storage that a running serve owns is refused for direct writes, with
// the way out; with --server the events go through the server.
func TestMCPPushThroughServer(t *testing.T) {
	data := mcpDataDir(t)
	addr, stop := startServe(t, "--data", data)
	defer stop()

	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	code := run(ctx, []string{"mcp", "--data", data, "--allow-writes"}, &stdout, &stderr)
	cancel()
	if code != 1 || !strings.Contains(stderr.String(), "in use by pid") || !strings.Contains(stderr.String(), "pass --server ws://HOST:PORT") {
		t.Fatalf("direct write to a served storage: exit %d, stderr %q", code, stderr.String())
	}

	cs, _ := startMCPProcess(t, "mcp", "--data", data, "--allow-writes", "--server", addr)
	if text, isErr := callTool(t, cs, "push_events", pushArgs(3, "v1.A")); isErr || !strings.Contains(text, `"head":4`) {
		t.Fatalf("push through the server: %s", text)
	}
	if text, isErr := callTool(t, cs, "push_events", pushArgs(3, "v1.A")); !isErr || !strings.Contains(text, "the store's head is 4, not 3") {
		t.Fatalf("stale push through the server: %s", text)
	}
	if text, isErr := callTool(t, cs, "read_events", map[string]any{"storeId": "cli", "after": 3}); isErr || !strings.Contains(text, `"clientId":"livestore-mcp"`) {
		t.Fatalf("read_events: %s", text)
	}
}

func TestMCPWriteFlags(t *testing.T) {
	data := mcpDataDir(t)
	dir := t.TempDir()
	for _, tt := range []struct {
		args []string
		out  string
	}{
		{[]string{"mcp", "--data", data, "--server", "ws://127.0.0.1:1"}, "add --allow-writes"},
		{[]string{"mcp", "--no-storage", "--store-dir", dir, "--allow-writes"}, "cannot go with --no-storage"},
		{[]string{"mcp", "--data", data, "--allow-writes", "--server", "ws://127.0.0.1:1", "--server-payload", "{"}, "--server-payload must be JSON"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), tt.args, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tt.out) {
			t.Errorf("%v: exit %d, stderr %q; want 2 containing %q", tt.args, code, stderr.String(), tt.out)
		}
	}
}

// push_events on PostgreSQL storage: the head check is the storage's, in
// one transaction.
func TestMCPPushEventsPostgres(t *testing.T) {
	schema := pgtest.Schema(t)
	pg := pgtest.Open(t, schema)
	if err := pg.Append(t.Context(), "cli", []syncproto.Event{
		{Name: "v1.A", Args: []byte(`{"n":1}`), SeqNum: 1, ParentSeqNum: 0, ClientID: "c", SessionID: "s"},
	}, time.Now()); err != nil {
		t.Fatal(err)
	}
	cs, _ := startMCPProcess(t, "mcp", "--postgres", pgtest.URL(t), "--pg-schema", schema, "--allow-writes")
	if text, isErr := callTool(t, cs, "push_events", pushArgs(1, "v1.A")); isErr || !strings.Contains(text, `"head":2`) {
		t.Fatalf("push: %s", text)
	}
	if text, isErr := callTool(t, cs, "push_events", pushArgs(1, "v1.A")); !isErr || !strings.Contains(text, "the store's head is 2, not 1") {
		t.Fatalf("stale push: %s", text)
	}
	if h, err := pg.Head(t.Context(), "cli"); err != nil || h != 2 {
		t.Fatalf("head %d, %v; want 2", h, err)
	}
}
