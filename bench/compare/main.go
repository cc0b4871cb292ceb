// Command compare runs the same workloads on livestore-go, on JS LiveStore
// 0.4.0 (Node, @livestore/adapter-node with fs storage) and on the physical
// floor (the same SQL writes through the same SQLite driver, without
// LiveStore), each run in its own process, and writes a table of the
// results:
//
//	go run ./bench/compare              # full sizes, 5 runs, writes bench/results/
//	go run ./bench/compare -quick       # small sizes, 1 run, prints the table
//
// See README.md for the workloads, what each number means and the flags.
// The harness only measures: it checks each run's result enough to know the
// work was done, but correctness is the tests' business, and the sync
// server's load is measured by bench/serverload.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// config is what the command-line flags select.
type config struct {
	quick      bool
	runs       int
	impls      []string
	workloads  []string
	out        string // directory for results.md and results.json; "" writes none
	interopDir string
	profileDir string // CPU profiles of the Go runs, when set
	tmpDir     string
	keep       bool
	sizes      sizes
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var (
		cfg                config
		impls, workloads   string
		out                string
		outSet, interopSet bool
	)
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&cfg.quick, "quick", false, "small sizes and 1 run: a smoke test of the whole harness (< 60 s)")
	fs.IntVar(&cfg.runs, "runs", 0, "runs per workload and implementation (default 5, 1 with -quick)")
	fs.StringVar(&impls, "impl", strings.Join(allImpls, ","), "implementations to run: go, floor, js")
	fs.StringVar(&workloads, "workload", strings.Join(allWorkloads, ","), "workloads to run: "+strings.Join(allWorkloads, ", "))
	fs.StringVar(&out, "out", "", "directory for results.md and results.json (default: bench/results of the module for a full run, none with -quick)")
	fs.StringVar(&cfg.interopDir, "interop", "", "the interop directory holding node_modules (default: interop/ of the module)")
	fs.StringVar(&cfg.profileDir, "cpuprofile", "", "directory to write a CPU profile of each Go workload's first run to")
	fs.StringVar(&cfg.tmpDir, "tmp", "", "directory for the stores written during the runs (default: the system temp dir)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the stores written during the runs")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "out":
			outSet = true
		case "interop":
			interopSet = true
		}
	})
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	cfg.sizes = fullSizes
	if cfg.quick {
		cfg.sizes = quickSizes
	}
	if cfg.runs <= 0 {
		cfg.runs = cfg.sizes.DefaultRuns
	}
	var err error
	if cfg.impls, err = pick("-impl", impls, allImpls); err != nil {
		return cfg, err
	}
	if cfg.workloads, err = pick("-workload", workloads, allWorkloads); err != nil {
		return cfg, err
	}
	var root string
	if !outSet || !interopSet {
		if root, err = moduleRoot(); err != nil && (!interopSet || (!outSet && !cfg.quick)) {
			return cfg, err
		}
	}
	switch {
	case outSet:
		cfg.out = out
	case !cfg.quick:
		cfg.out = filepath.Join(root, "bench", "results")
	}
	if !interopSet {
		cfg.interopDir = filepath.Join(root, "interop")
	}
	return cfg, nil
}

func pick(flagName, list string, known []string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(known, s) {
			return nil, fmt.Errorf("%s: unknown %q (known: %s)", flagName, s, strings.Join(known, ", "))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty", flagName)
	}
	// Keep the canonical order whatever the flag's order.
	slices.SortFunc(out, func(a, b string) int { return slices.Index(known, a) - slices.Index(known, b) })
	return out, nil
}

// moduleRoot is the directory of the go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory; pass -out and -interop")
		}
		dir = parent
	}
}

func main() {
	if os.Getenv(childEnv) == "1" {
		os.Exit(childMain(os.Args[1:]))
	}
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(2)
	}
	// Ctrl-C cancels the context, which kills the running child processes.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, runErr := run(ctx, cfg, os.Stderr)
	if rep == nil {
		fmt.Fprintln(os.Stderr, "compare:", runErr)
		os.Exit(1)
	}
	fmt.Print(rep.markdown())
	if cfg.out != "" {
		if err := rep.write(cfg.out); err != nil {
			fmt.Fprintln(os.Stderr, "compare:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "wrote %s and %s\n", filepath.Join(cfg.out, "results.md"), filepath.Join(cfg.out, "results.json"))
	}
	if runErr != nil {
		fmt.Fprintln(os.Stderr, "compare: some workloads failed:", runErr)
		os.Exit(1)
	}
}

// runner runs the child processes of one invocation.
type runner struct {
	cfg     config
	log     io.Writer
	exe     string
	scratch string
	node    *nodeEnv
	seq     int
	// batchDirs holds, per implementation, the store the last commit-batch
	// run left behind; boot reuses it when the sizes match instead of
	// writing the same store again (minutes for JS at full size).
	batchDirs map[string]string
}

// run measures every selected workload on every selected implementation.
func run(ctx context.Context, cfg config, log io.Writer) (*report, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	scratch, err := os.MkdirTemp(cfg.tmpDir, "livestore-compare-")
	if err != nil {
		return nil, err
	}
	if cfg.keep {
		fmt.Fprintf(log, "stores are kept in %s\n", scratch)
	} else {
		defer os.RemoveAll(scratch)
	}
	r := &runner{cfg: cfg, log: log, exe: exe, scratch: scratch, batchDirs: map[string]string{}}
	if slices.Contains(cfg.impls, implJS) {
		if r.node, err = newNodeEnv(cfg.interopDir, scratch); err != nil {
			return nil, err
		}
	}
	if cfg.profileDir != "" {
		if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
			return nil, err
		}
	}
	rep := newReport(cfg, r.node)
	start := time.Now()
	var errs []error
	for _, w := range cfg.workloads {
		wr, err := r.workload(ctx, w)
		if err != nil {
			// Keep going: one failed workload should not cost the others'
			// numbers. The failure is reported in the table and returned.
			err = fmt.Errorf("%s: %w", w, err)
			fmt.Fprintln(log, err)
			wr = workloadReport{Name: w, Title: cfg.sizes.title(w), Gap: "failed: " + firstLine(err.Error())}
			errs = append(errs, err)
		}
		rep.Workloads = append(rep.Workloads, wr)
	}
	rep.compareSingle()
	rep.finish(time.Since(start))
	return rep, errors.Join(errs...)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func (r *runner) newDir(impl, w string) string {
	r.seq++
	return filepath.Join(r.scratch, fmt.Sprintf("%s-%s-%d", impl, w, r.seq))
}

// args are the child arguments of workload w for impl, without dir.
func (r *runner) args(impl, w string) childArgs {
	s := r.cfg.sizes
	a := childArgs{impl: impl, workload: w, phase: "run", batch: s.BatchSize}
	switch w {
	case wCommitSingle:
		a.n = s.SingleN
	case wCommitBatch:
		a.n = s.BatchN
	case wBoot:
		a.n = s.BootN
	case wLiveQuery:
		a.rows, a.commits = s.LiveRows, s.LiveCommits
	case wFanout:
		a.queries, a.commits = s.FanQueries, s.FanCommits
	case wSync:
		a.n, a.batch = s.SyncN, s.SyncBatch
	case wConcurrent:
		a.n, a.workers = s.ConcN, s.ConcWorkers
	}
	return a
}

// child runs one process of impl with a.
func (r *runner) child(ctx context.Context, a childArgs) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(r.cfg.sizes.JSTimeoutSec)*time.Second)
	defer cancel()
	var cmd *exec.Cmd
	if a.impl == implJS {
		cmd = r.node.command(ctx, append(a.nodeFlags(), "--timeout-ms", fmt.Sprint(r.cfg.sizes.JSTimeoutSec*1000)))
	} else {
		cmd = exec.CommandContext(ctx, r.exe, a.flags()...)
		cmd.Env = append(os.Environ(), childEnv+"=1")
	}
	return runChild(ctx, cmd)
}

// workload runs w cfg.runs times on every implementation, the
// implementations interleaved so that a change in machine load does not
// fall on one of them only.
func (r *runner) workload(ctx context.Context, w string) (workloadReport, error) {
	wr := workloadReport{Name: w, Title: r.cfg.sizes.title(w), Results: map[string]*implResult{}}
	if w == wSync {
		return r.syncWorkload(ctx, wr)
	}
	bootDirs := map[string]string{}
	if w == wBoot {
		for _, impl := range r.cfg.impls {
			if dir, ok := r.batchDirs[impl]; ok && r.cfg.sizes.BatchN == r.cfg.sizes.BootN {
				fmt.Fprintf(r.log, "%-13s %-5s boots the store of the last %s run\n", w, impl, wCommitBatch)
				bootDirs[impl] = dir
				continue
			}
			a := r.args(impl, w)
			a.phase, a.dir = "prepare", r.newDir(impl, w)
			t0 := time.Now()
			if _, err := r.child(ctx, a); err != nil {
				return wr, fmt.Errorf("%s: prepare: %w", impl, err)
			}
			fmt.Fprintf(r.log, "%-13s %-5s prepared %s events in %v\n", w, impl, thousands(a.n), time.Since(t0).Round(time.Millisecond))
			bootDirs[impl] = a.dir
		}
	}
	for run := 0; run < r.cfg.runs; run++ {
		for i := range r.cfg.impls {
			impl := r.cfg.impls[(i+run)%len(r.cfg.impls)]
			if why, ok := notApplicable[w][impl]; ok {
				if run == 0 {
					fmt.Fprintf(r.log, "%-13s %-5s not applicable: %s\n", w, impl, why)
				}
				continue
			}
			a := r.args(impl, w)
			if w == wBoot {
				a.dir = bootDirs[impl]
			} else {
				a.dir = r.newDir(impl, w)
			}
			if impl == implGo && run == 0 && r.cfg.profileDir != "" {
				a.cpuProfile = filepath.Join(r.cfg.profileDir, w+".pprof")
			}
			res, err := r.child(ctx, a)
			if err != nil {
				return wr, fmt.Errorf("%s run %d: %w", impl, run+1, err)
			}
			switch {
			case w == wCommitBatch:
				if old, ok := r.batchDirs[impl]; ok && !r.cfg.keep {
					os.RemoveAll(old)
				}
				r.batchDirs[impl] = a.dir
			case w != wBoot && !r.cfg.keep:
				os.RemoveAll(a.dir)
			}
			ir := wr.Results[impl]
			if ir == nil {
				ir = &implResult{}
				wr.Results[impl] = ir
			}
			ir.Runs = append(ir.Runs, res)
			fmt.Fprintf(r.log, "%-13s %-5s run %d/%d: %s\n", w, impl, run+1, r.cfg.runs, res.summary())
		}
	}
	wr.summarize(r.cfg.sizes)
	return wr, nil
}

func (res result) summary() string {
	s := fmt.Sprintf("%.1f ms", res.MS)
	if res.PersistedMS != nil {
		s += fmt.Sprintf(", persisted %.1f ms", *res.PersistedMS)
	}
	if res.P50US > 0 {
		s += fmt.Sprintf(", p50 %.0f µs", res.P50US)
	}
	return s + fmt.Sprintf(", peak RSS %.0f MiB", float64(res.MaxRSSKB)/1024)
}
