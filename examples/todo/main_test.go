package main

import (
	"bufio"
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

func TestTodoProgram(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	do := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(ctx, append([]string{"-dir", dir}, args...), &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.String()
	}
	id := strings.TrimSpace(strings.TrimPrefix(do("add", "Buy milk"), "added "))
	do("add", "Walk the dog")
	do("done", id)
	list := do("list")
	if !strings.Contains(list, "[x] "+id+"  Buy milk") || !strings.Contains(list, "[ ] ") {
		t.Fatalf("list:\n%s", list)
	}
	log := do("log")
	if !strings.Contains(log, "e1 ") || !strings.Contains(log, "e3 ") || !strings.Contains(log, "v1.TodoCompleted") {
		t.Fatalf("log:\n%s", log)
	}
	do("delete", id)
	if strings.Contains(do("list"), "Buy milk") {
		t.Fatal("deleted todo still listed")
	}
	if err := run(ctx, []string{"-dir", dir, "done", "nope"}, &bytes.Buffer{}); err == nil {
		t.Fatal("done of an unknown id succeeded")
	}
}

// Two todo processes share one list through a real sync server on loopback:
// an item added in one appears in the other's watch output within 2 s.
func TestTodoProcessesShareAListThroughTheSyncServer(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "todo")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := syncserver.New(syncserver.Options{Storage: st})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv)
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http")

	watcher := exec.Command(bin, "--dir", t.TempDir(), "--sync", url, "--store", "shared-list", "watch")
	var stderr bytes.Buffer
	watcher.Stderr = &stderr
	pipe, err := watcher.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watcher.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		// An interrupt ends watch cleanly (exit status 0).
		if err := watcher.Process.Signal(os.Interrupt); err != nil {
			t.Errorf("interrupt watch: %v", err)
		}
		for range lines {
		}
		if err := watcher.Wait(); err != nil {
			t.Errorf("watch: %v\n%s", err, stderr.String())
		}
	}
	defer stop()
	// awaitLine reads watch output until a line contains want.
	awaitLine := func(want string, within time.Duration) {
		t.Helper()
		timer := time.NewTimer(within)
		defer timer.Stop()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("watch ended before %q\n%s", want, stderr.String())
				}
				if strings.Contains(l, want) {
					return
				}
			case <-timer.C:
				t.Fatalf("no %q in watch output within %s", want, within)
			}
		}
	}
	awaitLine("-- connected", 20*time.Second)

	other := t.TempDir()
	todo := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"--dir", other, "--sync", url, "--store", "shared-list"}, args...)...).CombinedOutput()
		if err != nil || strings.Contains(string(out), "not synced") {
			t.Fatalf("todo %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// add returns once the server has the item (or after --wait): the
	// watcher has 2 s from then, and the whole run of add is logged too.
	began := time.Now()
	id := strings.TrimSpace(strings.TrimPrefix(todo("add", "Buy milk"), "added "))
	awaitLine("[ ] "+id+"  Buy milk", 2*time.Second)
	t.Logf("add process started → item in watch output: %v", time.Since(began))
	began = time.Now()
	todo("done", id)
	awaitLine("[x] "+id+"  Buy milk", 2*time.Second)
	t.Logf("done process started → change in watch output: %v", time.Since(began))
	// A third process, started afresh, lists what the others did.
	if list := todo("--dir", t.TempDir(), "list"); !strings.Contains(list, "[x] "+id+"  Buy milk") {
		t.Fatalf("list of a new client:\n%s", list)
	}
	stop()
}
