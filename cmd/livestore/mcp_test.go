package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// mcpDataDir returns a --data directory whose storage holds store "cli"
// with 3 events.
func mcpDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlitestore.Open(filepath.Join(dir, "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	batch := []syncproto.Event{
		{Name: "v1.A", Args: []byte(`{"n":1}`), SeqNum: 1, ParentSeqNum: 0, ClientID: "c", SessionID: "s"},
		{Name: "v1.A", Args: []byte(`{"n":2}`), SeqNum: 2, ParentSeqNum: 1, ClientID: "c", SessionID: "s"},
		{Name: "v1.A", Args: []byte(`{"n":3}`), SeqNum: 3, ParentSeqNum: 2, ClientID: "c", SessionID: "s"},
	}
	if err := st.Append(t.Context(), "cli", batch, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkMCPTools lists the tools of cs and calls list_stores and
// read_events on the storage of mcpDataDir.
func checkMCPTools(t *testing.T, cs *sdkmcp.ClientSession, wantTools []string) {
	t.Helper()
	ctx := t.Context()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, wantTools) {
		t.Errorf("tools %v, want %v", names, wantTools)
	}

	res, err := cs.CallTool(ctx, &sdkmcp.CallToolParams{Name: "list_stores"})
	if err != nil || res.IsError {
		t.Fatalf("list_stores: %v %+v", err, res)
	}
	var stores struct {
		Stores []struct {
			StoreID string `json:"storeId"`
			Head    int64  `json:"head"`
		} `json:"stores"`
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &stores); err != nil {
		t.Fatal(err)
	}
	if len(stores.Stores) != 1 || stores.Stores[0].StoreID != "cli" || stores.Stores[0].Head != 3 {
		t.Errorf("list_stores: %s", b)
	}

	res, err = cs.CallTool(ctx, &sdkmcp.CallToolParams{Name: "read_events", Arguments: map[string]any{"storeId": "nope"}})
	if err != nil || !res.IsError {
		t.Errorf("read_events of an unknown store: %v %+v", err, res)
	}
}

// An in-process server over OS pipes ends when its input closes, and when
// its context ends.
func TestMCPPipes(t *testing.T) {
	data := mcpDataDir(t)
	storeDir := t.TempDir()
	for _, stopBy := range []string{"eof", "cancel"} {
		t.Run(stopBy, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			inR, inW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			outR, outW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			done := make(chan error, 1)
			go func() {
				err := serveMCP(ctx, []string{"--data", data, "--store-dir", storeDir}, inR, outW, &stderr)
				outW.Close()
				done <- err
			}()

			client := sdkmcp.NewClient(&sdkmcp.Implementation{Name: "test", Version: "v0"}, nil)
			cs, err := client.Connect(ctx, &sdkmcp.IOTransport{Reader: outR, Writer: inW}, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkMCPTools(t, cs, []string{"client_store_events", "client_store_query", "client_store_summary", "list_stores", "read_events", "sync_status"})
			if stopBy == "cancel" {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("serve after cancel: %v", err)
				}
				cs.Close()
			} else {
				cs.Close() // closes the server's input
				if err := <-done; err != nil {
					t.Errorf("serve after EOF: %v", err)
				}
			}
			inR.Close()
			outR.Close()
			if stderr.Len() != 0 {
				t.Errorf("stderr: %s", stderr.String())
			}
		})
	}
}

// TestMCPProcess runs the command in a child process (this test binary)
// over its real standard input and output.
func TestMCPProcess(t *testing.T) {
	if args := os.Getenv("LIVESTORE_TEST_MCP_ARGS"); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			panic(err)
		}
		os.Exit(run(context.Background(), argv, os.Stdout, os.Stderr))
	}
	data := mcpDataDir(t)
	argv, _ := json.Marshal([]string{"mcp", "--data", data, "--log-level", "warn"})
	cmd := exec.Command(os.Args[0], "-test.run=^TestMCPProcess$")
	cmd.Env = append(os.Environ(), "LIVESTORE_TEST_MCP_ARGS="+string(argv))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr

	client := sdkmcp.NewClient(&sdkmcp.Implementation{Name: "test", Version: "v0"}, nil)
	cs, err := client.Connect(t.Context(), &sdkmcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v; stderr:\n%s", err, stderr.String())
	}
	if v := cs.InitializeResult().ServerInfo; v.Name != "livestore" || v.Version == "" {
		t.Errorf("server info %+v", v)
	}
	checkMCPTools(t, cs, []string{"list_stores", "read_events"})
	if err := cs.Close(); err != nil {
		t.Errorf("close: %v; stderr:\n%s", err, stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d; stderr:\n%s", code, stderr.String())
	}
}

func TestMCPCommandLine(t *testing.T) {
	data := mcpDataDir(t)
	empty := t.TempDir()
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"help"}, 0, "mcp"},
		{[]string{"mcp", "-h"}, 0, "--store-dir"},
		{[]string{"mcp", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"mcp", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"mcp", "--no-storage"}, 2, "--no-storage needs at least one --store-dir"},
		{[]string{"mcp", "--store-dir", ""}, 2, "empty path"},
		{[]string{"mcp", "--data", data, "--log-level", "loud"}, 2, "--log-level"},
		{[]string{"mcp", "--data", empty}, 1, "no sync storage"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		code := run(ctx, tt.args, &stdout, &stderr)
		cancel()
		if code != tt.code || !strings.Contains(stdout.String()+stderr.String(), tt.out) {
			t.Errorf("%v: exit %d, output %q; want %d containing %q", tt.args, code, stdout.String()+stderr.String(), tt.code, tt.out)
		}
	}
	if _, err := os.Stat(filepath.Join(empty, "sync.db")); !os.IsNotExist(err) {
		t.Errorf("a missing storage was created: %v", err)
	}
}

// A line that is not JSON, or JSON that is no JSON-RPC message, gets its
// JSON-RPC error answer, and the server in a child process over real pipes
// goes on serving the lines after it.
func TestMCPBadLineKeepsServing(t *testing.T) {
	data := mcpDataDir(t)
	argv, _ := json.Marshal([]string{"mcp", "--data", data})
	cmd := exec.Command(os.Args[0], "-test.run=^TestMCPProcess$")
	cmd.Env = append(os.Environ(), "LIVESTORE_TEST_MCP_ARGS="+string(argv))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A server that stops answering fails the test instead of hanging it.
	kill := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer kill.Stop()
	lines := bufio.NewScanner(stdout)
	lines.Buffer(nil, 1<<20)
	type answer struct {
		ID     json.RawMessage `json:"id"`
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	roundTrip := func(line string) answer {
		t.Helper()
		if _, err := io.WriteString(stdin, line+"\n"); err != nil {
			t.Fatalf("write %q: %v; stderr:\n%s", line, err, stderr.String())
		}
		if !lines.Scan() {
			t.Fatalf("no answer to %q: %v; stderr:\n%s", line, lines.Err(), stderr.String())
		}
		var a answer
		if err := json.Unmarshal(lines.Bytes(), &a); err != nil {
			t.Fatalf("answer %q: %v", lines.Text(), err)
		}
		return a
	}
	init := roundTrip(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}`)
	if string(init.ID) != "1" || init.Error != nil {
		t.Fatalf("initialize: %+v", init)
	}
	if _, err := io.WriteString(stdin, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		line, id string
		code     int
	}{
		{`this is not json {`, "null", -32700},
		{`{"jsonrpc":"2.0","id":1`, "null", -32700},
		{`42`, "null", -32600},
		{`{"jsonrpc":"1.0","id":7,"method":"tools/list"}`, "7", -32600},
	} {
		a := roundTrip(tt.line)
		if a.Error == nil || a.Error.Code != tt.code || string(a.ID) != tt.id {
			t.Errorf("%q: answer %+v, want error %d for id %s", tt.line, a, tt.code, tt.id)
		}
		list := roundTrip(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
		if string(list.ID) != "2" || list.Error != nil || !strings.Contains(string(list.Result), "read_events") {
			t.Fatalf("tools/list after %q: %+v", tt.line, list)
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v; stderr:\n%s", err, stderr.String())
	}
}
