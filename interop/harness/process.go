package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"
)

// process is a child started in a process group of its own, so that stopping
// it also stops whatever it started (wrangler runs workerd, npx runs node).
type process struct {
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{} // closed once the child has exited
	err  error         // Wait's result, valid after done

	stopOnce sync.Once
}

func startProcess(dir string, env []string, name string, args ...string) (*process, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%s is needed by the interop tests: %w", name, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = nil // the null device
	out := &tailBuffer{limit: 256 << 10}
	cmd.Stdout = out
	cmd.Stderr = out
	setProcessGroup(cmd)
	// A grandchild that outlives the group kill must not keep Wait blocked on the pipe.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the child has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the process group to terminate and kills it after grace. The
// group is signalled even if the leader is gone: its children may not be.
// Only the first call does anything.
func (p *process) stop(grace time.Duration) {
	p.stopOnce.Do(func() {
		signalGroup(p.cmd, termSignal)
		select {
		case <-p.done:
		case <-time.After(grace):
		}
		signalGroup(p.cmd, killSignal)
		<-p.done
	})
}

// tailBuffer keeps the last limit bytes written to it; safe for concurrent use.
type tailBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	limit int
	cut   bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.limit; over > 0 {
		b.buf.Next(over)
		b.cut = true
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cut {
		return "[…earlier output dropped…]\n" + b.buf.String()
	}
	return b.buf.String()
}

// childEnv is the test's environment plus kv ("KEY=value") entries.
func childEnv(kv ...string) []string {
	return append(os.Environ(), kv...)
}
