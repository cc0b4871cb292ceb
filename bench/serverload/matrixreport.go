package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// markdown is the matrix's report: how it was run, the machine, the table,
// and the rows' commands, the cells not measured and the failures.
func (m *matrix) markdown(started, finished time.Time, machine string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Sync server load: ours, the reference and the floor\n\n")
	fmt.Fprintf(&b, "`go run ./bench/serverload %s` (PostgreSQL rows: URL from `LIVESTORE_TEST_POSTGRES_URL`), %s to %s.\n\n",
		strings.Join(m.opts.args, " "), started.Format("2006-01-02 15:04"), finished.Format("15:04 MST"))
	fmt.Fprintf(&b, "Machine: %s.\n\n", machine)
	fmt.Fprintf(&b, "Each cell: min / median / max of %d run(s) of %s each; events/s for throughput rows, the p99 of the fan-out latency "+
		"(push sent → live pull received) of each run for fan-out rows. The runs are interleaved: each run measures every row on "+
		"ours, the reference and the floor in turn, on fresh storage (new store ids, new SQLite file or PostgreSQL schema, "+
		"new reference server per run, and again after each fan-out row it measured, since it keeps a CPU busy draining its backlog long after). Before each measurement this process collects its garbage and waits until the CPUs were "+
		"less than %.0f %% busy over %s (at most %s), so that no measurement starts while the one before still burns CPU; "+
		"busy: the share of the CPUs busy over that last window, min–max; load avg: the 1-minute load average before "+
		"each measurement of the row, min–max.\n\n",
		m.opts.runs, m.opts.duration, 100*quietBusy, settleWindow, m.opts.maxSettle)
	b.WriteString("| row | target | ours | reference | floor | busy | load avg |\n|---|---|--:|--:|--:|--:|--:|\n")
	for _, r := range m.rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.title, r.goal,
			m.cellText(r, targetOurs), m.cellText(r, targetReference), m.cellText(r, targetFloor),
			busyRange(m.busy[r.id]), loadRange(m.loads[r.id]))
	}
	b.WriteString("\n" + targetsExplained)
	b.WriteString("\nRows (flags of `go run ./bench/serverload`, plus `--duration` and `--target`):\n\n")
	for _, r := range m.rows {
		fmt.Fprintf(&b, "- %s: `%s`\n", r.id, strings.Join(r.args, " "))
	}
	m.notes(&b)
	return b.String()
}

// targetsExplained says what the three targets are.
const targetsExplained = `Targets: **ours** is this module's sync server (in this process, or as ` + "`livestore serve`" + ` processes where
the row says so); **reference** is ` + "`@livestore/sync-cf`" + ` 0.4.0 in workerd (` + "`wrangler dev --local`" + `, as interop/ runs
it), driven by the same clients over the same wire protocol; **floor** is the same work without a sync server: for
ingest rows each pusher appends its batches straight to the storage (its own statements, transactions and
durability settings, through the same driver; one pusher per store, each append awaited), for fan-out rows a bare
WebSocket broadcaster on the same library acknowledges each push and queues its page, encoded once, to every live
pull of the store (no storage, no flow control); across replicas the pushes are appended through one storage handle and
relayed to the live pulls by another handle's notification and read. Clients, servers and PostgreSQL share the machine.
`

// cellText is row's cell of target: min / median / max, or why not.
func (m *matrix) cellText(r matrixRow, target string) string {
	if !slices.Contains(m.opts.targets, target) {
		return "not run"
	}
	c := m.cells[r.id+"/"+target]
	switch {
	case c == nil:
		return "not run"
	case c.na != "":
		return "n/a¹"
	case len(c.values) == 0:
		return fmt.Sprintf("failed² (%d runs)", len(c.errs))
	}
	v := slices.Clone(c.values)
	slices.Sort(v)
	s := fmt.Sprintf("%s / %s / %s", formatValue(r, v[0]), formatValue(r, v[len(v)/2]), formatValue(r, v[len(v)-1]))
	if r.fanout {
		s += " ms"
	}
	if len(c.errs) > 0 {
		s += fmt.Sprintf(" (%d of %d runs failed²)", len(c.errs), len(c.errs)+len(c.values))
	}
	if len(v) < m.opts.runs && len(c.errs) == 0 {
		s += fmt.Sprintf(" (%d runs)", len(v))
	}
	if c.shared != "" {
		s += " (=" + c.shared + ")"
	}
	return s
}

// notes lists the cells not measured and the failures.
func (m *matrix) notes(b *strings.Builder) {
	var na, failed []string
	for _, r := range m.rows {
		for _, t := range m.opts.targets {
			c := m.cells[r.id+"/"+t]
			if c == nil {
				continue
			}
			if c.na != "" {
				na = append(na, fmt.Sprintf("- %s, %s: %s", r.id, t, c.na))
			}
			for _, e := range c.errs {
				failed = append(failed, fmt.Sprintf("- %s, %s: %s", r.id, t, e))
			}
		}
	}
	if len(na) > 0 {
		b.WriteString("\n¹ Not applicable:\n\n" + strings.Join(na, "\n") + "\n")
	}
	if len(failed) > 0 {
		b.WriteString("\n² Failed runs:\n\n" + strings.Join(failed, "\n") + "\n")
	}
}

// formatValue writes events/s with thousands separators, or a latency
// (nanoseconds) in milliseconds.
func formatValue(r matrixRow, v float64) string {
	if r.fanout {
		ms := v / float64(time.Millisecond)
		if ms < 10 {
			return strconv.FormatFloat(ms, 'f', 1, 64)
		}
		return thousands(int64(ms + 0.5))
	}
	return thousands(int64(v + 0.5))
}

// thousands writes n with commas between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// busyRange is the range of busy shares in percent, e.g. "3–12 %".
func busyRange(busy []float64) string {
	var v []float64
	for _, b := range busy {
		if b >= 0 {
			v = append(v, 100*b)
		}
	}
	if len(v) == 0 {
		return "?"
	}
	lo, hi := slices.Min(v), slices.Max(v)
	if math.Round(lo) == math.Round(hi) {
		return fmt.Sprintf("%.0f %%", lo)
	}
	return fmt.Sprintf("%.0f–%.0f %%", lo, hi)
}

// loadRange is the range of loads, e.g. "1.9–2.3".
func loadRange(loads []float64) string {
	var v []float64
	for _, l := range loads {
		if l >= 0 {
			v = append(v, l)
		}
	}
	if len(v) == 0 {
		return "?"
	}
	lo, hi := slices.Min(v), slices.Max(v)
	if lo == hi {
		return strconv.FormatFloat(lo, 'f', 2, 64)
	}
	return strconv.FormatFloat(lo, 'f', 2, 64) + "–" + strconv.FormatFloat(hi, 'f', 2, 64)
}
