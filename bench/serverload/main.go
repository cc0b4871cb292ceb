// Command serverload measures the sync server under load on loopback: C
// clients push batches of B events to S stores while L live clients follow
// the stores. It runs the servers in-process on 127.0.0.1, for a bounded
// time, and reports throughput, push latency and fan-out latency (from a
// push being sent to a live client receiving its events).
//
//	go run ./bench/serverload --storage sqlite --clients 8 --stores 8 --live 200 --duration 10s
//	go run ./bench/serverload --storage postgres --postgres postgres://postgres@127.0.0.1:5432/test
//	go run ./bench/serverload --pushers raw --light-followers --clients 1 --stores 1 --live 1000 --rate 1000
//	go run ./bench/serverload --storage postgres --replicas 3 --clients 1 --stores 1 --live 100 --rate 1000
//
// With --replicas N (PostgreSQL only) it runs N servers on one schema, as N
// serve processes on one database would run: pushers connect to the first
// (or, with --push-to all, to each in turn) and live clients to the last,
// so fan-out latency is the delay of delivery across servers. With
// --serve-processes the N servers are `livestore serve` processes (cmd/livestore,
// built once) on their own ports.
//
// --target chooses what is measured: ours (this module's server), reference
// (@livestore/sync-cf in workerd, started from interop/node_modules as the
// interop tests start it, driven by the same clients) or floor (the same
// work without a server: see floor.go).
//
// --matrix runs every row of the performance table (bench/results/server.md)
// on each target, interleaved per run, and writes a markdown table of
// min / median / max with the machine and the load average. Before each
// measurement it waits until the CPUs are idle (settle.go), and it restarts
// the reference server after each fan-out row, whose backlog the reference
// keeps draining long after:
//
//	go run ./bench/serverload --matrix --runs 3 --out bench/results/server-matrix.md
//	go run ./bench/serverload --matrix --rows ingest1,fanout100 --targets ours,floor --runs 1 --duration 2s
//
// It measures the servers alone, over the wire: no client stores and no
// rebases (bench/compare measures client stores). With --pushers raw and
// --light-followers the clients encode and decode as little as they can,
// so that most of the machine's time is the server's.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"
)

type config struct {
	storage     string
	postgresURL string
	clients     int
	stores      int
	live        int
	batch       int
	argBytes    int
	duration    time.Duration
	maxEvents   int64
	rate        int
	light       bool
	pushers     string // "syncclient" or "raw"
	replicas    int
	pushTo      string // "first" or "all"
	runs        int
	target      string // targetOurs, targetReference or targetFloor
	processes   bool   // replicas as `livestore serve` processes
}

func main() {
	// An interrupt ends the measurements early, so that the servers and
	// processes started are stopped on the way out.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := runContext(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "serverload:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error { return runContext(context.Background(), args, out) }

// runContext runs the command with args until done or ctx ends.
func runContext(ctx context.Context, args []string, out io.Writer) error {
	if matrixRequested(args) {
		return runMatrix(ctx, args, out)
	}
	cfg, cpuProfile, err := parseConfig(args)
	if err != nil {
		return err
	}
	if why := unsupported(cfg); why != "" {
		return fmt.Errorf("--target %s cannot run this: %s", cfg.target, why)
	}
	if cpuProfile != "" {
		stop, err := startCPUProfile(cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	fmt.Fprintln(out, cfg.describe())
	fmt.Fprintln(out, machine())
	e, closeEnv, err := prepareEnv(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer closeEnv()
	var results []result
	for i := range cfg.runs {
		if cfg.runs > 1 {
			fmt.Fprintf(out, "run %d of %d (load average %s)\n", i+1, cfg.runs, loadAverage())
		}
		r, err := runOnce(ctx, cfg, e, out)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		results = append(results, r)
	}
	if cfg.runs > 1 {
		summarize(out, cfg, results)
	}
	fmt.Fprintf(out, "load average at the end: %s\n", loadAverage())
	return nil
}

// runOnce runs the load once on cfg.target, on fresh storage and servers.
func runOnce(ctx context.Context, cfg config, e *env, out io.Writer) (r result, err error) {
	tg, err := startTarget(ctx, cfg, e)
	if err != nil {
		return result{}, fmt.Errorf("start %s: %w", cfg.target, err)
	}
	defer func() {
		if serr := tg.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l := &load{cfg: cfg, urls: tg.urls, storages: tg.storages, runID: randomHex(4)}
	defer l.closeClients()

	followers, followWG, err := l.startFollowers(ctx)
	if err != nil {
		return result{}, err
	}
	defer followWG.Wait()
	defer cancel()
	if tg.ready != nil {
		if err := tg.ready(ctx, cfg.live); err != nil {
			return result{}, err
		}
	}
	stats, elapsed, err := l.push(ctx)
	if err != nil {
		return result{}, err
	}
	if err := l.waitDelivered(ctx, stats.heads, followers); err != nil {
		return result{}, err
	}
	cancel()
	followWG.Wait()
	return l.report(out, stats, followers, elapsed), nil
}

// parseConfig reads the flags; cpuProfile is the file named by --cpuprofile.
func parseConfig(args []string) (cfg config, cpuProfile string, err error) {
	fs := flag.NewFlagSet("serverload", flag.ContinueOnError)
	fs.StringVar(&cfg.storage, "storage", "sqlite", "storage: sqlite or postgres")
	fs.StringVar(&cfg.postgresURL, "postgres", os.Getenv("LIVESTORE_TEST_POSTGRES_URL"), "PostgreSQL URL (for --storage postgres; a temporary schema is used and dropped)")
	fs.IntVar(&cfg.clients, "clients", 8, "pushing clients")
	fs.IntVar(&cfg.stores, "stores", 8, "stores (pushers and live clients are spread over them)")
	fs.IntVar(&cfg.live, "live", 200, "live pulling clients")
	fs.IntVar(&cfg.batch, "batch", 50, "events per push")
	fs.IntVar(&cfg.argBytes, "arg-bytes", 100, "size of each event's args")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to push (at most 2 minutes)")
	fs.Int64Var(&cfg.maxEvents, "max-events", 2_000_000, "stop pushing after this many events")
	fs.IntVar(&cfg.rate, "rate", 0, "target total push rate in events/s (0: as fast as possible); raw pushers keep it without waiting for answers")
	fs.BoolVar(&cfg.light, "light-followers", false, "live clients read raw messages instead of decoding pages with syncclient (less client CPU, so the server's share of the machine is measured)")
	fs.StringVar(&cfg.pushers, "pushers", "syncclient", "pushing clients: syncclient (each push awaited), or raw (pre-encoded messages on a bare WebSocket; with --rate, pushes are sent at the rate without waiting for answers)")
	fs.IntVar(&cfg.replicas, "replicas", 1, "servers sharing the storage (more than 1 needs --storage postgres)")
	fs.StringVar(&cfg.pushTo, "push-to", "first", "with --replicas: the servers pushers connect to, first or all (in turn); live clients connect to the last")
	fs.IntVar(&cfg.runs, "runs", 1, "how many times to run the load (each on fresh storage), reporting min/median/max")
	fs.StringVar(&cfg.target, "target", targetOurs, "what to measure: ours (this module's server), reference (@livestore/sync-cf in workerd, from interop/node_modules) or floor (the same work without a server: appends straight to the storage, or a bare WebSocket broadcaster for live pulls)")
	fs.BoolVar(&cfg.processes, "serve-processes", false, "with --replicas: run the servers as `livestore serve` processes (built once) instead of in this process")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	if err := fs.Parse(args); err != nil {
		return cfg, "", err
	}
	return cfg, cpuProfile, cfg.check()
}

// check refuses settings that cannot run.
func (cfg config) check() error {
	switch {
	case cfg.duration <= 0 || cfg.duration > 2*time.Minute:
		return errors.New("--duration must be in (0, 2m]")
	case cfg.clients < 1 || cfg.stores < 1 || cfg.batch < 1 || cfg.live < 0:
		return errors.New("--clients, --stores and --batch must be positive")
	case cfg.pushers != "syncclient" && cfg.pushers != "raw":
		return fmt.Errorf("--pushers %q: syncclient or raw", cfg.pushers)
	case cfg.replicas < 1 || cfg.replicas > 1 && cfg.storage != "postgres":
		return errors.New("--replicas must be 1, or more with --storage postgres")
	case cfg.pushTo != "first" && cfg.pushTo != "all":
		return fmt.Errorf("--push-to %q: first or all", cfg.pushTo)
	case cfg.runs < 1:
		return errors.New("--runs must be positive")
	case cfg.target != targetOurs && cfg.target != targetReference && cfg.target != targetFloor:
		return fmt.Errorf("--target %q: ours, reference or floor", cfg.target)
	case cfg.processes && cfg.storage != "postgres":
		return errors.New("--serve-processes needs --storage postgres")
	case cfg.pushers == "raw" && cfg.rate > 0 && cfg.clients > cfg.stores:
		return errors.New("raw pushers at a --rate do not wait for answers: use at most one per store (--clients <= --stores)")
	}
	return nil
}

// describe is the line naming the run's settings.
func (cfg config) describe() string {
	rate := "max"
	if cfg.rate > 0 {
		rate = strconv.Itoa(cfg.rate) + "/s"
	}
	kind := "syncclient"
	if cfg.light {
		kind = "light"
	}
	s := fmt.Sprintf("target=%s storage=%s clients=%d (%s) stores=%d live=%d (%s) batch=%d arg-bytes=%d rate=%s duration=%s",
		cfg.target, cfg.storage, cfg.clients, cfg.pushers, cfg.stores, cfg.live, kind, cfg.batch, cfg.argBytes, rate, cfg.duration)
	if cfg.replicas > 1 {
		s += fmt.Sprintf(" replicas=%d push-to=%s", cfg.replicas, cfg.pushTo)
	}
	if cfg.processes {
		s += " (serve processes)"
	}
	return s
}

// startCPUProfile profiles the process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
