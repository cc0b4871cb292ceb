package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver/pgstore/pgtest"
)

func runLoad(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(args, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	return out.String()
}

func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// TestSmoke runs a tiny load to keep the program working.
func TestSmoke(t *testing.T) {
	out := runLoad(t, "--duration", "500ms", "--clients", "2", "--stores", "1", "--live", "3", "--batch", "10", "--rate", "400")
	wantLines(t, out, "events/s", "push latency", "fan-out latency", "machine:", "load average")
}

// Raw pushers at a rate pipeline their pushes, light followers see every
// event, and --runs summarises.
func TestRawPushersAtRate(t *testing.T) {
	out := runLoad(t, "--duration", "400ms", "--pushers", "raw", "--light-followers", "--clients", "2", "--stores", "2",
		"--live", "4", "--batch", "5", "--rate", "500", "--runs", "2")
	wantLines(t, out, "clients=2 (raw)", "over 2 runs:", "events/s", "fan-out p99")
}

// Raw pushers without a rate await each push and rebase on a pusher that
// won, like syncclient pushers.
func TestRawPushersRebase(t *testing.T) {
	out := runLoad(t, "--duration", "300ms", "--pushers", "raw", "--clients", "3", "--stores", "1", "--live", "1", "--batch", "3")
	wantLines(t, out, "events/s", "server-ahead retries")
}

// A raw push is the request syncproto encodes for the same batch.
func TestRawPushEncoding(t *testing.T) {
	l := &load{cfg: config{batch: 3, argBytes: 50, stores: 1}, runID: "x"}
	p := &rawPusher{l: l, storeID: l.storeID(0), client: "p0", pad: strings.Repeat("x", 10)}
	sent := time.Unix(1700000000, 123)
	msg, err := syncproto.DecodeClientMessage(p.appendPush(nil, "7", 41, sent))
	if err != nil {
		t.Fatal(err)
	}
	req, ok := msg.(*syncproto.Request)
	if !ok || req.ID != "7" || req.Tag != syncproto.TagPush {
		t.Fatalf("decoded %#v", msg)
	}
	push, err := syncproto.DecodePushRequest(req.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if want := loadBatch(41, 3, "p0", sent, p.pad); !reflect.DeepEqual(push.Batch, want) || push.StoreID != l.storeID(0) || push.BackendID != nil {
		t.Fatalf("decoded %+v, want batch %+v", push, want)
	}
}

// With --replicas, live clients of the last server receive what pushers
// send to the first, through PostgreSQL.
func TestReplicas(t *testing.T) {
	url := pgtest.URL(t)
	out := runLoad(t, "--storage", "postgres", "--postgres", url, "--replicas", "3", "--duration", "500ms",
		"--pushers", "raw", "--light-followers", "--clients", "2", "--stores", "2", "--live", "4", "--batch", "10", "--rate", "400")
	wantLines(t, out, "replicas=3 push-to=first", "fan-out latency")
}

// The floor of an ingest row appends straight to the storage; the floor
// of a fan-out row is a bare broadcaster whose live pulls see every event.
func TestFloor(t *testing.T) {
	out := runLoad(t, "--target", "floor", "--duration", "300ms", "--clients", "2", "--stores", "2", "--live", "0", "--batch", "10")
	wantLines(t, out, "target=floor", "events/s", "push latency")
	out = runLoad(t, "--target", "floor", "--duration", "300ms", "--pushers", "raw", "--light-followers",
		"--clients", "1", "--stores", "1", "--live", "5", "--batch", "5", "--rate", "500")
	wantLines(t, out, "fan-out latency", "(5 live clients, ")
}

// The floor across replicas relays pushes through PostgreSQL's
// notifications: live pulls on the last see pushes to the first.
func TestFloorAcrossReplicas(t *testing.T) {
	url := pgtest.URL(t)
	out := runLoad(t, "--target", "floor", "--storage", "postgres", "--postgres", url, "--replicas", "3", "--duration", "300ms",
		"--pushers", "raw", "--light-followers", "--clients", "1", "--stores", "1", "--live", "4", "--batch", "10", "--rate", "400")
	wantLines(t, out, "target=floor", "replicas=3", "(4 live clients, ")
}

// With --serve-processes, the replicas are `livestore serve` processes on
// one PostgreSQL schema, and live pulls on the last see pushes to the first.
func TestServeProcesses(t *testing.T) {
	url := pgtest.URL(t)
	out := runLoad(t, "--storage", "postgres", "--postgres", url, "--replicas", "2", "--serve-processes", "--duration", "300ms",
		"--pushers", "raw", "--light-followers", "--clients", "1", "--stores", "1", "--live", "3", "--batch", "10", "--rate", "200")
	wantLines(t, out, "replicas=2 push-to=first (serve processes)", "fan-out latency")
}

// cellNumbers matches a cell of min / median / max events/s.
var cellNumbers = regexp.MustCompile(`^[0-9][0-9,]* / [0-9][0-9,]* / [0-9][0-9,]*`)

// busyCell matches the share of the CPUs busy before a row's measurements.
var busyCell = regexp.MustCompile(`^[0-9]+(–[0-9]+)? %$`)

// The matrix measures a row on each target and writes a table with its
// numbers; the reference only where interop/node_modules is installed.
func TestMatrix(t *testing.T) {
	targets := "ours,floor"
	if _, err := os.Stat(filepath.Join("..", "..", "interop", "node_modules", "wrangler", "package.json")); err == nil {
		targets += ",reference"
	}
	path := filepath.Join(t.TempDir(), "matrix.md")
	out := runLoad(t, "--matrix", "--rows", "ingest1-raw", "--runs", "1", "--duration", "300ms", "--settle", "0", "--targets", targets, "--out", path)
	md, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, string(md)) {
		t.Errorf("the table written to --out is not the one printed")
	}
	wantLines(t, string(md), "| row | target | ours | reference | floor | busy | load avg |", "Machine: ", "fsync", "ingest1-raw: `")
	var row []string
	for _, line := range strings.Split(string(md), "\n") {
		if strings.HasPrefix(line, "| same, raw pushers |") {
			row = strings.Split(line, " | ")
		}
	}
	if len(row) != 7 {
		t.Fatalf("no row of 7 cells for ingest1-raw:\n%s", md)
	}
	if !busyCell.MatchString(row[5]) {
		t.Errorf("busy cell %q is not a range of percentages", row[5])
	}
	for i, target := range []string{"ours", "reference", "floor"} {
		cell := row[2+i]
		if !strings.Contains(targets, target) {
			if cell != "not run" {
				t.Errorf("%s: cell %q, want not run", target, cell)
			}
			continue
		}
		if !cellNumbers.MatchString(cell) {
			t.Errorf("%s: cell %q has no numbers:\n%s", target, cell, md)
		}
	}
}

// A target that cannot run a row says why, in the matrix as n/a.
func TestMatrixNotApplicable(t *testing.T) {
	out := runLoad(t, "--matrix", "--rows", "serve3-fanout", "--runs", "1", "--duration", "100ms", "--settle", "0", "--targets", "reference,floor", "--postgres", "")
	wantLines(t, out, "n/a¹", "serve3-fanout, reference: the reference is one workerd process", "serve3-fanout, floor: no PostgreSQL URL")
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--replicas", "2"},
		{"--pushers", "other"},
		{"--pushers", "raw", "--rate", "10", "--clients", "2", "--stores", "1"},
		{"--runs", "0"},
		{"--target", "other"},
		{"--target", "reference", "--storage", "postgres", "--postgres", "postgres://x", "--replicas", "2"},
		{"--serve-processes"},
		{"--matrix", "--targets", "other"},
		{"--matrix", "--rows", "nosuchrow"},
		{"--matrix", "--settle", "-1s"},
	} {
		if err := run(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestParseCPUTimesAndBusyShare(t *testing.T) {
	const before = "cpu  100 5 50 800 20 1 2 3 7 0\ncpu0 50 2 25 400 10 0 1 1 0 0\nintr 1\n"
	const after = "cpu  160 5 70 900 30 1 2 3 9 0\ncpu0 80 2 35 450 15 0 1 1 0 0\n"
	a, err := parseCPUTimes(before)
	if err != nil {
		t.Fatal(err)
	}
	// Guest time (the ninth and tenth fields) is part of user and nice.
	if a.total != 981 || a.idle != 820 {
		t.Fatalf("parsed %+v, want total 981, idle 820", a)
	}
	b, err := parseCPUTimes(after)
	if err != nil {
		t.Fatal(err)
	}
	// 190 ticks passed, 110 of them idle or waiting for I/O.
	if got, want := b.busySince(a), 1-110.0/190; math.Abs(got-want) > 1e-9 {
		t.Fatalf("busy %v, want %v", got, want)
	}
	if got := a.busySince(a); got != 0 {
		t.Fatalf("busy over no time %v, want 0", got)
	}
	for _, bad := range []string{"", "intr 1\n", "cpu  1 2 x 4 5\n"} {
		if _, err := parseCPUTimes(bad); err == nil {
			t.Errorf("parseCPUTimes(%q) succeeded", bad)
		}
	}
}
