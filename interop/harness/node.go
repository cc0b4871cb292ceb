package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// ClientResult is what interop/js/client.mjs prints: the store's state after
// its commits reached the server and it saw the rows it waited for.
type ClientResult struct {
	StoreID     string       `json:"storeId"`
	ClientID    string       `json:"clientId"`
	Committed   int          `json:"committed"` // events this run committed
	Todos       []TodoRow    `json:"todos"`     // sorted by ID
	Annotations []Annotation `json:"annotations"`

	Raw      json.RawMessage `json:"-"` // the line as printed
	Duration time.Duration   `json:"-"` // wall time of the run
}

// TodoRow is one row of the todos table of the interop schema (js/schema.mjs).
type TodoRow struct {
	ID        string  `json:"id"`
	Text      string  `json:"text"`
	Completed bool    `json:"completed"`
	DeletedAt *string `json:"deletedAt"` // ISO-8601, as the JS Date encodes
}

// Annotation is one row of the annotations table (v1.TodoAnnotated).
type Annotation struct {
	ID   string          `json:"id"`
	Note json.RawMessage `json:"note"`
}

// RunNodeClient runs `node js/client.mjs args...` in the interop directory and
// returns its parsed output. Flags are those of client.mjs, e.g.
//
//	RunNodeClient(ctx, t, "--url", url, "--store", "s1", "--commit", "3", "--prefix", "a", "--wait-rows", "3")
//
// The process (and anything it started) is killed when ctx ends. Errors carry
// the client's stderr. It does not stop the test, so it may be called from
// several goroutines at once.
func RunNodeClient(ctx context.Context, t testing.TB, args ...string) (*ClientResult, error) {
	t.Helper()
	dir, err := npmInstalled() // no t.Fatal: callers may be other goroutines
	if err != nil {
		return nil, err
	}

	cmd := exec.CommandContext(ctx, "node", append([]string{"js/client.mjs"}, args...)...)
	cmd.Dir = dir
	cmd.Env = childEnv("NO_COLOR=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	setProcessGroup(cmd)
	cmd.Cancel = func() error {
		signalGroup(cmd, killSignal)
		return nil
	}
	cmd.WaitDelay = 5 * time.Second

	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return nil, fmt.Errorf("node client %s: %w after %v\nstderr:\n%s\nstdout:\n%s",
			strings.Join(args, " "), err, elapsed.Round(time.Millisecond), tail(stderr.String()), tail(stdout.String()))
	}

	line := bytes.TrimSpace(stdout.Bytes())
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	res := &ClientResult{Raw: json.RawMessage(line), Duration: elapsed}
	if err := json.Unmarshal(line, res); err != nil {
		return nil, fmt.Errorf("node client %s: parse output: %w\nstdout:\n%s\nstderr:\n%s",
			strings.Join(args, " "), err, tail(stdout.String()), tail(stderr.String()))
	}
	return res, nil
}

// tail shortens s to its last 8 KiB, keeping error reports readable.
func tail(s string) string {
	const max = 8 << 10
	if len(s) <= max {
		return s
	}
	return "[…]" + s[len(s)-max:]
}
