package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// childEnv marks a process started by the harness to run one workload of the
// Go or floor implementation; its stdout then carries one JSON result line.
const childEnv = "LIVESTORE_COMPARE_CHILD"

// result is what one process reports for one run of one workload.
type result struct {
	// MS is the workload's time: for Go and the floor until the last commit
	// returned (durable) or the subscriber saw the result; for JS until
	// commit returned / the subscriber saw the result, before persistence.
	MS float64 `json:"ms"`
	// PersistedMS is, for JS, the time until the eventlog database file
	// held the last event.
	PersistedMS *float64 `json:"persistedMs,omitempty"`
	// P50US is the median latency of one iteration (workloads 4 and 5).
	P50US float64 `json:"p50Us,omitempty"`
	// Callbacks counts subscriber calls during workload 5.
	Callbacks int `json:"callbacks,omitempty"`
	// StartUnixMS and EndUnixMS are wall-clock times (ms since 1970) of the
	// writer's first commit and of the reader seeing the last row (6).
	StartUnixMS float64 `json:"startUnixMs,omitempty"`
	EndUnixMS   float64 `json:"endUnixMs,omitempty"`
	// Check is empty, or what was wrong with the outcome.
	Check string `json:"check,omitempty"`
	// MaxRSSKB is the child's peak resident set, filled in by the parent.
	MaxRSSKB int64 `json:"maxRssKB"`
}

// childArgs are the flags of one child run.
type childArgs struct {
	impl, workload, phase, dir, cpuProfile string
	url, role                              string
	n, batch, rows, commits, queries       int
	workers                                int // goroutines committing at once (7)

	prof *phaseProfile // set in the child when cpuProfile is
}

// phaseProfile records a CPU profile of the measured phase only (not of
// opening stores or seeding them).
type phaseProfile struct {
	f       *os.File
	running bool
}

// begin starts the measured phase.
func (a childArgs) begin() time.Time {
	if a.prof != nil && !a.prof.running {
		if err := pprof.StartCPUProfile(a.prof.f); err == nil {
			a.prof.running = true
		}
	}
	return time.Now()
}

// end ends the measured phase that began at t0.
func (a childArgs) end(t0 time.Time) time.Duration {
	d := time.Since(t0)
	if a.prof != nil && a.prof.running {
		pprof.StopCPUProfile()
		a.prof.running = false
	}
	return d
}

func (a childArgs) flags() []string {
	return []string{
		"-impl", a.impl, "-workload", a.workload, "-phase", a.phase, "-dir", a.dir,
		"-cpuprofile", a.cpuProfile, "-url", a.url, "-role", a.role,
		"-n", strconv.Itoa(a.n), "-batch", strconv.Itoa(a.batch), "-rows", strconv.Itoa(a.rows),
		"-commits", strconv.Itoa(a.commits), "-queries", strconv.Itoa(a.queries),
		"-workers", strconv.Itoa(a.workers),
	}
}

// nodeFlags are the same arguments for js/bench.mjs.
func (a childArgs) nodeFlags() []string {
	f := []string{
		"--workload", a.workload, "--phase", a.phase, "--dir", a.dir,
		"--n", strconv.Itoa(a.n), "--batch", strconv.Itoa(a.batch), "--rows", strconv.Itoa(a.rows),
		"--commits", strconv.Itoa(a.commits), "--queries", strconv.Itoa(a.queries),
	}
	if a.url != "" {
		f = append(f, "--url", a.url)
	}
	if a.role != "" {
		f = append(f, "--role", a.role)
	}
	return f
}

// childMain runs one workload in this process and prints its result.
func childMain(args []string) int {
	var a childArgs
	fs := flag.NewFlagSet("child", flag.ContinueOnError)
	fs.StringVar(&a.impl, "impl", "", "")
	fs.StringVar(&a.workload, "workload", "", "")
	fs.StringVar(&a.phase, "phase", "run", "")
	fs.StringVar(&a.dir, "dir", "", "")
	fs.StringVar(&a.cpuProfile, "cpuprofile", "", "")
	fs.StringVar(&a.url, "url", "", "")
	fs.StringVar(&a.role, "role", "", "")
	fs.IntVar(&a.n, "n", 0, "")
	fs.IntVar(&a.batch, "batch", 1000, "")
	fs.IntVar(&a.rows, "rows", 0, "")
	fs.IntVar(&a.commits, "commits", 0, "")
	fs.IntVar(&a.queries, "queries", 0, "")
	fs.IntVar(&a.workers, "workers", 1, "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if a.cpuProfile != "" {
		f, err := os.Create(a.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		a.prof = &phaseProfile{f: f}
	}
	var (
		res result
		err error
	)
	ctx := context.Background()
	switch a.impl {
	case implGo, implGoProcess:
		res, err = runGo(ctx, a)
	case implFloor:
		res, err = runFloor(ctx, a)
	case "server":
		res, err = runServer(ctx, a)
	default:
		err = fmt.Errorf("unknown implementation %q", a.impl)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s %s: %v\n", a.impl, a.workload, err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 1
	}
	return 0
}

// runChild runs cmd, which prints one JSON result line, and adds its peak
// RSS.
func runChild(ctx context.Context, cmd *exec.Cmd) (result, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return result{}, fmt.Errorf("%s: %w after %v\nstderr:\n%s", strings.Join(cmd.Args, " "), err,
			time.Since(start).Round(time.Millisecond), tail(stderr.String()))
	}
	line := bytes.TrimSpace(stdout.Bytes())
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	var res result
	if err := json.Unmarshal(line, &res); err != nil {
		return result{}, fmt.Errorf("%s: parse result: %w\nstdout:\n%s\nstderr:\n%s", strings.Join(cmd.Args, " "), err,
			tail(stdout.String()), tail(stderr.String()))
	}
	res.MaxRSSKB = maxRSSKB(cmd.ProcessState)
	if res.Check != "" {
		return res, errors.New(res.Check)
	}
	return res, nil
}

func tail(s string) string {
	const max = 8 << 10
	if len(s) <= max {
		return s
	}
	return "[…]" + s[len(s)-max:]
}
