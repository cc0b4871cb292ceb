package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An export to a file replaces it whole or not at all.
func TestExportAtomic(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	seedStorage(t, data)
	outDir := t.TempDir()
	out := filepath.Join(outDir, "backup.jsonl")
	const old = "the previous backup\n"
	if err := os.WriteFile(out, []byte(old), 0o640); err != nil {
		t.Fatal(err)
	}
	onlyBackup := func(when string) {
		t.Helper()
		entries, err := os.ReadDir(outDir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != "backup.jsonl" {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("%s: directory holds %v", when, names)
		}
	}

	if code, _, stderr := runCLI(t, "export", "--data", data, "--out", out, "nope"); code != 1 || !strings.Contains(stderr, `no store "nope"`) {
		t.Fatalf("unknown store: exit %d %s", code, stderr)
	}
	if b, _ := os.ReadFile(out); string(b) != old {
		t.Fatalf("after a refused export the backup holds %.100q", b)
	}
	onlyBackup("after a refused export")

	// A storage that fails in the middle of the events: the pages at the end
	// of the file are overwritten, the stores table at its start is intact.
	broken := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(broken, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(data, "sync.db"))
	if err != nil {
		t.Fatal(err)
	}
	half := len(b) / 2 / 4096 * 4096
	copy(b[half:], bytes.Repeat([]byte{0xa5}, len(b)-half))
	if err := os.WriteFile(filepath.Join(broken, "sync.db"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "export", "--data", broken, "--out", out)
	if code != 1 || !strings.Contains(stderr, "livestore export: store alpha: ") {
		t.Fatalf("export of a broken storage: exit %d %s", code, stderr)
	}
	if b, _ := os.ReadFile(out); string(b) != old {
		t.Fatalf("after a failed export the backup holds %.100q", b)
	}
	onlyBackup("after a failed export")

	if code, _, stderr := runCLI(t, "export", "--data", data, "--out", out); code != 0 {
		t.Fatalf("export: exit %d %s", code, stderr)
	}
	b, err = os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(b, []byte("\n")); n != 2503 {
		t.Fatalf("backup has %d lines, want 2503", n)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("backup mode %v, %v; want the old file's 0640", fi.Mode(), err)
	}
	onlyBackup("after an export")
}
