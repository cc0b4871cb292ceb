package main

import (
	"bufio"
	"bytes"
	"context"
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

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startServe runs "livestore serve args..." and returns its ws:// address,
// a function that stops it (as SIGINT would) and returns its exit status.
func startServe(t *testing.T, args ...string) (string, func() int) {
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
	var rest sync.WaitGroup
	rest.Add(1)
	go func() {
		defer rest.Done()
		for lines.Scan() {
		}
	}()
	const prefix = "livestore sync server listening on "
	if !strings.HasPrefix(first, prefix) {
		cancel()
		t.Fatalf("unexpected first line %q", first)
	}
	addr := strings.Fields(strings.TrimPrefix(first, prefix))[0]
	stopped := false
	stop := func() int {
		if stopped {
			return 0
		}
		stopped = true
		cancel()
		c := <-code
		rest.Wait()
		return c
	}
	t.Cleanup(func() { stop() })
	return addr, stop
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
