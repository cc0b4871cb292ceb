package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the child process of the Go and
// floor implementations, as the command does.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(childMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestQuick runs the whole harness with -quick on every implementation,
// JS included: a missing interop/node_modules fails the test.
func TestQuick(t *testing.T) {
	out := t.TempDir()
	cfg, err := parseFlags([]string{"-quick", "-out", out}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.interopDir, "node_modules")); err != nil {
		t.Fatalf("%s: run: (cd interop && npm ci)", filepath.Join(cfg.interopDir, "node_modules"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log strings.Builder
	start := time.Now()
	rep, err := run(ctx, cfg, &log)
	if errors.Is(err, errNoNodeModules) {
		t.Fatalf("run: (cd interop && npm ci): %v", err)
	}
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	t.Logf("quick run in %v:\n%s", time.Since(start).Round(time.Millisecond), log.String())
	if err := rep.write(out); err != nil {
		t.Fatal(err)
	}

	var got report
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Workloads) != len(allWorkloads) {
		t.Fatalf("%d workloads in results.json, want %d", len(got.Workloads), len(allWorkloads))
	}
	for _, w := range got.Workloads {
		if w.Gap != "" {
			t.Errorf("%s: not measured: %s", w.Name, w.Gap)
			continue
		}
		for _, impl := range allImpls {
			if w.Name == wSync && (impl == implFloor || impl == implGoProcess) {
				continue
			}
			if _, na := notApplicable[w.Name][impl]; na {
				if w.Results[impl] != nil {
					t.Errorf("%s/%s: measured, but it is not applicable", w.Name, impl)
				}
				continue
			}
			ir := w.Results[impl]
			if ir == nil || len(ir.Runs) != 1 || ir.MedianMS <= 0 || ir.PeakRSSMiB <= 0 {
				t.Errorf("%s/%s: incomplete result %+v", w.Name, impl, ir)
			}
		}
		if js := w.Results[implJS]; js != nil && w.Name != wBoot && w.Name != wSync && js.PersistedMedianMS == nil {
			t.Errorf("%s: no JS persisted time", w.Name)
		}
		if _, na := notApplicable[w.Name][implJS]; !na && w.Ratios.JSOverGoReturned == nil {
			t.Errorf("%s: no JS ÷ Go ratio", w.Name)
		}
		if w.Name == wConcurrent {
			for _, impl := range []string{implGo, implGoProcess, implFloor} {
				if ir := w.Results[impl]; ir == nil || ir.OverSingle == nil || *ir.OverSingle <= 0 {
					t.Errorf("%s/%s: no speed-up over the single committer", w.Name, impl)
				}
			}
		}
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| workload | implementation |", "JS returned ÷ Go", "Load average",
		"| js | not applicable:", "the single committer: "} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q", want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-quick", "-impl", "js,go", "-workload", "boot", "-out", "x"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.impls, ",") != "go,js" || strings.Join(cfg.workloads, ",") != "boot" || cfg.runs != 1 || cfg.out != "x" {
		t.Errorf("got %+v", cfg)
	}
	full, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if full.runs != 5 || full.sizes.SingleN != 10_000 || !strings.HasSuffix(full.out, filepath.Join("bench", "results")) {
		t.Errorf("defaults: got %+v", full)
	}
	for _, bad := range [][]string{{"-impl", "rust"}, {"-workload", "nope"}, {"extra"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestMedianMinMax(t *testing.T) {
	for _, c := range []struct {
		in            []float64
		med, min, max float64
	}{
		{[]float64{5, 1, 3}, 3, 1, 5},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
		{[]float64{7}, 7, 7, 7},
	} {
		med, lo, hi := medianMinMax(c.in)
		if med != c.med || lo != c.min || hi != c.max {
			t.Errorf("%v: got %v %v %v", c.in, med, lo, hi)
		}
	}
}
