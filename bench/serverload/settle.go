package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// A measurement that starts while the previous one still burns CPU (the
// reference server draining seconds of fan-out backlog, PostgreSQL
// checkpointing, this process collecting a thousand clients' garbage)
// measures that rather than its own row. Before each measurement the
// matrix therefore waits for the machine to be quiet.

const (
	// quietBusy is the share of all CPUs busy, over settleWindow, below
	// which the machine counts as quiet.
	quietBusy = 0.15
	// settleWindow is how long each sample of CPU time spans.
	settleWindow = 500 * time.Millisecond
)

// settle collects this process's garbage, then waits until the machine's
// CPUs were less than quietBusy busy over one settleWindow, or until
// maxWait has passed. It returns how long it waited and the busy share of
// the last window.
func settle(ctx context.Context, maxWait time.Duration) (waited time.Duration, busy float64, err error) {
	start := time.Now()
	runtime.GC()
	debug.FreeOSMemory()
	prev, err := readCPUTimes()
	if err != nil {
		return 0, 0, err
	}
	for {
		select {
		case <-ctx.Done():
			return time.Since(start), busy, ctx.Err()
		case <-time.After(settleWindow):
		}
		cur, err := readCPUTimes()
		if err != nil {
			return time.Since(start), 0, err
		}
		busy = cur.busySince(prev)
		prev = cur
		if busy < quietBusy || time.Since(start) >= maxWait {
			return time.Since(start), busy, nil
		}
	}
}

// cpuTimes are the machine's CPU times, in clock ticks, from /proc/stat.
type cpuTimes struct {
	idle, total uint64
}

// busySince is the share of CPU time spent busy between prev and t.
func (t cpuTimes) busySince(prev cpuTimes) float64 {
	total := t.total - prev.total
	if total == 0 {
		return 0
	}
	return 1 - float64(t.idle-prev.idle)/float64(total)
}

// readCPUTimes reads the aggregate "cpu" line of /proc/stat: idle is idle
// plus iowait, total the sum of every field.
func readCPUTimes() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, fmt.Errorf("read CPU times: %w", err)
	}
	return parseCPUTimes(string(b))
}

func parseCPUTimes(stat string) (cpuTimes, error) {
	for _, line := range strings.Split(stat, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		var t cpuTimes
		// user, nice, system, idle, iowait, irq, softirq, steal: guest
		// time, after them, is counted in user and nice already.
		for i, s := range f[1:min(len(f), 9)] {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return cpuTimes{}, fmt.Errorf("parse /proc/stat field %d %q: %w", i+1, s, err)
			}
			t.total += v
			if i == 3 || i == 4 { // idle, iowait
				t.idle += v
			}
		}
		return t, nil
	}
	return cpuTimes{}, errors.New("parse /proc/stat: no aggregate cpu line")
}
