package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// Workload 6 runs three processes per run: the Go sync server (package
// syncserver with its SQLite storage, as `livestore serve` runs it), a
// reader client and a writer client of one implementation. The reader opens
// its store, connects, subscribes to the row count and reports ready; then
// the writer opens its store, connects and commits the events in batches.
// The time is from the writer's first commit until the reader's subscriber
// saw the last row, both read from the wall clock of this machine.

// syncStoreID is the store both clients sync; every run has a fresh server.
const syncStoreID = "bench-sync"

// runServer serves the sync protocol on a loopback port until stdin closes.
// Its first stdout line is {"url": ...}.
func runServer(_ context.Context, a childArgs) (result, error) {
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		return result{}, err
	}
	st, err := sqlitestore.Open(filepath.Join(a.dir, "sync.db"), sqlitestore.Options{})
	if err != nil {
		return result{}, err
	}
	defer st.Close()
	srv, err := syncserver.New(syncserver.Options{Storage: st})
	if err != nil {
		return result{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return result{}, err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	if err := json.NewEncoder(os.Stdout).Encode(map[string]string{"url": "ws://" + ln.Addr().String()}); err != nil {
		return result{}, err
	}
	io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	herr := hs.Shutdown(ctx)
	serr := srv.Shutdown(ctx)
	<-served
	return result{}, errors.Join(herr, serr)
}

// goSync is one client of workload 6 on livestore-go (-role reader or
// writer).
func goSync(ctx context.Context, app *benchApp, a childArgs) (result, error) {
	s, err := livestore.Open(ctx, app.schema, livestore.Options{
		Dir:     a.dir,
		StoreID: syncStoreID,
		Sync:    &livestore.SyncOptions{Backend: syncclient.WebSocketBackend(a.url, syncclient.Options{})},
	})
	if err != nil {
		return result{}, err
	}
	defer s.Close()
	if err := waitSync(ctx, s, func(st livestore.SyncStatus) bool { return st.Connected }); err != nil {
		return result{}, fmt.Errorf("connect: %w", err)
	}
	switch a.role {
	case "reader":
		seen := make(chan time.Time, 1)
		q := livestore.QueryDBFirst(app.todos.Count(), countRow{}, "todo count")
		unsub, err := livestore.Subscribe(ctx, s, q, func(c countRow) {
			if c.Count >= a.n {
				select {
				case seen <- time.Now():
				default:
				}
			}
		})
		if err != nil {
			return result{}, err
		}
		defer unsub()
		if err := printReady(); err != nil {
			return result{}, err
		}
		select {
		case end := <-seen:
			return result{EndUnixMS: unixMS(end)}, nil
		case <-time.After(10 * time.Minute):
			return result{}, errors.New("the reader never saw all rows")
		}
	case "writer":
		if err := printReady(); err != nil {
			return result{}, err
		}
		start := a.begin()
		if err := app.seedTodos(ctx, s, a.n, a.batch); err != nil {
			return result{}, err
		}
		d := a.end(start)
		// Stay connected until the harness has seen the reader finish.
		io.Copy(io.Discard, os.Stdin)
		return result{MS: ms(d), StartUnixMS: unixMS(start)}, nil
	}
	return result{}, fmt.Errorf("-role must be reader or writer, got %q", a.role)
}

func waitSync(ctx context.Context, s *livestore.Store, ok func(livestore.SyncStatus) bool) error {
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := s.SyncStatus(ctx)
		if err != nil {
			return err
		}
		if ok(st) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sync status stayed %+v", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func printReady() error { return json.NewEncoder(os.Stdout).Encode(map[string]bool{"ready": true}) }

func unixMS(t time.Time) float64 { return float64(t.UnixNano()) / 1e6 }

// longChild is a child process that reports a first line (ready, or the
// server's address) before its result and stops when its stdin is closed.
type longChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr bytes.Buffer
	waited chan error
}

func startLong(cmd *exec.Cmd) (*longChild, error) {
	c := &longChild{cmd: cmd, lines: make(chan string, 16), waited: make(chan error, 1)}
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = &c.stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "{") {
				c.lines <- line
			}
		}
		close(c.lines)
		c.waited <- cmd.Wait()
	}()
	return c, nil
}

// line returns the next JSON line the child printed.
func (c *longChild) line(ctx context.Context, v any) error {
	select {
	case l, ok := <-c.lines:
		if !ok {
			err := <-c.waited
			c.waited <- err
			return fmt.Errorf("%s exited (%v) before reporting\nstderr:\n%s", c.name(), err, tail(c.stderr.String()))
		}
		return json.Unmarshal([]byte(l), v)
	case <-ctx.Done():
		return fmt.Errorf("%s: %w\nstderr:\n%s", c.name(), ctx.Err(), tail(c.stderr.String()))
	}
}

func (c *longChild) name() string { return strings.Join(c.cmd.Args, " ") }

// finish closes stdin, reads the result line and waits for the exit.
func (c *longChild) finish(ctx context.Context) (result, error) {
	c.stdin.Close()
	var res result
	err := c.line(ctx, &res)
	if err != nil {
		c.kill()
		return res, err
	}
	select {
	case werr := <-c.waited:
		if werr != nil {
			return res, fmt.Errorf("%s: %w\nstderr:\n%s", c.name(), werr, tail(c.stderr.String()))
		}
	case <-ctx.Done():
		c.kill()
		return res, ctx.Err()
	}
	res.MaxRSSKB = maxRSSKB(c.cmd.ProcessState)
	return res, nil
}

func (c *longChild) kill() {
	if c.cmd.Process != nil {
		c.cmd.Process.Kill()
	}
}

// syncWorkload runs workload 6 for the Go and JS clients (the floor has no
// sync counterpart; go-process would differ from go only in the clients'
// local fsyncs).
func (r *runner) syncWorkload(ctx context.Context, wr workloadReport) (workloadReport, error) {
	wr.Note = "time from the writer's first commit (batches of " + thousands(r.cfg.sizes.SyncBatch) +
		" events) until the reader's subscriber saw the last row, both through the Go sync server (syncserver + sqlitestore) on loopback; peak RSS is the larger of the two clients"
	var impls []string
	for _, impl := range r.cfg.impls {
		if impl == implGo || impl == implJS {
			impls = append(impls, impl)
		}
	}
	var serverRSS float64
	for run := 0; run < r.cfg.runs; run++ {
		for i := range impls {
			impl := impls[(i+run)%len(impls)]
			res, srvKB, err := r.syncRun(ctx, impl)
			if err != nil {
				return wr, fmt.Errorf("%s run %d: %w", impl, run+1, err)
			}
			serverRSS = max(serverRSS, float64(srvKB)/1024)
			ir := wr.Results[impl]
			if ir == nil {
				ir = &implResult{}
				wr.Results[impl] = ir
			}
			ir.Runs = append(ir.Runs, res)
			fmt.Fprintf(r.log, "%-13s %-5s run %d/%d: %s\n", wSync, impl, run+1, r.cfg.runs, res.summary())
		}
	}
	wr.Note += fmt.Sprintf("; the server's peak RSS was %.0f MiB", serverRSS)
	wr.summarize(r.cfg.sizes)
	return wr, nil
}

// syncRun is one run of workload 6: server, reader, writer.
func (r *runner) syncRun(ctx context.Context, impl string) (result, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(r.cfg.sizes.JSTimeoutSec)*time.Second)
	defer cancel()
	dir := r.newDir(impl, wSync)
	defer func() {
		if !r.cfg.keep {
			os.RemoveAll(dir)
		}
	}()
	srvCmd := exec.CommandContext(ctx, r.exe, childArgs{impl: "server", workload: wSync, dir: filepath.Join(dir, "server")}.flags()...)
	srvCmd.Env = append(os.Environ(), childEnv+"=1")
	srv, err := startLong(srvCmd)
	if err != nil {
		return result{}, 0, err
	}
	defer srv.kill()
	var addr struct{ URL string }
	if err := srv.line(ctx, &addr); err != nil {
		return result{}, 0, err
	}
	client := func(role string) (*longChild, error) {
		a := r.args(impl, wSync)
		a.url, a.role, a.dir = addr.URL, role, filepath.Join(dir, role)
		var cmd *exec.Cmd
		if impl == implJS {
			cmd = r.node.command(ctx, append(a.nodeFlags(), "--timeout-ms", fmt.Sprint(r.cfg.sizes.JSTimeoutSec*1000)))
		} else {
			cmd = exec.CommandContext(ctx, r.exe, a.flags()...)
			cmd.Env = append(os.Environ(), childEnv+"=1")
		}
		c, err := startLong(cmd)
		if err != nil {
			return nil, err
		}
		var ready struct{ Ready bool }
		if err := c.line(ctx, &ready); err != nil {
			c.kill()
			return nil, err
		}
		return c, nil
	}
	reader, err := client("reader")
	if err != nil {
		return result{}, 0, err
	}
	defer reader.kill()
	writer, err := client("writer")
	if err != nil {
		return result{}, 0, err
	}
	defer writer.kill()
	rres, err := reader.finish(ctx)
	if err != nil {
		return result{}, 0, fmt.Errorf("reader: %w", err)
	}
	wres, err := writer.finish(ctx)
	if err != nil {
		return result{}, 0, fmt.Errorf("writer: %w", err)
	}
	sres, err := srv.finish(ctx)
	if err != nil {
		return result{}, 0, fmt.Errorf("server: %w", err)
	}
	if wres.StartUnixMS == 0 || rres.EndUnixMS == 0 {
		return result{}, 0, fmt.Errorf("missing times: writer %+v, reader %+v", wres, rres)
	}
	res := result{
		MS:       rres.EndUnixMS - wres.StartUnixMS,
		MaxRSSKB: max(rres.MaxRSSKB, wres.MaxRSSKB),
	}
	return res, sres.MaxRSSKB, nil
}
