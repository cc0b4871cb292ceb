// Package progress reports the progress of long work — an import, an
// export, a rebuild of state — to a person: a bar with the rate and the time
// left while the output is a terminal, and otherwise (a log file, a pipe, CI)
// nothing until the one summary line at the end, so that logs stay
// readable.
//
// It only draws what its caller counts: it does no work, reads no input
// and logs nothing; the caller says how far the work has got and when it
// ends.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Bar reports the progress of one piece of work. Its methods may be called
// from any goroutine.
type Bar struct {
	w     io.Writer
	start time.Time

	mu   sync.Mutex
	bar  *progressbar.ProgressBar // nil when w is not a terminal
	done bool
}

// New starts reporting work of total units named unit (e.g. "events"),
// described as what (e.g. "importing"). A negative total means unknown: the
// bar then shows the count and the rate without a time left.
func New(w io.Writer, total int64, what, unit string) *Bar {
	return newBar(w, total, what, progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString(unit))
}

// NewBytes is New for work measured in bytes, e.g. reading a file.
func NewBytes(w io.Writer, total int64, what string) *Bar {
	return newBar(w, total, what, progressbar.OptionShowBytes(true), progressbar.OptionShowCount())
}

func newBar(w io.Writer, total int64, what string, unit ...progressbar.Option) *Bar {
	b := &Bar{w: w, start: time.Now()}
	if !IsTerminal(w) {
		return b
	}
	if total < 0 {
		total = -1
	}
	opts := append([]progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true),
		// Without this the library animates an unknown length from a
		// goroutine of its own that outlives an abandoned bar.
		progressbar.OptionSetSpinnerChangeInterval(0),
	}, unit...)
	b.bar = progressbar.NewOptions64(total, opts...)
	return b
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// Add counts n more units done.
func (b *Bar) Add(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil && !b.done {
		_ = b.bar.Add64(n)
	}
}

// Set sets the units done.
func (b *Bar) Set(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil && !b.done {
		_ = b.bar.Set64(n)
	}
}

// Elapsed is the time since the bar started.
func (b *Bar) Elapsed() time.Duration { return time.Since(b.start) }

// Done removes the bar and writes summary as a line of its own; an empty
// summary writes nothing. Later calls do nothing.
func (b *Bar) Done(summary string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	if b.bar != nil {
		_ = b.bar.Finish()
		_ = b.bar.Exit()
	}
	if summary != "" {
		fmt.Fprintln(b.w, summary)
	}
}

// Seconds formats d for a summary line: "7.2s".
func Seconds(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

// Rematerialize returns a function for livestore.Options.OnRematerialize
// that shows a rebuild of state on w: a bar on a terminal, and when the
// rebuild ends a line such as "rebuilt state from 500000 events in 7.2s".
// Building the state of an empty eventlog (every new store does) shows
// nothing.
func Rematerialize(w io.Writer) func(done, total int64) {
	var mu sync.Mutex
	var cur *Bar
	return func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if total == 0 {
			return
		}
		if done == 0 {
			if cur != nil {
				cur.Done("") // a rebuild that failed, or began again
			}
			cur = New(w, total, "rebuilding state", "events")
		}
		if cur == nil {
			return // the end reported again
		}
		cur.Set(done)
		if done >= total {
			cur.Done(fmt.Sprintf("rebuilt state from %d events in %s", total, Seconds(cur.Elapsed())))
			cur = nil
		}
	}
}
