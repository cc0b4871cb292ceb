package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// report is everything one invocation measured; it is written as
// results.json and rendered as results.md.
type report struct {
	Machine         machine           `json:"machine"`
	Mode            string            `json:"mode"` // full or quick
	Runs            int               `json:"runs"`
	Sizes           sizes             `json:"sizes"`
	Implementations map[string]string `json:"implementations"`
	Workloads       []workloadReport  `json:"workloads"`
	DurationSec     float64           `json:"durationSec"`
}

type machine struct {
	Date        string `json:"date"`
	NProc       int    `json:"nproc"`
	CPUModel    string `json:"cpuModel"`
	Memory      string `json:"memory"`
	Kernel      string `json:"kernel"`
	GoVersion   string `json:"goVersion"`
	NodeVersion string `json:"nodeVersion,omitempty"`
	// Revision is the git commit measured ("+dirty" with uncommitted changes).
	Revision   string `json:"revision,omitempty"`
	LoadBefore string `json:"loadBefore"` // /proc/loadavg when the run started
	LoadAfter  string `json:"loadAfter"`
}

type workloadReport struct {
	Name    string                 `json:"name"`
	Title   string                 `json:"title"`
	Results map[string]*implResult `json:"results,omitempty"`
	Ratios  ratios                 `json:"ratios"`
	// Gap says why the workload was not measured, when it was not.
	Gap string `json:"gap,omitempty"`
	// Note qualifies the numbers (e.g. how sync end times are taken).
	Note string `json:"note,omitempty"`
}

type implResult struct {
	Runs     []result `json:"runs"`
	MedianMS float64  `json:"medianMs"`
	MinMS    float64  `json:"minMs"`
	MaxMS    float64  `json:"maxMs"`
	// Persisted* are set for JS: until the eventlog file held the last event.
	PersistedMedianMS *float64 `json:"persistedMedianMs,omitempty"`
	PersistedMinMS    *float64 `json:"persistedMinMs,omitempty"`
	PersistedMaxMS    *float64 `json:"persistedMaxMs,omitempty"`
	PerOpUS           float64  `json:"perOpUs"`             // median ÷ operations
	IterP50US         float64  `json:"iterP50Us"`           // median over runs of the per-iteration median (4, 5)
	PeakRSSMiB        float64  `json:"peakRssMiB"`          // the highest over runs
	Callbacks         int      `json:"callbacks,omitempty"` // subscriber calls in the last run (5)
	// OverSingle is, for workload 7, how many times faster a commit is than
	// one of the same implementation in workload 1 of the same invocation:
	// commit-single's per-commit time ÷ this workload's.
	OverSingle *float64 `json:"overSingle,omitempty"`
}

// ratios compare medians. JSOverGo* > 1 means livestore-go is faster;
// GoOverFloor > 1 is livestore-go's overhead over bare SQLite.
type ratios struct {
	// JS time until its commit returned (or its subscriber saw the result)
	// ÷ livestore-go's time until its durable commit returned (or its
	// subscriber saw the result).
	JSOverGoReturned *float64 `json:"jsOverGoReturned,omitempty"`
	// JS time until its eventlog file held the last event ÷ livestore-go's.
	JSOverGoPersisted *float64 `json:"jsOverGoPersisted,omitempty"`
	GoOverFloor       *float64 `json:"goOverFloor,omitempty"`
	// JS persisted ÷ go-process: both have then written the event to the
	// OS without fsync.
	JSPersistedOverGoProcess *float64 `json:"jsPersistedOverGoProcess,omitempty"`
}

var implNames = map[string]string{
	implGo:        "the root package (Open, Commit, Query, QueryDB + Subscribe); directory store, commit durable (fsync) on return",
	implGoProcess: "livestore-go with Options.Durability = DurabilityProcess: commits reach the OS but are not fsynced (synchronous=NORMAL), the durability JS has at its \"persisted\" point",
	implFloor:     "floor: the same SQL writes through the same driver (zombiezen.com/go/sqlite via internal/sqlite), WAL, synchronous=FULL, one transaction per commit (in workload 7 a minimal group commit: queued commits share a transaction, a savepoint each, one fsync), no LiveStore logic",
	implJS:        "JS LiveStore 0.4.0 on Node, @livestore/adapter-node (single-threaded makeAdapter), storage fs, no sync backend except in workload 6",
}

func newReport(cfg config, node *nodeEnv) *report {
	r := &report{
		Mode:            cfg.sizes.description,
		Runs:            cfg.runs,
		Sizes:           cfg.sizes,
		Implementations: map[string]string{},
	}
	for _, impl := range cfg.impls {
		r.Implementations[impl] = implNames[impl]
	}
	r.Machine = machine{
		Date:       time.Now().UTC().Format(time.RFC3339),
		NProc:      runtime.NumCPU(),
		CPUModel:   cpuModel(),
		Memory:     memTotal(),
		Kernel:     readTrim("/proc/sys/kernel/osrelease"),
		GoVersion:  runtime.Version(),
		LoadBefore: loadAvg(),
		Revision:   gitRevision(),
	}
	if node != nil {
		r.Machine.NodeVersion = node.version
	}
	return r
}

func (r *report) finish(d time.Duration) {
	r.Machine.LoadAfter = loadAvg()
	r.DurationSec = d.Seconds()
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// gitRevision names the checkout the harness runs in, or "" outside one.
func gitRevision() string {
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		rev += "+dirty"
	}
	return rev
}

// loadAvg is the 1, 5 and 15 minute load average, as uptime prints it.
func loadAvg() string {
	f := strings.Fields(readTrim("/proc/loadavg"))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	for _, line := range strings.Split(readTrim("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	for _, line := range strings.Split(readTrim("/proc/meminfo"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == "MemTotal" {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	return ""
}

func medianMinMax(xs []float64) (med, lo, hi float64) {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return 0, 0, 0
	}
	if n%2 == 1 {
		med = s[n/2]
	} else {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return med, s[0], s[n-1]
}

func ptr(f float64) *float64 { return &f }

// summarize computes the medians and ratios of wr from its runs.
func (wr *workloadReport) summarize(sz sizes) {
	ops, _ := sz.ops(wr.Name)
	for _, ir := range wr.Results {
		var t, p, it []float64
		for _, r := range ir.Runs {
			t = append(t, r.MS)
			if r.PersistedMS != nil {
				p = append(p, *r.PersistedMS)
			}
			if r.P50US > 0 {
				it = append(it, r.P50US)
			}
			ir.PeakRSSMiB = max(ir.PeakRSSMiB, float64(r.MaxRSSKB)/1024)
			ir.Callbacks = r.Callbacks
		}
		ir.MedianMS, ir.MinMS, ir.MaxMS = medianMinMax(t)
		if len(p) > 0 {
			m, lo, hi := medianMinMax(p)
			ir.PersistedMedianMS, ir.PersistedMinMS, ir.PersistedMaxMS = &m, &lo, &hi
		}
		ir.IterP50US, _, _ = medianMinMax(it)
		ir.PerOpUS = ir.MedianMS * 1000 / float64(ops)
	}
	g, f, js := wr.Results[implGo], wr.Results[implFloor], wr.Results[implJS]
	if g != nil && g.MedianMS > 0 {
		if js != nil {
			wr.Ratios.JSOverGoReturned = ptr(js.MedianMS / g.MedianMS)
			if js.PersistedMedianMS != nil {
				wr.Ratios.JSOverGoPersisted = ptr(*js.PersistedMedianMS / g.MedianMS)
			}
		}
		if f != nil && f.MedianMS > 0 {
			wr.Ratios.GoOverFloor = ptr(g.MedianMS / f.MedianMS)
		}
	}
	if gp := wr.Results[implGoProcess]; gp != nil && gp.MedianMS > 0 && js != nil {
		jsp := js.MedianMS
		if js.PersistedMedianMS != nil {
			jsp = *js.PersistedMedianMS
		}
		wr.Ratios.JSPersistedOverGoProcess = ptr(jsp / gp.MedianMS)
	}
}

// compareSingle sets, for the concurrent workload, each implementation's
// speed-up over its own single committer (workload 1), when both ran.
func (r *report) compareSingle() {
	var single, conc *workloadReport
	for i := range r.Workloads {
		switch w := &r.Workloads[i]; {
		case w.Gap != "":
		case w.Name == wCommitSingle:
			single = w
		case w.Name == wConcurrent:
			conc = w
		}
	}
	if single == nil || conc == nil {
		return
	}
	for impl, ir := range conc.Results {
		if s := single.Results[impl]; s != nil && ir.PerOpUS > 0 {
			ir.OverSingle = ptr(s.PerOpUS / ir.PerOpUS)
		}
	}
}

func (r *report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "results.md"), []byte(r.markdown()), 0o644)
}

func fmtMS(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%s ms", thousands(int(v+0.5)))
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

func fmtUS(v float64) string {
	switch {
	case v >= 1_000:
		return fmt.Sprintf("%s µs", thousands(int(v+0.5)))
	case v >= 100:
		return fmt.Sprintf("%.0f µs", v)
	default:
		return fmt.Sprintf("%.1f µs", v)
	}
}

func fmtRatio(p *float64) string {
	if p == nil {
		return "–"
	}
	if *p >= 10 {
		return fmt.Sprintf("%.0f×", *p)
	}
	return fmt.Sprintf("%.2f×", *p)
}

// markdown renders the report as results.md.
func (r *report) markdown() string {
	var b strings.Builder
	r.writeHeader(&b)
	r.writeTimes(&b)
	r.writeRatios(&b)
	r.writeTargets(&b)
	r.writeNotes(&b)
	fmt.Fprintf(&b, "\nSizes: `%s`. Raw runs: results.json.\n", mustJSON(r.Sizes))
	return b.String()
}

// writeHeader writes the title, the machine, the implementations and how
// the times are read.
func (r *report) writeHeader(b *strings.Builder) {
	m := r.Machine
	fmt.Fprintf(b, "# livestore-go vs JS LiveStore 0.4.0 vs the SQLite floor\n\n")
	fmt.Fprintf(b, "Measured %s with `go run ./bench/compare`", m.Date)
	if r.Mode != "full" {
		fmt.Fprintf(b, " (%s sizes: a smoke test, not a measurement)", r.Mode)
	}
	fmt.Fprintf(b, ", %d run(s) per workload and implementation, each run in its own process, implementations interleaved.\n\n", r.Runs)
	fmt.Fprintf(b, "Machine: %d CPUs (%s), %s RAM, Linux %s, %s", m.NProc, m.CPUModel, m.Memory, m.Kernel, m.GoVersion)
	if m.NodeVersion != "" {
		fmt.Fprintf(b, ", Node %s", m.NodeVersion)
	}
	fmt.Fprintf(b, ". Load average (1, 5, 15 min) at start `%s`, at end `%s` (the benchmark itself keeps about one core busy). Total %.0f s.", m.LoadBefore, m.LoadAfter, r.DurationSec)
	if m.Revision != "" {
		fmt.Fprintf(b, " Code: commit `%s`.", m.Revision)
	}
	b.WriteString("\n\n")

	b.WriteString("Implementations:\n\n")
	for _, impl := range allImpls {
		if d, ok := r.Implementations[impl]; ok {
			fmt.Fprintf(b, "- **%s** — %s\n", impl, d)
		}
	}
	b.WriteString("\nTimes are the median of the runs with min–max. Workloads 4 and 5 add up the per-iteration latencies (commit until the subscriber saw the result). " +
		"**js, returned**: the time spent inside `store.commit()` (1, 2) or until the subscriber saw the result (4, 5) — the event is then only in the JS session's in-memory database; " +
		"the JS program lets the event loop run between commits so that the leader, on the same thread, keeps up. " +
		"**js, persisted**: from the first commit until the leader had written the last event to the eventlog database file (read by a separate SQLite connection); " +
		"the Node VFS never calls fsync, so even that survives a process crash but not power loss. " +
		"livestore-go and the floor are durable (fsync) when Commit returns, and their subscriber times include that commit.\n\n")
}

// writeTimes writes the table of times, a row per workload and
// implementation.
func (r *report) writeTimes(b *strings.Builder) {
	b.WriteString("| workload | implementation | median | min | max | per op | iteration p50 | peak RSS |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|\n")
	for _, w := range r.Workloads {
		if w.Gap != "" {
			fmt.Fprintf(b, "| %s | **not measured**: %s | | | | | | |\n", w.Title, w.Gap)
			continue
		}
		first := true
		title := func() string {
			if first {
				first = false
				return w.Title
			}
			return ""
		}
		_, unit := r.Sizes.ops(w.Name)
		for _, impl := range allImpls {
			ir := w.Results[impl]
			if ir == nil {
				continue
			}
			iter := ""
			if ir.IterP50US > 0 {
				iter = fmtUS(ir.IterP50US)
			}
			label := impl
			if impl == implJS && ir.PersistedMedianMS != nil {
				label = "js, returned"
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s/%s | %s | %.0f MiB |\n", title(), label,
				fmtMS(ir.MedianMS), fmtMS(ir.MinMS), fmtMS(ir.MaxMS), fmtUS(ir.PerOpUS), unit, iter, ir.PeakRSSMiB)
			if impl == implJS && ir.PersistedMedianMS != nil {
				ops, _ := r.Sizes.ops(w.Name)
				fmt.Fprintf(b, "| | js, persisted | %s | %s | %s | %s/%s | | (same process) |\n",
					fmtMS(*ir.PersistedMedianMS), fmtMS(*ir.PersistedMinMS), fmtMS(*ir.PersistedMaxMS),
					fmtUS(*ir.PersistedMedianMS*1000/float64(ops)), unit)
			}
		}
		for _, impl := range allImpls {
			if why, ok := notApplicable[w.Name][impl]; ok && r.Implementations[impl] != "" {
				fmt.Fprintf(b, "| %s | %s | not applicable: %s | | | | | |\n", title(), impl, why)
			}
		}
	}
}

// writeRatios writes the table of the ratios of the medians.
func (r *report) writeRatios(b *strings.Builder) {
	b.WriteString("\nRatios of the medians. JS ÷ Go is how many times faster livestore-go is (target ≥ 5× on every workload); the JS persisted ÷ go-process column compares the two at the same durability (written to the OS, no fsync; for boot and sync it uses JS's only time). Go ÷ floor is livestore-go's overhead over bare SQLite (target ≤ 2× on batched commits).\n\n")
	b.WriteString("| workload | JS returned ÷ Go | JS persisted ÷ Go | JS persisted ÷ go-process | Go ÷ floor |\n|---|--:|--:|--:|--:|\n")
	for _, w := range r.Workloads {
		if w.Gap != "" {
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", w.Title, fmtRatio(w.Ratios.JSOverGoReturned), fmtRatio(w.Ratios.JSOverGoPersisted),
			fmtRatio(w.Ratios.JSPersistedOverGoProcess), fmtRatio(w.Ratios.GoOverFloor))
	}
}

// writeTargets writes whether each workload met its targets.
func (r *report) writeTargets(b *strings.Builder) {
	b.WriteString("\nTargets:\n\n")
	for _, w := range r.Workloads {
		if w.Gap != "" {
			fmt.Fprintf(b, "- %s: not measured (%s).\n", w.Title, w.Gap)
			continue
		}
		var parts []string
		if p := w.Ratios.JSOverGoReturned; p != nil {
			label := "≥ 5× faster than JS"
			if w.Ratios.JSOverGoPersisted != nil {
				label += " returned"
			}
			parts = append(parts, fmt.Sprintf("%s: %s (%s)", label, verdict(*p >= 5), fmtRatio(p)))
		}
		if p := w.Ratios.JSOverGoPersisted; p != nil {
			parts = append(parts, fmt.Sprintf("than JS persisted: %s (%s)", verdict(*p >= 5), fmtRatio(p)))
		}
		if p := w.Ratios.GoOverFloor; p != nil && w.Name == wCommitBatch {
			parts = append(parts, fmt.Sprintf("≤ 2× the floor: %s (%s)", verdict(*p <= 2), fmtRatio(p)))
		}
		if w.Name == wConcurrent {
			parts = append(parts, concurrentTarget(w))
		}
		if len(parts) > 0 {
			fmt.Fprintf(b, "- %s: %s.\n", w.Title, strings.Join(parts, "; "))
		}
	}
}

// writeNotes writes the notes of the workloads, if any.
func (r *report) writeNotes(b *strings.Builder) {
	var notes []string
	for _, w := range r.Workloads {
		if w.Note != "" {
			notes = append(notes, fmt.Sprintf("- %s: %s", w.Title, w.Note))
		}
		if fo := w.Results[implJS]; w.Name == wFanout && fo != nil && fo.Callbacks > 0 {
			notes = append(notes, fmt.Sprintf("- %s: JS called subscribers %s times in the last run (livestore-go only calls the one whose result changed: %s).",
				w.Title, thousands(fo.Callbacks), callbacksOf(w.Results[implGo])))
		}
	}
	if _, ok := r.Implementations[implJS]; ok {
		notes = append(notes, "- The JS peak RSS includes the second wasm SQLite instance that watches the eventlog file (about 7 MiB).")
	}
	if len(notes) > 0 {
		b.WriteString("\nNotes:\n\n" + strings.Join(notes, "\n") + "\n")
	}
}

// concurrentTarget says whether grouped commits reached 20× the single
// committer's rate, and what each implementation reached.
func concurrentTarget(w workloadReport) string {
	g := w.Results[implGo]
	if g == nil || g.OverSingle == nil {
		return "≥ 20× the single committer: not known (run commit-single in the same invocation)"
	}
	s := fmt.Sprintf("≥ 20× the single committer: %s (%s", verdict(*g.OverSingle >= 20), fmtRatio(g.OverSingle))
	for _, impl := range []string{implGoProcess, implFloor} {
		if ir := w.Results[impl]; ir != nil && ir.OverSingle != nil {
			s += fmt.Sprintf("; %s %s over its own", impl, fmtRatio(ir.OverSingle))
		}
	}
	return s + ")"
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func callbacksOf(ir *implResult) string {
	if ir == nil {
		return "not run"
	}
	return thousands(ir.Callbacks)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
