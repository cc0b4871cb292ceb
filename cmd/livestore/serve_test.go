package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver/pgstore/pgtest"
)

func TestMain(m *testing.M) {
	if args := os.Getenv(serveArgsEnv); args != "" {
		os.Exit(runAsCommand(args))
	}
	goleak.VerifyTestMain(m)
}

// startServe runs "livestore serve args..." and returns its ws:// address,
// a function that stops it (as SIGINT would) and returns its exit status.
func startServe(t *testing.T, args ...string) (string, func() int) {
	t.Helper()
	s := launchServe(t, args...)
	return s.addr, s.stop
}

// serveRun is a "livestore serve" running in this process.
type serveRun struct {
	addr  string      // from the first line, e.g. ws://127.0.0.1:40000
	lines chan string // the lines printed after the first
	stop  func() int  // stops it as SIGINT would; returns the exit status
}

// launchServe runs "livestore serve --addr 127.0.0.1:0 args..." (a later
// --addr in args wins) until the test ends or stop is called.
func launchServe(t *testing.T, args ...string) *serveRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), pw, &stderr)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		cancel()
		t.Fatalf("serve printed nothing; exit %d, stderr:\n%s", <-code, stderr.String())
	}
	first := lines.Text()
	rest := make(chan string, 16)
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		defer close(rest)
		for lines.Scan() {
			select {
			case rest <- lines.Text():
			default: // nobody asked for it
			}
		}
	}()
	const prefix = "livestore sync server listening on "
	if !strings.HasPrefix(first, prefix) {
		cancel()
		t.Fatalf("unexpected first line %q", first)
	}
	stopped := false
	s := &serveRun{addr: strings.Fields(strings.TrimPrefix(first, prefix))[0], lines: rest}
	s.stop = func() int {
		if stopped {
			return 0
		}
		stopped = true
		cancel()
		c := <-code
		readers.Wait()
		return c
	}
	t.Cleanup(func() { s.stop() })
	return s
}

// nextLine returns the next line serve printed after the first.
func (s *serveRun) nextLine(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-s.lines:
		if !ok {
			t.Fatal("serve printed no further line")
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("serve printed no further line in 10 s")
	}
	return ""
}

func TestServeSQLite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	addr, stop := startServe(t, "--data", dir, "--log-level", "warn")
	exerciseServer(t, addr)
	if code := stop(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "sync.db")); err != nil {
		t.Fatal(err)
	}
	// The data survives a restart.
	addr, stop = startServe(t, "--data", dir, "--log-level", "warn")
	c, err := syncclient.Dial(t.Context(), addr, syncclient.Options{StoreID: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.Pull(t.Context(), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.Next(t.Context())
	if err != nil || len(p.Batch) != 3 {
		t.Fatalf("after restart: %d events, %v", len(p.Batch), err)
	}
	c.Close()
	if code := stop(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
}

func TestServePostgres(t *testing.T) {
	addr, stop := startServe(t, "--postgres", pgtest.URL(t), "--pg-schema", pgtest.Schema(t), "--log-level", "warn")
	exerciseServer(t, addr)
	if code := stop(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
}

func exerciseServer(t *testing.T, addr string) {
	t.Helper()
	ctx := t.Context()
	resp, err := http.Get("http" + strings.TrimPrefix(addr, "ws") + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("health: %d", resp.StatusCode)
	}
	c, err := syncclient.Dial(ctx, addr, syncclient.Options{StoreID: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	batch := []syncproto.Event{
		{Name: "v1.A", Args: []byte(`{}`), SeqNum: 1, ParentSeqNum: 0, ClientID: "c", SessionID: "s"},
		{Name: "v1.A", Args: []byte(`{}`), SeqNum: 2, ParentSeqNum: 1, ClientID: "c", SessionID: "s"},
		{Name: "v1.A", Args: []byte(`{}`), SeqNum: 3, ParentSeqNum: 2, ClientID: "c", SessionID: "s"},
	}
	if err := c.Push(ctx, batch, nil); err != nil {
		t.Fatal(err)
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{nil, 2, "Usage: livestore <command>"},
		{[]string{"help"}, 0, "serve"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"serve", "-h"}, 0, "--postgres"},
		{[]string{"serve", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"serve", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"serve", "--log-level", "loud"}, 2, "--log-level"},
		{[]string{"serve", "--addr", "256.0.0.1:1", "--data", t.TempDir()}, 1, "listen on"},
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
}

// --max-storage-bytes bounds what clients can make the server store: pushes
// past it fail, and every acknowledged one is kept.
func TestServeMaxStorageBytes(t *testing.T) {
	dir := t.TempDir()
	addr, stop := startServe(t, "--data", dir, "--log-level", "error", "--max-storage-bytes", "200000")
	c, err := syncclient.Dial(t.Context(), addr, syncclient.Options{StoreID: "big"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	args := []byte(`{"x":"` + strings.Repeat("a", 10000) + `"}`)
	var acked int64
	var perr error
	for ; acked < 100; acked++ {
		e := syncproto.Event{Name: "v1.A", Args: args, SeqNum: acked + 1, ParentSeqNum: acked, ClientID: "c", SessionID: "s"}
		if perr = c.Push(t.Context(), []syncproto.Event{e}, nil); perr != nil {
			break
		}
	}
	if perr == nil || acked < 5 {
		t.Fatalf("%d pushes of 10 KB acknowledged under a 200 KB bound, then %v", acked, perr)
	}
	c.Close()
	if code := stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	code, out, stderr := runCLI(t, "inspect", "--data", dir, "big")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("events     %d\n", acked)) {
		t.Fatalf("after the bound: exit %d, %s%s; want %d events", code, out, stderr, acked)
	}
}
