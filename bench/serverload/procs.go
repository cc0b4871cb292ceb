package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/livestore-go/livestore/internal/lockedbuf"
	"github.com/livestore-go/livestore/syncserver/pgstore"
)

// buildLivestore builds cmd/livestore of this module into a temporary
// directory; remove deletes it.
func buildLivestore(ctx context.Context) (bin string, remove func(), err error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", nil, fmt.Errorf("find the module root: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", nil, errors.New("find the module root: not inside the livestore module")
	}
	dir, err := os.MkdirTemp("", "serverload-bin")
	if err != nil {
		return "", nil, err
	}
	bin = filepath.Join(dir, "livestore")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/livestore")
	cmd.Dir = filepath.Dir(gomod)
	if msg, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("go build ./cmd/livestore: %w\n%s", err, msg)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// startServeProcesses starts cfg.replicas `livestore serve` processes of
// bin on one new PostgreSQL schema, each on its own loopback port, and
// returns their URLs and what stops them (as an operator would: an
// interrupt, then waiting for them) and drops the schema.
func startServeProcesses(ctx context.Context, cfg config, bin string) ([]string, func() error, error) {
	if bin == "" {
		return nil, nil, errors.New("--serve-processes: cmd/livestore is not built")
	}
	schema := "serverload_" + randomHex(4)
	// Opened first: it creates the schema, and drops it at the end.
	admin, err := pgstore.Open(ctx, cfg.postgresURL, pgstore.Options{Schema: schema})
	if err != nil {
		return nil, nil, err
	}
	var procs []*serveProc
	stop := func() error {
		var errs []error
		for _, p := range procs {
			errs = append(errs, p.stop())
		}
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		errs = append(errs, admin.DropSchema(dctx))
		admin.Close()
		return errors.Join(errs...)
	}
	var urls []string
	for i := range cfg.replicas {
		p, err := startServe(ctx, bin, "--addr", "127.0.0.1:0", "--postgres", cfg.postgresURL, "--pg-schema", schema,
			"--log-level", "warn", "--admin-addr", "off")
		if err != nil {
			_ = stop()
			return nil, nil, fmt.Errorf("serve process %d: %w", i+1, err)
		}
		procs = append(procs, p)
		urls = append(urls, p.url)
	}
	return urls, stop, nil
}

// serveProc is one running `livestore serve`.
type serveProc struct {
	cmd  *exec.Cmd
	url  string
	out  *lockedbuf.Buffer // its output (stderr, and stdout after the first line)
	done chan struct{}     // closed when it has exited
	err  error             // Wait's result, after done
}

// listeningPrefix starts the line serve prints once it listens.
const listeningPrefix = "livestore sync server listening on "

// startServe starts `bin serve args...` and waits until it listens.
func startServe(ctx context.Context, bin string, args ...string) (*serveProc, error) {
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	p := &serveProc{cmd: cmd, out: &lockedbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = p.out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	urls := make(chan string, 1)
	go func() {
		// Reads until the process closes its stdout, then waits for it.
		readServeOutput(stdout, urls, p.out)
		p.err = cmd.Wait()
		close(p.done)
	}()
	select {
	case url := <-urls:
		p.url = url
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("exited (%v) before listening:\n%s", p.err, p.out.String())
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
	}
	_ = p.stop()
	return nil, fmt.Errorf("not listening after 30 s:\n%s", p.out.String())
}

// readServeOutput sends the URL of serve's listening line to urls and
// copies the rest of r to rest.
func readServeOutput(r io.Reader, urls chan<- string, rest io.Writer) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if addr, ok := strings.CutPrefix(line, listeningPrefix); ok {
			addr, _, _ = strings.Cut(addr, " ")
			select {
			case urls <- addr:
			default:
			}
			continue
		}
		fmt.Fprintln(rest, line)
	}
	_, _ = io.Copy(rest, r)
}

// stop interrupts the process, as Ctrl-C would, waits for its shutdown
// and kills it if it takes over 20 s. An exit other than a clean one is
// an error carrying its output.
func (p *serveProc) stop() error {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			return fmt.Errorf("serve process %s did not stop within 20 s; killed:\n%s", p.url, p.out.String())
		}
	}
	if p.err != nil {
		return fmt.Errorf("serve process %s: %w:\n%s", p.url, p.err, p.out.String())
	}
	return nil
}
