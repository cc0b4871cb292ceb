package difftest

import (
	"bytes"
	"context"
	"flag"
	"fmt"
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

var (
	update   = flag.Bool("update", false, "rewrite testdata/*.golden from the reference server's transcripts")
	updateGo = flag.Bool("update-go", false, "rewrite testdata/<script>.go.golden from our server's transcripts, for the scripts in goDifferences")
)

// referenceURLEnv names an already running reference server to use instead of
// starting one (handy while writing scripts: see interop/README.md).
const referenceURLEnv = "LIVESTORE_INTEROP_REFERENCE_URL"

// A target is a sync server the scripts run against.
type target struct {
	name   string // names the target in test names and messages
	url    string // WebSocket base URL, ws://host:port
	golden string // suffix of target-specific golden files; "" means name
	skip   string // if set, the target cannot run here: why
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
// LIVESTORE_TEST_POSTGRES_URL; its runs are skipped without it). Both are
// served in-process over loopback. They share the golden files: a
// "<script>.go.golden" (a reviewed, deliberate difference from the
// reference) applies to both.
func goServerTargets(t *testing.T) []target {
	sqliteStorage, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sqliteStorage.Close() })
	targets := []target{{name: "go", url: serveGo(t, sqliteStorage), golden: "go"}}
	if why := pgtest.Missing(t); why != "" {
		return append(targets, target{name: "go-postgres", skip: why})
	}
	pgStorage := pgtest.Open(t, pgtest.Schema(t))
	return append(targets, target{name: "go-postgres", url: serveGo(t, pgStorage), golden: "go"})
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
// the new golden files instead; with -update-go, our server's transcripts of
// the scripts in goDifferences are written as <script>.go.golden.
func TestDifferential(t *testing.T) {
	targets := append([]target{referenceTarget(t)}, goServerTargets(t)...)
	runDifferential(t, targets)
}

func runDifferential(t *testing.T, targets []target) {
	for _, s := range Scripts() {
		t.Run(s.Name, func(t *testing.T) {
			// The targets are independent servers: run them side by side,
			// except while recording, when the others compare with what the
			// reference writes.
			parallel := !*update && !*updateGo
			for _, tg := range targets {
				t.Run(tg.name, func(t *testing.T) {
					if tg.skip != "" {
						t.Skip(tg.skip)
					}
					if parallel {
						t.Parallel()
					}
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
	if *updateGo && targetName == goldenName && goldenName == "go" {
		if why, ok := goDifferences[tr.Script]; ok {
			path := filepath.Join("testdata", tr.Script+".go.golden")
			if err := os.WriteFile(path, goGolden(tr, why), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
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

// goDifferences lists the scripts where our server deliberately answers
// differently from the reference, with the reasons. Only these scripts may
// have a testdata/<script>.go.golden (recorded with -update-go and reviewed
// line by line against <script>.golden); any other difference is a bug of
// the server. interop/README.md explains each difference.
var goDifferences = map[string][]string{
	"push-unchained-batch": {
		"a batch whose events are not numbered as clients number them (each seqNum = its parentSeqNum+1, each parentSeqNum = " +
			"the previous seqNum) fails with UnknownError and stores nothing: [1←0, 3←1] (a gap) and [9←4, 6←9] (the seqNum goes down), " +
			"which the reference stores as given, and [7←6, 7←6] and [9←6], which the reference also fails (on its UNIQUE constraint)",
		"so the head stays 0: the push 4←3 fails with ServerAheadError{0, 3} (the reference stores it), " +
			"and the final pull returns no events (the reference: 1, 3, 4, 9, 6)",
	},
	"push-backend-id": {
		"live updates go only to open live pulls: the non-live pull 0 of connection a has ended, " +
			"so it is not sent the events of pushes 1 and 5 (the reference sends them to every pull ever made on the socket)",
	},
	"pull-paging": {
		"live updates go only to open live pulls: the ended non-live pull 3 is not sent push 5's event (the live pull 4 is)",
	},
	"pull-byte-limit": {
		"live updates go only to open live pulls: the ended non-live pull 5 of connection a is not sent push 6's events",
	},
	"live-pull": {
		"live updates go only to open live pulls: connection c's ended non-live pull 0 gets none of the four broadcasts",
	},
	"request-ids": {
		"a request id that is not a decimal integer string (\"abc\", or the JSON number 5) is answered with an Exit " +
			"whose cause is a defect naming the problem, and the connection goes on serving later requests; " +
			"the reference's RPC handler dies silently and the socket never answers again",
	},
	"envelopes": {
		"live updates go only to open live pulls: connections a, c and g hold ended or failed pulls with id 1, " +
			"which are not sent the event pushed on connection i (the reference sends it to them as late Chunks)",
	},
}

// goGolden renders our server's transcript as a golden file whose header
// says why it differs from the reference's.
func goGolden(tr *Transcript, why []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: %s\n", tr.Script, tr.About)
	fmt.Fprintf(&b, "# Recorded from our sync server (package syncserver); regenerate with: go test ./interop/difftest -run TestDifferential -update-go\n")
	fmt.Fprintf(&b, "# It differs from %s.golden (the reference) on purpose:\n", tr.Script)
	for _, w := range why {
		fmt.Fprintf(&b, "#  - %s\n", w)
	}
	body := tr.Golden("")
	// Drop the reference header Golden writes (two comment lines).
	for range 2 {
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			body = body[i+1:]
		}
	}
	b.Write(body)
	return []byte(b.String())
}

// TestGoGoldenFilesExplained checks that every <script>.go.golden belongs to
// a script in goDifferences and the other way round.
func TestGoGoldenFilesExplained(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.go.golden"))
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range files {
		have[strings.TrimSuffix(filepath.Base(f), ".go.golden")] = true
	}
	scripts := map[string]bool{}
	for _, s := range Scripts() {
		scripts[s.Name] = true
	}
	for name := range have {
		if _, ok := goDifferences[name]; !ok {
			t.Errorf("testdata/%s.go.golden has no entry in goDifferences: a difference without a reason is a bug of the server", name)
		}
	}
	for name, why := range goDifferences {
		if !scripts[name] {
			t.Errorf("goDifferences names %q, which is not a script", name)
		}
		if !have[name] {
			t.Errorf("goDifferences names %q but testdata/%s.go.golden is missing (record it with -update-go)", name, name)
		}
		if len(why) == 0 {
			t.Errorf("goDifferences[%q] gives no reason", name)
		}
	}
}
