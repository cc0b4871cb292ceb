package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serveArgsEnv names the variable that makes this test binary run
// "livestore" with the JSON array of arguments it holds, as the real
// command would (see TestMain), instead of the tests.
const serveArgsEnv = "LIVESTORE_TEST_SERVE_ARGS"

// runAsCommand runs the command line of serveArgsEnv until SIGINT and
// returns its exit status.
func runAsCommand(args string) int {
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return run(ctx, argv, os.Stdout, os.Stderr)
}

// startServeProcess runs "livestore serve args..." in a child process (this
// test binary) and waits for its first line.
func startServeProcess(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd, _ := startServeProcessEnv(t, nil, args...)
	return cmd
}

// startServeProcessEnv is startServeProcess with env added to the child's
// environment; it also returns the address serve listens on.
func startServeProcessEnv(t *testing.T, env []string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	argv, _ := json.Marshal(append([]string{"serve", "--addr", "127.0.0.1:0", "--log-level", "warn"}, args...))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), env...), serveArgsEnv+"="+string(argv))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	const prefix = "livestore sync server listening on "
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, prefix) {
		t.Fatalf("first serve: %q, %v", line, err)
	}
	return cmd, strings.Fields(strings.TrimPrefix(line, prefix))[0]
}

// A second serve on a data directory in use exits at once naming the
// holder; the lock goes with the holder, however it ends.
func TestServeDataDirOwner(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	first := startServeProcess(t, "--data", data)

	argv, _ := json.Marshal([]string{"serve", "--addr", "127.0.0.1:0", "--data", data})
	// A second serve that starts would run until killed.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	second.Env = append(os.Environ(), serveArgsEnv+"="+string(argv))
	var stdout, stderr bytes.Buffer
	second.Stdout, second.Stderr = &stdout, &stderr
	start := time.Now()
	err := second.Run()
	took := time.Since(start)
	want := fmt.Sprintf("pid %d", first.Process.Pid)
	if second.ProcessState.ExitCode() != 1 || !strings.Contains(stderr.String(), want) || !strings.Contains(stderr.String(), data) || stdout.Len() != 0 {
		t.Fatalf("second serve: %v, stdout %q, stderr %q; want exit 1 naming %q and %s", err, stdout.String(), stderr.String(), want, data)
	}
	if took > 5*time.Second {
		t.Errorf("second serve took %v to refuse", took)
	}

	// Ended by SIGINT, and by SIGKILL: the next serve starts.
	if err := first.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("first serve after SIGINT: %v", err)
	}
	third := startServeProcess(t, "--data", data)
	if err := third.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	third.Wait()
	_, stop := startServe(t, "--data", data, "--log-level", "warn")
	if code := stop(); code != 0 {
		t.Fatalf("serve after the holders ended: exit %d", code)
	}
}
