package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/pgstore/pgtest"
)

// historyLines are export lines of store "s" without a backend id: e1..n,
// with line i (1-based) changed by edit when i == at.
func historyLines(n, at int, edit func(*exportLine)) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		l := exportLine{StoreID: "s", SeqNum: int64(i), ParentSeqNum: int64(i - 1), Name: "v1.Set",
			Args: json.RawMessage(fmt.Sprintf(`{"key": "k%d", "value": %d}`, i, i)), ClientID: "c1", SessionID: "s1",
			CreatedAt: "2026-11-01T12:00:00Z"}
		if i == at {
			edit(&l)
		}
		j, _ := json.Marshal(l)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// importTarget is a storage given by command-line flags.
type importTarget struct {
	name string
	// prepare returns the flags naming a new, empty storage (or skips t)
	// and opens that storage.
	prepare func(t *testing.T) (flags []string, open func(t *testing.T) syncserver.Storage)
}

func importTargets() []importTarget {
	return []importTarget{
		{"sqlite", func(t *testing.T) ([]string, func(t *testing.T) syncserver.Storage) {
			dataDir := filepath.Join(t.TempDir(), "data")
			return []string{"--data", dataDir}, func(t *testing.T) syncserver.Storage { return openSQLite(t, dataDir) }
		}},
		{"postgres", func(t *testing.T) ([]string, func(t *testing.T) syncserver.Storage) {
			schema := pgtest.Schema(t)
			return []string{"--postgres", pgtest.URL(t), "--pg-schema", schema}, func(t *testing.T) syncserver.Storage { return pgtest.Open(t, schema) }
		}},
	}
}

func TestImportRefusesAnotherHistory(t *testing.T) {
	file := func(t *testing.T, text string) string {
		p := filepath.Join(t.TempDir(), "events.jsonl")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, target := range importTargets() {
		t.Run(target.name, func(t *testing.T) {
			flags, open := target.prepare(t)
			code, stdout, stderr := runCLI(t, append(append([]string{"import"}, flags...), file(t, historyLines(3, 0, nil)))...)
			if code != 0 || !strings.Contains(stdout, "s: imported 3 events") {
				t.Fatalf("first import: exit %d\n%s%s", code, stdout, stderr)
			}
			st := open(t)
			ctx := context.Background()
			before, err := st.Read(ctx, "s", 0, 100, 100)
			if err != nil || len(before) != 3 {
				t.Fatalf("store holds %d events, %v", len(before), err)
			}
			for _, tc := range []struct {
				name string
				at   int
				edit func(*exportLine)
				want string
			}{
				{"name", 2, func(l *exportLine) { l.Name = "v1.Other" }, `already holds a different e2 (name "v1.Set", the input's "v1.Other")`},
				{"args", 3, func(l *exportLine) { l.Args = json.RawMessage(`{"key":"k3","value":33}`) }, "already holds a different e3 (other args)"},
				{"args type", 1, func(l *exportLine) { l.Args = json.RawMessage(`{"key":"k1","value":"1"}`) }, "already holds a different e1 (other args)"},
				{"clientId", 1, func(l *exportLine) { l.ClientID = "c2" }, `already holds a different e1 (clientId "c1", the input's "c2")`},
				{"sessionId", 2, func(l *exportLine) { l.SessionID = "s2" }, `already holds a different e2 (sessionId "s1", the input's "s2")`},
			} {
				// Lines 4 and 5 continue the other history: none is appended.
				code, stdout, stderr := runCLI(t, append(append([]string{"import"}, flags...), file(t, historyLines(5, tc.at, tc.edit)))...)
				if code != 1 || !strings.Contains(stderr, `store "s" `+tc.want) || !strings.Contains(stderr, "nothing of it was appended") {
					t.Errorf("%s: exit %d\n%s%s", tc.name, code, stdout, stderr)
				}
				after, err := st.Read(ctx, "s", 0, 100, 100)
				if err != nil || fmt.Sprint(after) != fmt.Sprint(before) {
					t.Fatalf("%s: the store changed:\n%v\nwant\n%v (%v)", tc.name, after, before, err)
				}
			}
			// The same events, spelt otherwise (keys reordered, no blanks), are
			// skipped, and the import goes on.
			same := historyLines(5, 2, func(l *exportLine) { l.Args = json.RawMessage(`{"value":2,"key":"k2"}`) })
			code, stdout, stderr = runCLI(t, append(append([]string{"import"}, flags...), file(t, same))...)
			if code != 0 || !strings.Contains(stdout, "s: imported 2 events, skipped 3 already present, head e5") {
				t.Fatalf("same history: exit %d\n%s%s", code, stdout, stderr)
			}
			head, err := st.Head(ctx, "s")
			if err != nil || head != 5 {
				t.Fatalf("head %d, %v", head, err)
			}
		})
	}
}

func TestImportComparesInWindows(t *testing.T) {
	// More events than one read of the stored ones, so the comparison moves
	// its window; the last one differs.
	dataDir := filepath.Join(t.TempDir(), "data")
	n := heldWindow*2 + 10
	p := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(p, []byte(historyLines(n, 0, nil)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runCLI(t, "import", "--data", dataDir, p); code != 0 {
		t.Fatalf("first import: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr := runCLI(t, "import", "--data", dataDir, p)
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf("skipped %d already present", n)) {
		t.Fatalf("same import: exit %d\n%s%s", code, stdout, stderr)
	}
	other := historyLines(n+1, n, func(l *exportLine) {
		l.CreatedAt = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)
		l.Name = "v1.Late"
	})
	if err := os.WriteFile(p, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCLI(t, "import", "--data", dataDir, p)
	if code != 1 || !strings.Contains(stderr, fmt.Sprintf(`store "s" already holds a different e%d (name`, n)) {
		t.Fatalf("differing last event: exit %d\n%s%s", code, stdout, stderr)
	}
	head, err := openSQLite(t, dataDir).Head(context.Background(), "s")
	if err != nil || head != int64(n) {
		t.Fatalf("head %d, want %d (%v)", head, n, err)
	}
}
