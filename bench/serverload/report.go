package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// result is what one run measured.
type result struct {
	eventsPerSec float64
	pushP50      time.Duration
	pushP99      time.Duration
	fanP50       time.Duration
	fanP99       time.Duration
}

// report writes throughput and the latencies measured, and returns them.
func (l *load) report(out io.Writer, stats *pushStats, followers []*follower, elapsed time.Duration) result {
	var fan []time.Duration
	var delivered int64
	for _, f := range followers {
		fan = append(fan, f.latencies...)
		delivered += f.seen.Load()
	}
	n := stats.pushed.Load()
	r := result{
		eventsPerSec: float64(n) / elapsed.Seconds(),
		pushP50:      pct(stats.latencies, 50),
		pushP99:      pct(stats.latencies, 99),
		fanP50:       pct(fan, 50),
		fanP99:       pct(fan, 99),
	}
	fmt.Fprintf(out, "pushed %d events in %s: %.0f events/s (%d pushes, %d server-ahead retries)\n",
		n, elapsed.Round(time.Millisecond), r.eventsPerSec, len(stats.latencies), stats.conflicts.Load())
	fmt.Fprintf(out, "push latency:    p50 %s  p99 %s\n", r.pushP50, r.pushP99)
	if l.cfg.live > 0 {
		fmt.Fprintf(out, "fan-out latency: p50 %s  p99 %s  (%d live clients, %d events delivered, %.0f events/s)\n",
			r.fanP50, r.fanP99, l.cfg.live, delivered, float64(delivered)/elapsed.Seconds())
	}
	return r
}

// summarize writes min, median and max over the runs.
func summarize(out io.Writer, cfg config, rs []result) {
	line := func(name string, get func(result) float64, unit func(float64) string) {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		slices.Sort(v)
		fmt.Fprintf(out, "%-16s min %s  median %s  max %s\n", name, unit(v[0]), unit(v[len(v)/2]), unit(v[len(v)-1]))
	}
	rate := func(x float64) string { return fmt.Sprintf("%.0f", x) }
	dur := func(x float64) string { return time.Duration(x).Round(10 * time.Microsecond).String() }
	fmt.Fprintf(out, "over %d runs:\n", len(rs))
	line("events/s", func(r result) float64 { return r.eventsPerSec }, rate)
	line("push p50", func(r result) float64 { return float64(r.pushP50) }, dur)
	line("push p99", func(r result) float64 { return float64(r.pushP99) }, dur)
	if cfg.live > 0 {
		line("fan-out p50", func(r result) float64 { return float64(r.fanP50) }, dur)
		line("fan-out p99", func(r result) float64 { return float64(r.fanP99) }, dur)
	}
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)].Round(10 * time.Microsecond)
}

// machine names the machine: CPUs, CPU model and load average.
func machine() string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	return fmt.Sprintf("machine: %d CPUs (%s), %s, load average %s", runtime.NumCPU(), model, runtime.Version(), loadAverage())
}

// loadAverage is the 1, 5 and 15 minute load average, if known.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
