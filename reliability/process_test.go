package reliability

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livestore-go/livestore/internal/lockedbuf"
)

var buildOnce struct {
	sync.Once
	path string
	err  error
	out  []byte
}

// livestoreBinary builds cmd/livestore once per test run and returns its
// path, or returns the binary named by LIVESTORE_BIN.
func livestoreBinary(t testing.TB) string {
	t.Helper()
	if path := os.Getenv(envBin); path != "" {
		return path // e.g. a build of an older commit, to see which tests catch its faults
	}
	buildOnce.Do(func() {
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goTool); err != nil {
			goTool = "go"
		}
		path := filepath.Join(binDir, "livestore")
		cmd := exec.Command(goTool, "build", "-o", path, "github.com/livestore-go/livestore/cmd/livestore")
		buildOnce.out, buildOnce.err = cmd.CombinedOutput()
		buildOnce.path = path
	})
	if buildOnce.err != nil {
		t.Fatalf("go build ./cmd/livestore: %v\n%s", buildOnce.err, buildOnce.out)
	}
	return buildOnce.path
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serveProc is one `livestore serve` process. Its output is kept and shown
// if the test fails.
type serveProc struct {
	t    testing.TB
	addr string
	args []string
	cmd  *exec.Cmd
	out  *lockedbuf.Buffer
	done chan struct{} // closed when the process has exited
	wait error
}

// newOutput collects a process's output: its first MiB, enough to
// diagnose a failure.
func newOutput() *lockedbuf.Buffer { return &lockedbuf.Buffer{Max: 1 << 20} }

// startServe runs `livestore serve --addr addr args...` and waits until it
// listens. The process is killed when the test ends, if still running.
func startServe(t testing.TB, addr string, args ...string) *serveProc {
	t.Helper()
	p := &serveProc{t: t, addr: addr, args: args, out: newOutput()}
	p.start()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("output of livestore serve on %s:\n%s", addr, p.out.String())
		}
	})
	return p
}

func (p *serveProc) start() {
	t := p.t
	t.Helper()
	args := append([]string{"serve", "--addr", p.addr, "--log-level", "warn"}, p.args...)
	p.cmd = exec.Command(livestoreBinary(t), args...)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan struct{})
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		seen := false
		for sc.Scan() {
			fmt.Fprintln(p.out, sc.Text())
			if !seen && strings.Contains(sc.Text(), "listening on") {
				seen = true
				close(listening)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.wait = p.cmd.Wait()
		close(p.done)
	}()
	select {
	case <-listening:
	case <-p.done:
		t.Fatalf("livestore serve on %s exited at start (%v):\n%s", p.addr, p.wait, p.out.String())
	case <-time.After(30 * time.Second):
		p.kill()
		t.Fatalf("livestore serve on %s did not start within 30s:\n%s", p.addr, p.out.String())
	}
}

// kill sends SIGKILL and waits for the process to exit.
func (p *serveProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// restart starts the process again with the same address and arguments.
func (p *serveProc) restart() {
	p.t.Helper()
	p.kill()
	p.start()
}

func (p *serveProc) url() string { return "ws://" + p.addr }
