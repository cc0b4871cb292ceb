package difftest

import (
	"context"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/interop/harness"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/pgstore/pgtest"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the reference server's transcripts")

// referenceURLEnv names an already running reference server to use instead of
// starting one (handy while writing scripts: see interop/README.md).
const referenceURLEnv = "LIVESTORE_INTEROP_REFERENCE_URL"

// A target is a sync server the scripts run against.
type target struct {
	name   string // names the target in test names and messages
	url    string // WebSocket base URL, ws://host:port
	golden string // suffix of target-specific golden files; "" means name
}

// referenceTarget is the reference sync server, started for this test.
func referenceTarget(t *testing.T) target {
	if url := os.Getenv(referenceURLEnv); url != "" {
		return target{name: "reference", url: url}
	}
	return target{name: "reference", url: harness.StartReferenceServer(t)}
}

// goServerTargets returns our sync server (package syncserver) as targets,
// once per storage: "go" on SQLite (sqlitestore) and "go-postgres" on
// PostgreSQL (pgstore, in a schema of its own on the database named by
// LIVESTORE_TEST_POSTGRES_URL). Both are served in-process over loopback.
// They share the golden files: a "<script>.go.golden" (a reviewed,
// deliberate difference from the reference) applies to both.
func goServerTargets(t *testing.T) []target {
	sqliteStorage, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sqliteStorage.Close() })
	pgStorage := pgtest.Open(t, pgtest.Schema(t))
	return []target{
		{name: "go", url: serveGo(t, sqliteStorage), golden: "go"},
		{name: "go-postgres", url: serveGo(t, pgStorage), golden: "go"},
	}
}

// serveGo serves a syncserver on storage over loopback until the test ends.
func serveGo(t *testing.T, storage syncserver.Storage) string {
	t.Helper()
	srv, err := syncserver.New(syncserver.Options{Storage: storage})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.CloseClientConnections()
		_ = srv.Close()
		hs.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

// TestDifferential runs every script against every target and compares each
// transcript, field by field, with the golden file recorded from the
// reference server. With -update, the reference's transcripts are written as
// the new golden files instead.
func TestDifferential(t *testing.T) {
	targets := append([]target{referenceTarget(t)}, goServerTargets(t)...)
	runDifferential(t, targets)
}

func runDifferential(t *testing.T, targets []target) {
	for _, s := range Scripts() {
		t.Run(s.Name, func(t *testing.T) {
			for _, tg := range targets {
				t.Run(tg.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
					defer cancel()
					start := time.Now()
					tr, err := Run(ctx, tg.url, s, Options{})
					t.Logf("%s against %s: %d lines in %v", s.Name, tg.name, len(tr.Lines), time.Since(start).Round(time.Millisecond))
					if err != nil {
						t.Fatalf("%v\ntranscript so far (end):\n%s", err, transcriptTail(tr, 30))
					}
					golden := tg.golden
					if golden == "" {
						golden = tg.name
					}
					checkGolden(t, tg.name, golden, tr)
				})
			}
		})
	}
}

func checkGolden(t *testing.T, targetName, goldenName string, tr *Transcript) {
	t.Helper()
	if *update && targetName == "reference" {
		path := filepath.Join("testdata", tr.Script+".golden")
		if err := os.WriteFile(path, tr.Golden("the reference sync server (@livestore/sync-cf 0.4.0, workerd)"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	path := GoldenPath("testdata", tr.Script, goldenName)
	want, err := ReadGolden(path)
	if err != nil {
		t.Fatalf("%v (record golden files with -update)", err)
	}
	if diffs := Compare(tr.Lines, want); len(diffs) > 0 {
		t.Errorf("%s differs from %s:\n%s", targetName, path, strings.Join(diffs, "\n"))
	}
}

// transcriptTail is the last n lines of tr, each clipped, for failure messages.
func transcriptTail(tr *Transcript, n int) string {
	lines := tr.Lines[max(0, len(tr.Lines)-n):]
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = clip(l)
	}
	return strings.Join(out, "\n")
}
