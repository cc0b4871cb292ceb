package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/internal/lockedbuf"
	"github.com/livestore-go/livestore/internal/sqlite"
	"github.com/livestore-go/livestore/internal/testschema"
)

// answerCap is the most an answer of the MCP tools or the devtools API may
// weigh: the 1 MiB cap plus room for the envelope.
const answerCap = 1<<20 + 256<<10

// mcpProc is `livestore mcp` spoken to over stdio (newline-delimited
// JSON-RPC), reading answers with a bound so that an unbounded answer fails
// the test instead of filling its memory.
type mcpProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr *lockedbuf.Buffer
	watch  *rssWatch
	nextID int
}

// startMCP runs `livestore mcp args...` and initializes the session. The
// process is killed when the test ends, or when its RSS passes 1 GiB.
func startMCP(t testing.TB, args ...string) *mcpProc {
	t.Helper()
	cmd := exec.Command(livestoreBinary(t), append([]string{"mcp"}, args...)...)
	m := &mcpProc{cmd: cmd, stderr: newOutput()}
	cmd.Stderr = m.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if m.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m.out = bufio.NewReaderSize(stdout, 64<<10)
	m.watch = watchRSS(t, cmd.Process.Pid, 1<<30)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("livestore mcp stderr:\n%s", tailString(m.stderr.String(), 4<<10))
		}
	})
	if _, err := m.call("initialize", map[string]any{"protocolVersion": "2025-03-26", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "hostile-input-test", "version": "1"}}, 1<<20, 30*time.Second); err != nil {
		t.Fatalf("livestore mcp: initialize: %v", err)
	}
	if err := m.send(map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"}); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *mcpProc) send(msg any) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	_, err = m.stdin.Write(append(b, '\n'))
	return err
}

// call sends a request and returns its answer's line, failing when the line
// passes limit bytes or takes longer than timeout (then the process is
// killed: it is unusable).
func (m *mcpProc) call(method string, params any, limit int, timeout time.Duration) ([]byte, error) {
	m.nextID++
	id := m.nextID
	if err := m.send(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params}); err != nil {
		return nil, err
	}
	type result struct {
		line []byte
		err  error
	}
	got := make(chan result, 1)
	go func() {
		for {
			line, err := readLineCapped(m.out, limit)
			if err != nil {
				got <- result{nil, err}
				return
			}
			var head struct {
				ID *int `json:"id"`
			}
			if json.Unmarshal(line, &head) == nil && head.ID != nil && *head.ID == id {
				got <- result{line, nil}
				return
			}
		}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			_ = m.cmd.Process.Signal(syscall.SIGKILL)
		}
		return r.line, r.err
	case <-time.After(timeout):
		_ = m.cmd.Process.Signal(syscall.SIGKILL)
		<-got // the reader ends with the process
		return nil, fmt.Errorf("no answer to %s within %v", method, timeout)
	}
}

// readLineCapped reads one line, failing once it passes limit bytes (the
// rest is left unread).
func readLineCapped(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		part, err := r.ReadSlice('\n')
		line = append(line, part...)
		if len(line) > limit {
			return nil, fmt.Errorf("answer passed %d bytes", limit)
		}
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

// toolCall is a tools/call answer: the text the tool returned and whether
// it is an error (a tool error, or a JSON-RPC error).
type toolCall struct {
	text    string
	isError bool
	bytes   int
}

func (m *mcpProc) tool(name string, args map[string]any, timeout time.Duration) (toolCall, error) {
	line, err := m.call("tools/call", map[string]any{"name": name, "arguments": args}, answerCap, timeout)
	if err != nil {
		return toolCall{}, err
	}
	var res struct {
		Result *struct {
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
			StructuredContent json.RawMessage `json:"structuredContent"`
			IsError           bool            `json:"isError"`
		} `json:"result"`
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(line, &res); err != nil {
		return toolCall{}, fmt.Errorf("tools/call %s: %w: %.300s", name, err, line)
	}
	tc := toolCall{bytes: len(line)}
	switch {
	case res.Error != nil:
		tc.text, tc.isError = res.Error.Message, true
	case res.Result != nil:
		for _, c := range res.Result.Content {
			tc.text += c.Text
		}
		if tc.text == "" {
			tc.text = string(res.Result.StructuredContent)
		}
		tc.isError = res.Result.IsError
	}
	return tc, nil
}

// saysCut reports whether an answer says it is incomplete.
func saysCut(s string) bool {
	low := strings.ToLower(s)
	return strings.Contains(low, `"truncated":true`) || strings.Contains(low, `"more":true`) || strings.Contains(low, "truncated")
}

// clientDir makes a Go client store directory of the todo schema holding
// todo "local-1", synced with url when url is not empty.
func clientDir(t *testing.T, url, storeID string) string {
	t.Helper()
	dir := t.TempDir()
	if url != "" {
		syncGoStore(t, dir, url, storeID, "local-1", 1)
		return dir
	}
	ts := testschema.New(t)
	s, err := livestore.Open(context.Background(), ts.Schema, livestore.Options{Dir: dir, StoreID: storeID})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(context.Background(), ts.Created.New(testschema.TodoCreated{ID: "local-1", Text: "local"})); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestHostileUnboundedAnswers: the MCP query tool capped rows but not bytes
// (300 rows of 1 MB blobs gave an 800 MB answer), a recursive query that
// never ends ran on, read_events and the devtools events API answered with
// everything asked for (hundreds of MB). Every answer must be capped (≤ 1
// MiB plus its envelope) and say it was cut, and a query must stop within
// about 5 s. The store read stays usable: a JS client syncs it.
func TestHostileUnboundedAnswers(t *testing.T) {
	t.Parallel()
	js := useJS(t)
	dataDir := t.TempDir()
	const store = "answers"
	n := pick(12, 400)
	want := seedStore(t, dataDir, store, n, 400_000)
	dir := clientDir(t, "", "answers-client")

	t.Run("query of 300 blobs of 1 MB", func(t *testing.T) {
		m := startMCP(t, "--no-storage", "--store-dir", dir)
		start := time.Now()
		tc, err := m.tool("client_store_query", map[string]any{"dir": dir,
			"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 300) SELECT x, randomblob(1000000) AS b FROM c"}, 60*time.Second)
		m.watch.check(t, "livestore mcp answering 300 MB")
		if err != nil {
			t.Fatalf("client_store_query of 300 MB: %v", err)
		}
		if tc.isError || !saysCut(tc.text) || !strings.Contains(tc.text, `"rows"`) {
			t.Fatalf("client_store_query of 300 MB: %d bytes, error %v, want some rows and that it was truncated: %.300s", tc.bytes, tc.isError, tc.text)
		}
		t.Logf("client_store_query of 300 × 1 MB: %d bytes in %v, peak RSS %s", tc.bytes, time.Since(start).Round(time.Millisecond), mib(m.watch.peak.Load()))
	})

	t.Run("query that never ends", func(t *testing.T) {
		m := startMCP(t, "--no-storage", "--store-dir", dir)
		start := time.Now()
		tc, err := m.tool("client_store_query", map[string]any{"dir": dir,
			"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"}, 15*time.Second)
		if err != nil {
			t.Fatalf("endless query: %v", err)
		}
		took := time.Since(start)
		if !tc.isError || took > 10*time.Second {
			t.Fatalf("endless query: after %v, error %v: %.300s; want an error within about 5 s", took, tc.isError, tc.text)
		}
		t.Logf("endless query stopped after %v: %.200s", took.Round(time.Millisecond), tc.text)
	})

	t.Run("read_events of large events", func(t *testing.T) {
		m := startMCP(t, "--data", dataDir)
		tc, err := m.tool("read_events", map[string]any{"storeId": store, "limit": 1000}, 60*time.Second)
		m.watch.check(t, "livestore mcp reading large events")
		if err != nil {
			t.Fatalf("read_events of %d × 400 KB: %v", n, err)
		}
		if tc.isError || !strings.Contains(tc.text, `"v1.TodoCreated"`) || !saysCut(tc.text) {
			t.Fatalf("read_events of %d × 400 KB: %d bytes, error %v, want some events and that there is more: %.300s", n, tc.bytes, tc.isError, tc.text)
		}
		t.Logf("read_events of %d × 400 KB: %d bytes", n, tc.bytes)
	})

	t.Run("devtools API on large events", func(t *testing.T) {
		addr := freeAddr(t)
		cmd := exec.Command(livestoreBinary(t), "devtools", "--data", dataDir, "--addr", addr)
		out := newOutput()
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w := watchRSS(t, cmd.Process.Pid, 1<<30)
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("livestore devtools output:\n%s", tailString(out.String(), 4<<10))
			}
		})
		// `livestore devtools` serves the page where `serve` does.
		url := devtoolsURL("http://"+addr+"/_devtools", store)
		var body []byte
		deadline := time.Now().Add(20 * time.Second)
		for {
			var err error
			body, err = getBody(url, answerCap)
			if err == nil || time.Now().After(deadline) || strings.Contains(err.Error(), "longer than") {
				if err != nil {
					w.check(t, "livestore devtools answering")
					t.Fatalf("devtools events of %d × 400 KB: %v", n, err)
				}
				break
			}
			time.Sleep(100 * time.Millisecond) // the server is starting
		}
		if !bytes.Contains(body, []byte(`"v1.TodoCreated"`)) || !saysCut(string(body)) {
			t.Fatalf("devtools events of %d × 400 KB: %d bytes, want some events and that there is more: %.300s", n, len(body), body)
		}
		t.Logf("devtools events of %d × 400 KB: %d bytes", n, len(body))
	})

	srv := startServe(t, freeAddr(t), "--data", dataDir)
	checkUsable(t, js, srv.url(), store, want, usable{jsPush: true})
}

// getBody GETs url and returns the body, failing if it passes limit bytes
// or the status is not 200.
func getBody(url string, limit int64) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("GET %s: answer longer than %d bytes", url, limit)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d %.200s", url, resp.StatusCode, b)
	}
	return b, nil
}

// TestHostileImportSplice: `livestore import` of lines without backendId
// into a store holding different events said "skipped 3 already present"
// and appended e4, e5 of the other history onto the target's e1..e3. It
// must fail naming the store, leave the target's events unchanged, and
// still skip events that are the same.
func TestHostileImportSplice(t *testing.T) {
	t.Parallel()
	js := useJS(t)
	dataDir := t.TempDir()
	const store = "spliced"
	want := seedStore(t, dataDir, store, 3, 20)

	lines := func(prefix string, n int) string {
		var b strings.Builder
		for i, id := range todoIDs(prefix, n) {
			text := strings.Repeat("x", 20)
			e := todoEvent(id, text, int64(i+1))
			l, _ := json.Marshal(map[string]any{"storeId": store, "seqNum": e.SeqNum, "parentSeqNum": e.ParentSeqNum,
				"name": e.Name, "args": e.Args, "clientId": e.ClientID, "sessionId": e.SessionID})
			b.Write(append(l, '\n'))
		}
		return b.String()
	}
	other := filepath.Join(t.TempDir(), "other.jsonl")
	if err := os.WriteFile(other, []byte(lines("other", 5)), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runCLI(t, 60*time.Second, "import", "--data", dataDir, other)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(stderr, store) {
		t.Errorf("import of another history into %s: %v, want an error naming the store\nstdout: %s\nstderr: %s", store, err, stdout, stderr)
	} else {
		t.Logf("import of another history refused: %s", strings.TrimSpace(stderr))
	}

	// The same events, and two more: skipped, then appended.
	same := filepath.Join(t.TempDir(), "same.jsonl")
	if err := os.WriteFile(same, []byte(lines(store, 5)), 0o644); err != nil {
		t.Fatal(err)
	}
	srvCheck := func() *serveProc {
		srv := startServe(t, freeAddr(t), "--data", dataDir)
		checkLog(t, srv.url(), store, want)
		return srv
	}
	stopServe(t, srvCheck())
	if stdout, stderr, err := runCLI(t, 60*time.Second, "import", "--data", dataDir, same); err != nil {
		t.Fatalf("import of the store's own events and two more: %v\n%s%s", err, stdout, stderr)
	}
	want = todoIDs(store, 5)
	srv := srvCheck()
	checkUsable(t, js, srv.url(), store, want, usable{jsPush: true})
}

// TestHostileVacuumInto: `VACUUM INTO '/path'` went through the read-only
// SQL guard when run outside a transaction and wrote a copy of the database
// anywhere. `livestore query` and the MCP query tool must refuse it and
// create no file; the client store keeps syncing.
func TestHostileVacuumInto(t *testing.T) {
	t.Parallel()
	js := useJS(t)
	srv := startServe(t, freeAddr(t), "--data", t.TempDir())
	const store = "vacuum"
	dir := clientDir(t, srv.url(), store)
	target := t.TempDir()

	for i, sql := range []string{"VACUUM INTO '%s'", "  vacuum main into '%s'", "/* c */ VACUUM INTO '%s'"} {
		path := filepath.Join(target, fmt.Sprintf("query-%d.db", i))
		q := fmt.Sprintf(sql, path)
		stdout, stderr, err := runCLI(t, 30*time.Second, "query", "--dir", dir, q)
		if err == nil {
			t.Errorf("livestore query %q succeeded: %s", q, stdout)
		} else {
			t.Logf("livestore query %q: %s", q, strings.TrimSpace(stderr))
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("livestore query %q created %s (%v)", q, path, err)
		}
	}
	m := startMCP(t, "--no-storage", "--store-dir", dir)
	for i, sql := range []string{"VACUUM INTO '%s'", "vacuum into '%s'"} {
		path := filepath.Join(target, fmt.Sprintf("mcp-%d.db", i))
		q := fmt.Sprintf(sql, path)
		tc, err := m.tool("client_store_query", map[string]any{"dir": dir, "sql": q}, 30*time.Second)
		if err != nil {
			t.Fatalf("client_store_query %q: %v", q, err)
		}
		if !tc.isError {
			t.Errorf("client_store_query %q succeeded: %.300s", q, tc.text)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("client_store_query %q created %s (%v)", q, path, err)
		}
	}
	// The guard every read-only SQL of the tools goes through, called
	// outside a transaction: nothing but the caller's BEGIN stopped it.
	conn, err := sqlite.Open(filepath.Join(dir, livestore.DBFileName), sqlite.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(target, "guard.db")
	_, err = conn.QueryReadOnly(fmt.Sprintf("VACUUM INTO '%s'", path), nil, func(*sqlite.Row) error { return nil })
	conn.Close()
	if err == nil {
		t.Errorf("the read-only SQL guard ran VACUUM INTO outside a transaction")
	} else {
		t.Logf("the read-only SQL guard outside a transaction: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the read-only SQL guard let VACUUM INTO create %s (%v)", path, err)
	}
	if t.Failed() {
		return
	}
	syncGoStore(t, dir, srv.url(), store, "local-2", 2)
	checkUsable(t, js, srv.url(), store, []string{"local-1", "local-2"}, usable{jsPush: true})
}
