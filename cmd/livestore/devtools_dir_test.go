package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/livestore-go/livestore"
)

// TestDevtoolsDirCommand serves the page of a client store directory that
// its program holds open, and refuses --dir together with a sync storage.
func TestDevtoolsDirCommand(t *testing.T) {
	app := newTodoApp(t)
	schema, created := app.schema, app.created
	dir := t.TempDir()
	store, err := livestore.Open(context.Background(), schema, livestore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i := range 3 {
		if err := store.Commit(context.Background(), created.New(todoCreated{ID: fmt.Sprint("t", i), Text: "todo"})); err != nil {
			t.Fatal(err)
		}
	}

	if code, _, stderr := runCLI(t, "devtools", "--dir", dir, "--data", t.TempDir()); code != 2 || !strings.Contains(stderr, "give one") {
		t.Fatalf("--dir with --data: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, "devtools", "--dir", t.TempDir(), "--addr", "127.0.0.1:0"); code != 1 || !strings.Contains(stderr, "not a store directory") {
		t.Fatalf("--dir of no store: exit %d, %s", code, stderr)
	}

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"devtools", "--dir", dir, "--addr", "127.0.0.1:0"}, pw, &stderr)
		pw.Close()
	}()
	first, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("devtools printed nothing: %v; exit %d, stderr %s", err, <-code, stderr.String())
	}
	go io.Copy(io.Discard, pr)
	base := strings.TrimSpace(strings.TrimPrefix(first, "livestore devtools on "))
	resp, err := http.Get(base + "api/info")
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Mode string `json:"mode"`
	}
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil || info.Mode != "dir" {
		t.Fatalf("info: %+v %v", info, err)
	}
	resp, err = http.Get(base + "api/events?limit=2")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"seq":"e2"`) || !strings.Contains(string(b), `"next":"e2"`) {
		t.Fatalf("events: %s", b)
	}
	// A live stream open at shutdown ends with it.
	live, err := http.Get(base + "api/live")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Body.Close()
	line, err := bufio.NewReader(live.Body).ReadString('\n')
	if err != nil || live.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("live stream: %q %v", line, err)
	}
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("exit %d: %s", c, stderr.String())
	}
}
