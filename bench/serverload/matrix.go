package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/livestore-go/livestore/interop/harness"
)

// matrixRow is one row of the performance table: a load, its goal, and
// whether it is judged by throughput or by the fan-out p99.
type matrixRow struct {
	id     string
	title  string
	goal   string
	fanout bool
	args   []string
}

// issueRows are the rows of the sync server's performance table (see
// bench/results/server.md), each with the flags of its load.
func issueRows() []matrixRow {
	ingest1 := []string{"--clients", "1", "--stores", "1", "--batch", "100", "--live", "0"}
	ingest8 := []string{"--clients", "8", "--stores", "8", "--batch", "100", "--live", "0"}
	pg8 := append([]string{"--storage", "postgres"}, ingest8...)
	raw := []string{"--pushers", "raw"}
	fan := func(live, batch int) []string {
		return []string{"--clients", "1", "--stores", "1", "--live", strconv.Itoa(live), "--rate", "1000",
			"--batch", strconv.Itoa(batch), "--pushers", "raw", "--light-followers"}
	}
	serve3 := []string{"--storage", "postgres", "--replicas", "3", "--serve-processes"}
	return []matrixRow{
		{"ingest1-syncclient", "ingest, 1 store, batches of 100, each push awaited, SQLite, syncclient pushers", "≥ 100,000 ev/s", false, ingest1},
		{"ingest1-raw", "same, raw pushers", "≥ 100,000 ev/s", false, concat(ingest1, raw)},
		{"ingest8-sqlite-syncclient", "ingest, 8 stores, SQLite, syncclient pushers", "≥ 150,000 ev/s", false, ingest8},
		{"ingest8-sqlite-raw", "same, raw pushers", "≥ 150,000 ev/s", false, concat(ingest8, raw)},
		{"ingest8-pg-syncclient", "ingest, 8 stores, PostgreSQL, syncclient pushers", "≥ 100,000 ev/s", false, pg8},
		{"ingest8-pg-raw", "same, raw pushers", "≥ 100,000 ev/s", false, concat(pg8, raw)},
		{"fanout100", "fan-out, 100 live pulls, 1 store at 1,000 ev/s (batches of 10), fan-out p99", "≤ 10 ms", true, fan(100, 10)},
		{"fanout1000-b50", "fan-out, 1,000 live pulls, 1,000 ev/s in batches of 50 (20 pages/s), fan-out p99", "≤ 50 ms", true, fan(1000, 50)},
		{"fanout1000-b10", "same in batches of 10 (100 pages/s)", "≤ 50 ms", true, fan(1000, 10)},
		{"serve3-ingest", "3 `livestore serve` processes on one PostgreSQL, 8 stores, raw pushers spread over them", "≥ 60,000 ev/s total", false,
			concat(serve3, []string{"--push-to", "all"}, ingest8, raw)},
		{"serve3-fanout", "3 `serve` processes: 100 live pulls on the 3rd see pushes to the 1st (1,000 ev/s in batches of 10), fan-out p99", "≤ 50 ms", true,
			concat(serve3, fan(100, 10))},
	}
}

func concat(parts ...[]string) []string { return slices.Concat(parts...) }

// matrixOpts are the flags of --matrix.
type matrixOpts struct {
	runs        int
	duration    time.Duration
	out         string
	maxSettle   time.Duration // longest wait for idle CPUs before a measurement
	rows        []string
	targets     []string
	postgresURL string
	args        []string // as given, for the report
}

// matrixRequested reports whether args ask for the matrix.
func matrixRequested(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--matrix" || a == "-matrix" || strings.HasPrefix(a, "--matrix=") || strings.HasPrefix(a, "-matrix=") {
			return a == "--matrix" || a == "-matrix" || strings.HasSuffix(a, "=true")
		}
	}
	return false
}

func parseMatrix(args []string) (matrixOpts, error) {
	o := matrixOpts{args: args}
	fs := flag.NewFlagSet("serverload --matrix", flag.ContinueOnError)
	fs.Bool("matrix", true, "run every row of the performance table for each target (this mode)")
	fs.IntVar(&o.runs, "runs", 3, "runs of each cell; the runs are interleaved (each run measures every row and target in turn)")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "how long each measurement pushes")
	fs.StringVar(&o.out, "out", "", "also write the markdown table to this file")
	fs.DurationVar(&o.maxSettle, "settle", 30*time.Second, "longest wait, before each measurement, for the CPUs to be idle (0: sample how busy they are once, without waiting)")
	rows := fs.String("rows", "", "comma-separated row ids, or parts of them, to run (default: all); e.g. ingest1,fanout100")
	targets := fs.String("targets", "ours,reference,floor", "comma-separated targets to measure")
	fs.StringVar(&o.postgresURL, "postgres", os.Getenv("LIVESTORE_TEST_POSTGRES_URL"), "PostgreSQL URL of the PostgreSQL rows (without it they are n/a)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.runs < 1 || o.duration <= 0 || o.duration > 2*time.Minute {
		return o, errors.New("--runs must be positive and --duration in (0, 2m]")
	}
	if o.maxSettle < 0 || o.maxSettle > 10*time.Minute {
		return o, errors.New("--settle must be in [0, 10m]")
	}
	o.rows = splitList(*rows)
	o.targets = splitList(*targets)
	for _, t := range o.targets {
		if t != targetOurs && t != targetReference && t != targetFloor {
			return o, fmt.Errorf("--targets: unknown target %q (ours, reference, floor)", t)
		}
	}
	if len(o.targets) == 0 {
		return o, errors.New("--targets: none given")
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// selectRows returns the rows whose id contains one of filter's terms, or
// all without a filter.
func selectRows(filter []string) ([]matrixRow, error) {
	all := issueRows()
	if len(filter) == 0 {
		return all, nil
	}
	var rows []matrixRow
	for _, r := range all {
		if slices.ContainsFunc(filter, func(f string) bool { return strings.Contains(r.id, f) }) {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		ids := make([]string, len(all))
		for i, r := range all {
			ids[i] = r.id
		}
		return nil, fmt.Errorf("--rows %s matches no row (rows: %s)", strings.Join(filter, ","), strings.Join(ids, ", "))
	}
	return rows, nil
}

// rowConfig is the load of row on target.
func (o matrixOpts) rowConfig(row matrixRow, target string) (config, error) {
	args := concat(row.args, []string{"--duration", o.duration.String(), "--target", target, "--postgres", o.postgresURL})
	cfg, _, err := parseConfig(args)
	if err != nil {
		return cfg, fmt.Errorf("row %s: %w", row.id, err)
	}
	return cfg, nil
}

// cell is what one row measured on one target over the runs.
type cell struct {
	values []float64 // events/s, or the fan-out p99 in nanoseconds
	errs   []string
	na     string // why the target cannot run the row
	shared string // the row whose measurement this cell reuses (floors)
}

// matrix is a matrix run: its rows, targets and cells.
type matrix struct {
	opts  matrixOpts
	rows  []matrixRow
	cells map[string]*cell     // by row id + "/" + target
	loads map[string][]float64 // the 1-minute load average before each measurement, by row id
	busy  map[string][]float64 // the share of the CPUs busy just before each measurement, by row id
}

func (m *matrix) cell(rowID, target string) *cell {
	k := rowID + "/" + target
	if m.cells[k] == nil {
		m.cells[k] = &cell{}
	}
	return m.cells[k]
}

// runMatrix measures every selected row on every target, interleaved per
// run, and writes the markdown table.
func runMatrix(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseMatrix(args)
	if err != nil {
		return err
	}
	rows, err := selectRows(o.rows)
	if err != nil {
		return err
	}
	m := &matrix{opts: o, rows: rows, cells: map[string]*cell{}, loads: map[string][]float64{}, busy: map[string][]float64{}}
	started := time.Now().UTC()
	details := machineDetails(ctx, m.pgURLIfUsed())
	fmt.Fprintf(out, "machine: %s\n", details)
	e := &env{}
	if m.needsProcesses() {
		bin, remove, err := buildLivestore(ctx)
		if err != nil {
			return err
		}
		defer remove()
		e.livestoreBin = bin
	}
	for run := range o.runs {
		m.runIndex(ctx, run, e, out)
		if ctx.Err() != nil {
			return fmt.Errorf("stopped during run %d: %w", run+1, ctx.Err())
		}
	}
	md := m.markdown(started, time.Now().UTC(), details)
	fmt.Fprint(out, md)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", o.out, err)
		}
	}
	return nil
}

// pgURLIfUsed is the PostgreSQL URL if a selected row uses PostgreSQL.
func (m *matrix) pgURLIfUsed() string {
	for _, r := range m.rows {
		if slices.Contains(r.args, "postgres") {
			return m.opts.postgresURL
		}
	}
	return ""
}

// needsProcesses reports whether a selected row runs serve processes for
// a selected target.
func (m *matrix) needsProcesses() bool {
	if !slices.Contains(m.opts.targets, targetOurs) || m.opts.postgresURL == "" {
		return false
	}
	return slices.ContainsFunc(m.rows, func(r matrixRow) bool { return slices.Contains(r.args, "--serve-processes") })
}

// runIndex is the run-th run: the reference server is started afresh (if
// a row needs it), then every row is measured on each target in turn. The
// reference falls seconds behind on fan-out rows and keeps a CPU busy for
// as long draining its backlog after the clients left, so it is stopped
// after each of them and started again for its next row.
func (m *matrix) runIndex(ctx context.Context, run int, e *env, out io.Writer) {
	refDown := ""
	var stopRef func() error
	startRef := func() {
		url, stop, err := harness.StartReference(ctx, nil)
		if err != nil {
			refDown = "the reference server did not start: " + firstLine(err.Error())
			return
		}
		e.referenceURL, stopRef = url, stop
	}
	endRef := func() {
		if stopRef != nil {
			_ = stopRef()
			e.referenceURL, stopRef = "", nil
		}
	}
	defer endRef()
	if m.needsReference() {
		startRef()
	}
	floors := map[string]string{} // floor measurements of this run: row id by load
	for _, row := range m.rows {
		for _, target := range m.opts.targets {
			if ctx.Err() != nil {
				return
			}
			if target == targetReference && refDown == "" && stopRef == nil {
				startRef()
			}
			if target == targetReference && refDown != "" {
				c := m.cell(row.id, target)
				c.errs = append(c.errs, refDown)
				continue
			}
			m.measure(ctx, run, row, target, e, floors, out)
			if target == targetReference && row.fanout {
				endRef()
			}
		}
	}
}

// needsReference reports whether a selected row can run on the reference.
func (m *matrix) needsReference() bool {
	if !slices.Contains(m.opts.targets, targetReference) {
		return false
	}
	for _, r := range m.rows {
		if cfg, err := m.opts.rowConfig(r, targetReference); err == nil && unsupported(cfg) == "" {
			return true
		}
	}
	return false
}

// measure runs row on target once and records the result in its cell. The
// floor of a row that differs from an earlier one only in its pushers
// (which the floor does not have) reuses that row's measurement of the run.
func (m *matrix) measure(ctx context.Context, run int, row matrixRow, target string, e *env, floors map[string]string, out io.Writer) {
	c := m.cell(row.id, target)
	cfg, err := m.opts.rowConfig(row, target)
	if err != nil {
		c.errs = append(c.errs, err.Error())
		return
	}
	if c.na = unsupported(cfg); c.na != "" {
		return
	}
	if target == targetFloor && cfg.live == 0 {
		key := cfg
		key.pushers = ""
		if id, ok := floors[key.describe()]; ok {
			src := m.cell(id, target)
			c.values = append(c.values, src.values[len(src.values)-1])
			c.shared = id
			return
		}
		before := len(c.values)
		defer func() {
			if len(c.values) > before {
				floors[key.describe()] = row.id
			}
		}()
	}
	waited, busy, err := settle(ctx, m.opts.maxSettle)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		busy = -1 // not known here; measure anyway
	}
	m.busy[row.id] = append(m.busy[row.id], busy)
	m.loads[row.id] = append(m.loads[row.id], loadAverage1())
	r, err := runOnce(ctx, cfg, e, io.Discard)
	if err != nil {
		c.errs = append(c.errs, firstLine(err.Error()))
		fmt.Fprintf(out, "run %d %s %s: failed: %v\n", run+1, row.id, target, err)
		return
	}
	v := r.eventsPerSec
	if row.fanout {
		v = float64(r.fanP99)
	}
	c.values = append(c.values, v)
	fmt.Fprintf(out, "run %d %s %s: %s (waited %s for %.0f %% busy; load average %s)\n",
		run+1, row.id, target, formatValue(row, v), waited.Round(100*time.Millisecond), 100*busy, loadAverage())
}

// loadAverage1 is the 1-minute load average, or -1 if unknown.
func loadAverage1() float64 {
	f := strings.Fields(loadAverage())
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
