package main

import (
	"bytes"
	"reflect"
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

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--replicas", "2"},
		{"--pushers", "other"},
		{"--pushers", "raw", "--rate", "10", "--clients", "2", "--stores", "1"},
		{"--runs", "0"},
	} {
		if err := run(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
