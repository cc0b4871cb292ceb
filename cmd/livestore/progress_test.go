package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/creack/pty"
)

// openPTY returns the terminal end of a new pseudo-terminal and a function
// that closes it and returns everything written to it.
func openPTY(t *testing.T) (*os.File, func() string) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 160}); err != nil {
		t.Fatal(err)
	}
	var screen bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		io.Copy(&screen, ptmx) // ends with EIO once the terminal end closes
	}()
	return tty, func() string {
		tty.Close()
		<-read
		ptmx.Close()
		return screen.String()
	}
}

// On a terminal, export and import draw a bar with the rate and the time
// elapsed and left, then leave one summary line.
func TestProgressBarOnTerminal(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	seedStorage(t, data)
	out := filepath.Join(t.TempDir(), "all.jsonl")
	tty, screen := openPTY(t)
	ctx := context.Background()
	if code := run(ctx, []string{"export", "--data", data, "--out", out}, io.Discard, tty); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, screen())
	}
	if code := run(ctx, []string{"import", "--data", filepath.Join(t.TempDir(), "dst"), out}, io.Discard, tty); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, screen())
	}
	s := screen()
	// The rate's figure and unit (events/s, /min, /hr) depend on how fast
	// this machine is; its label is always drawn, as are the bytes read of
	// the file's size.
	for _, want := range []string{
		"exporting", "importing", "/2503, ", " events/", "\r",
		"exported 2503 events of 2 stores in ", "imported 2503 events into 2 stores in ",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, s)
		}
	}
	if !regexp.MustCompile(`\d+ [kM]?B/\d+ [kM]?B`).MatchString(s) {
		t.Errorf("terminal output shows no bytes read of the file's size:\n%q", s)
	}
	// [elapsed:left]
	if !regexp.MustCompile(`\[\d+s:\d+s\]`).MatchString(s) {
		t.Errorf("terminal output shows no time elapsed and left:\n%q", s)
	}
}

// Without a terminal the same work writes one summary line each, no bar.
func TestProgressSummaryWithoutTerminal(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	seedStorage(t, data)
	out := filepath.Join(t.TempDir(), "all.jsonl")
	code, _, stderr := runCLI(t, "export", "--data", data, "--out", out)
	if code != 0 || !regexp.MustCompile(`^exported 2503 events of 2 stores in \d+\.\ds\n$`).MatchString(stderr) {
		t.Fatalf("export: exit %d, stderr %q", code, stderr)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	code, _, stderr = runCLI(t, "import", "--data", dst, out)
	if code != 0 || !regexp.MustCompile(`^imported 2503 events into 2 stores in \d+\.\ds\n$`).MatchString(stderr) {
		t.Fatalf("import: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "import", "--data", dst, out)
	if code != 0 || !regexp.MustCompile(`^imported 0 events into 2 stores in \d+\.\ds \(skipped 2503 already present\)\n$`).MatchString(stderr) {
		t.Fatalf("import again: exit %d, stderr %q", code, stderr)
	}
}
