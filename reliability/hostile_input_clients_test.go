package reliability

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/internal/testschema"
	"github.com/livestore-go/livestore/interop/harness"
	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
)

// The well-behaved side of the hostile-input suite: honest pushes, the
// checks that a store is usable, a Go store, the shared Node process of JS
// clients, and the processes under test.

// ---- honest traffic ----

// todoEvent is an event of the interop schema (interop/js/schema.mjs), which
// the JS and Go clients of these tests materialize.
func todoEvent(id, text string, seq int64) syncproto.Event {
	args, _ := json.Marshal(map[string]string{"id": id, "text": text})
	return syncproto.Event{Name: "v1.TodoCreated", Args: args, SeqNum: seq, ParentSeqNum: seq - 1,
		ClientID: "honest", SessionID: "honest-s"}
}

// pushTodos pushes one v1.TodoCreated per id after head, in batches that fit
// a message, and returns the new head; a push that is not acknowledged fails
// the test.
func pushTodos(t testing.TB, url, storeID string, head int64, ids []string, textBytes int) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := syncclient.Dial(ctx, url, syncclient.Options{StoreID: storeID, PingInterval: -1})
	if err != nil {
		t.Fatalf("honest client of %s: %v", storeID, err)
	}
	defer c.Close()
	text := strings.Repeat("t", textBytes)
	var batch []syncproto.Event
	size := 0
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := c.Push(ctx, batch, nil); err != nil {
			t.Fatalf("honest push of e%d..e%d to %s: %v", batch[0].SeqNum, batch[len(batch)-1].SeqNum, storeID, err)
		}
		batch, size = nil, 0
	}
	for _, id := range ids {
		head++
		batch = append(batch, todoEvent(id, text, head))
		size += textBytes + 200
		if len(batch) == 50 || size > 1_200_000 {
			flush()
		}
	}
	flush()
	return head
}

// todoIDs returns prefix-000 … prefix-(n-1).
func todoIDs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

// logIDs checks that log chains from e1 and returns the todo id of each event.
func logIDs(t testing.TB, log []syncproto.Event) []string {
	t.Helper()
	ids := make([]string, len(log))
	for i, e := range log {
		if e.SeqNum != int64(i+1) || e.ParentSeqNum != int64(i) {
			t.Fatalf("server log: event %d is e%d (parent e%d), want e%d after e%d", i, e.SeqNum, e.ParentSeqNum, i+1, i)
		}
		var a struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(e.Args, &a); err != nil || e.Name != "v1.TodoCreated" {
			t.Fatalf("server log: e%d is %s %.200s, not an event of the honest clients", e.SeqNum, e.Name, e.Args)
		}
		ids[i] = a.ID
	}
	return ids
}

// checkLog asserts that the server's log of storeID is exactly the todos
// want, in order.
func checkLog(t testing.TB, url, storeID string, want []string) {
	t.Helper()
	log, err := pullWithin(url, storeID, 2*time.Minute)
	if err != nil {
		t.Fatalf("pull the log of %s: %v", storeID, err)
	}
	if got := logIDs(t, log); !slices.Equal(got, want) {
		t.Fatalf("server log of %s: %d events %s, want the %d acknowledged ones %s", storeID, len(got), abbrev(got), len(want), abbrev(want))
	}
}

// pullWithin reads a store's whole log with a non-live pull, allowing
// timeout for it (stores of large events take a while under -race).
func pullWithin(url, storeID string, timeout time.Duration) ([]syncproto.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := syncclient.Dial(ctx, url, syncclient.Options{StoreID: storeID, PingInterval: -1})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	st, err := c.Pull(ctx, nil, false)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var out []syncproto.Event
	for {
		page, err := st.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		for _, it := range page.Batch {
			out = append(out, it.Event)
		}
	}
}

func abbrev(ids []string) string {
	if len(ids) <= 8 {
		return fmt.Sprint(ids)
	}
	return fmt.Sprintf("[%s … %s]", strings.Join(ids[:4], " "), strings.Join(ids[len(ids)-3:], " "))
}

// usable is what checkUsable verifies beyond the server's log.
type usable struct {
	goStore bool // a Go store (package livestore, WebSocket backend) commits and syncs too
	jsPush  bool // the JS client commits an event (false: it only pulls, e.g. on a full storage)
}

// checkUsable asserts that the store holds exactly the acknowledged todos
// want, that a LiveStore 0.4.0 JS client pulls all of them (and, with
// jsPush, commits one that reaches the server), and with goStore that a Go
// store does the same; finally the log is want plus the clients' events,
// each once.
func checkUsable(t *testing.T, js *jsClients, url, storeID string, want []string, u usable) {
	t.Helper()
	checkLog(t, url, storeID, want)
	all := slices.Clone(want)
	var commit []string
	if u.jsPush {
		commit = []string{"js-" + storeID}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := js.sync(ctx, jsRequest{URL: url, Store: storeID, Commit: commit, WaitRows: len(want) + len(commit), TimeoutMs: 150_000})
	if err != nil {
		t.Fatalf("JS client on %s: %v", storeID, err)
	}
	var jsIDs []string
	for _, r := range res.Todos {
		jsIDs = append(jsIDs, r.ID)
	}
	all = append(all, commit...)
	if wantSorted := sorted(all); !slices.Equal(jsIDs, wantSorted) {
		t.Fatalf("JS client on %s sees %d todos %s, want %d %s", storeID, len(jsIDs), abbrev(jsIDs), len(wantSorted), abbrev(wantSorted))
	}
	t.Logf("a LiveStore 0.4.0 JS client synced %s (%d todos) in %v", storeID, len(jsIDs), time.Since(start).Round(time.Millisecond))
	if u.goStore {
		goID := "go-" + storeID
		syncGoStore(t, t.TempDir(), url, storeID, goID, len(all)+1)
		all = append(all, goID)
	}
	log, err := pullWithin(url, storeID, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got := logIDs(t, log)
	if !slices.Equal(got[:min(len(want), len(got))], want) || !slices.Equal(sorted(got), sorted(all)) {
		t.Fatalf("server log of %s after the clients: %s, want the acknowledged %s then the clients' %v", storeID, abbrev(got), abbrev(want), all[len(want):])
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// ---- a Go store of the interop schema ----

// syncGoStore opens a Go store of storeID in dir, synced with url, commits
// todo id, and waits until the server holds it and the store holds rows todos, all
// confirmed.
func syncGoStore(t *testing.T, dir, url, storeID, id string, rows int) {
	t.Helper()
	ts := testschema.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s, err := livestore.Open(ctx, ts.Schema, livestore.Options{Dir: dir, StoreID: storeID,
		Sync: syncOptions(wsBackend(url)), Durability: livestore.DurabilityProcess})
	if err != nil {
		t.Fatalf("Go store on %s: %v", storeID, err)
	}
	defer s.Close()
	if err := s.Commit(ctx, ts.Created.New(testschema.TodoCreated{ID: id, Text: "from go"})); err != nil {
		t.Fatalf("Go store on %s: commit: %v", storeID, err)
	}
	var last string
	for {
		st, err := s.SyncStatus(ctx)
		if err != nil {
			t.Fatalf("Go store on %s: %v", storeID, err)
		}
		n, err := livestore.Get(ctx, s, livestore.QueryDB[testschema.TodoCreated](ts.Todos.Select()))
		if err != nil {
			t.Fatalf("Go store on %s: query: %v", storeID, err)
		}
		log, perr := pullWithin(url, storeID, 30*time.Second)
		onServer := false
		for _, e := range log {
			onServer = onServer || strings.Contains(string(e.Args), `"`+id+`"`)
		}
		last = fmt.Sprintf("status %+v, %d rows, on server %v (%v)", st, len(n), onServer, perr)
		if st.IsSynced && st.PendingCount == 0 && len(n) == rows && onServer {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Go store on %s did not sync: %s", storeID, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ---- the shared Node process ----

// jsRequest is a request to interop/js/multi-client.mjs.
type jsRequest struct {
	ID        string   `json:"id"`
	URL       string   `json:"url"`
	Store     string   `json:"store"`
	Commit    []string `json:"commit,omitempty"`
	WaitRows  int      `json:"waitRows"`
	TimeoutMs int      `json:"timeoutMs"`
}

// jsAnswer is its answer.
type jsAnswer struct {
	ID       string            `json:"id"`
	ClientID string            `json:"clientId"`
	Todos    []harness.TodoRow `json:"todos"`
	Error    string            `json:"error"`
	Ready    bool              `json:"ready"`
}

// jsClients shares one Node process among the tests running at a time: the
// first user starts it, the last one to finish stops it.
type jsClients struct {
	mu    sync.Mutex
	users int
	proc  *jsProc
}

var sharedJS jsClients

type jsProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *tailBuffer
	done   chan struct{} // closed when stdout ended and the process exited
	err    error         // why it ended, valid after done

	mu      sync.Mutex
	nextID  int
	waiters map[string]chan jsAnswer
}

// useJS returns the shared Node clients, released when the test ends.
func useJS(t *testing.T) *jsClients {
	t.Helper()
	dir := harness.NPMInstalled(t)
	s := &sharedJS
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		p, err := startJSProc(dir)
		if err != nil {
			t.Fatal(err)
		}
		s.proc = p
	}
	s.users++
	t.Cleanup(s.release)
	return s
}

func (s *jsClients) release() {
	s.mu.Lock()
	s.users--
	var p *jsProc
	if s.users == 0 {
		p, s.proc = s.proc, nil
	}
	s.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

func startJSProc(dir string) (*jsProc, error) {
	cmd := exec.Command("node", "js/multi-client.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &jsProc{cmd: cmd, stderr: &tailBuffer{}, done: make(chan struct{}), waiters: map[string]chan jsAnswer{}}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node js/multi-client.mjs: %w", err)
	}
	go p.read(stdout)
	return p, nil
}

// read dispatches the answers until the process ends.
func (p *jsProc) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 1<<16), 256<<20)
	for sc.Scan() {
		var a jsAnswer
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			continue // not an answer
		}
		if a.Ready {
			continue // the greeting: requests written before it wait in the pipe
		}
		p.mu.Lock()
		ch := p.waiters[a.ID]
		delete(p.waiters, a.ID)
		p.mu.Unlock()
		if ch != nil {
			ch <- a
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	p.err = p.cmd.Wait()
	close(p.done)
}

// stop closes stdin (the process finishes what it runs and exits) and kills
// the process group if it takes longer than 30 s.
func (p *jsProc) stop() {
	_ = p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// sync runs one request and returns its answer.
func (s *jsClients) sync(ctx context.Context, req jsRequest) (jsAnswer, error) {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	ch := make(chan jsAnswer, 1)
	p.mu.Lock()
	p.nextID++
	req.ID = strconv.Itoa(p.nextID)
	p.waiters[req.ID] = ch
	p.mu.Unlock()
	line, _ := json.Marshal(req)
	p.mu.Lock() // one writer at a time: lines must not interleave
	_, err := p.stdin.Write(append(line, '\n'))
	p.mu.Unlock()
	if err != nil {
		return jsAnswer{}, fmt.Errorf("node multi-client: write request: %w", err)
	}
	select {
	case a := <-ch:
		if a.Error != "" {
			return a, fmt.Errorf("node multi-client: %s\nstderr (end):\n%s", a.Error, tailString(p.stderr.String(), 4<<10))
		}
		return a, nil
	case <-p.done:
		return jsAnswer{}, fmt.Errorf("node multi-client exited (%v)\nstderr (end):\n%s", p.err, tailString(p.stderr.String(), 8<<10))
	case <-ctx.Done():
		return jsAnswer{}, fmt.Errorf("node multi-client: no answer for %s: %w", req.Store, ctx.Err())
	}
}

// tailBuffer keeps the last 256 KiB written to it: Node logs much, and
// what explains a failure comes last.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	if over := len(b.b) - 256<<10; over > 0 {
		b.b = append(b.b[:0], b.b[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.b)
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// ---- server processes ----

// stopServe ends a serve process with SIGTERM (a graceful shutdown that
// checkpoints its database), or SIGKILL after 20 s.
func stopServe(t testing.TB, p *serveProc) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Errorf("livestore serve did not stop within 20 s of SIGTERM")
		p.kill()
	}
}

// runCLI runs the livestore binary with args and returns stdout, stderr and
// the exit error.
func runCLI(t testing.TB, timeout time.Duration, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, livestoreBinary(t), args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("livestore %s: no end within %v: %w", args[0], timeout, ctx.Err())
	}
	return stdout.String(), stderr.String(), err
}
