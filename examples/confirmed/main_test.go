package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// childEnv, when set, makes the test binary run the consumer with the
// JSON-encoded arguments it holds instead of the tests.
const childEnv = "LIVESTORE_CONFIRMED_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		var args []string
		if err := json.Unmarshal([]byte(v), &args); err != nil {
			fmt.Fprintln(os.Stderr, "confirmed child:", err)
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		err := run(ctx, args, os.Stdout)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "confirmed child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// A consumer process killed with SIGKILL again and again, while another
// client commits synced and client-only events, ends with a journal holding
// each confirmed event exactly once, in order, and nothing else.
func TestConsumerKilledHandlesEachConfirmedEventOnce(t *testing.T) {
	seed := time.Now().UnixNano()
	if v := os.Getenv("LIVESTORE_CONFIRMED_SEED"); v != "" {
		seed, _ = strconv.ParseInt(v, 10, 64)
	}
	t.Logf("seed %d (set LIVESTORE_CONFIRMED_SEED to reproduce)", seed)
	rng := rand.New(rand.NewSource(seed))

	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := syncserver.New(syncserver.Options{Storage: st})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv)
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http")

	a, err := newApp()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	producer, err := livestore.Open(ctx, a.schema, livestore.Options{
		Dir: t.TempDir(), StoreID: "todos",
		Sync: &livestore.SyncOptions{Backend: syncclient.WebSocketBackend(url, syncclient.Options{})},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	const maxEvents = 150
	produced := 0
	// produce commits one synced event and, at random, a client-only one.
	produce := func() {
		if produced >= maxEvents {
			return
		}
		id := strconv.Itoa(produced)
		evs := []livestore.Event{a.created.New(todoCreated{ID: id, Text: "todo " + id})}
		if rng.Intn(3) == 0 {
			evs = append(evs, a.renamed.New(todoCreated{ID: id, Text: "local " + id}))
		}
		if rng.Intn(4) == 0 {
			evs = append(evs, a.completed.New(todoID{ID: id}))
		}
		if err := producer.Commit(ctx, evs...); err != nil {
			t.Fatal(err)
		}
		produced++
	}
	for range 10 {
		produce()
	}

	consumerDir, journal := t.TempDir(), filepath.Join(t.TempDir(), "handled.jsonl")
	args, _ := json.Marshal([]string{"-url", url, "-store", "todos", "-dir", consumerDir, "-out", journal})
	const rounds = 5
	for round := 0; round < rounds; round++ {
		last := round == rounds-1
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), childEnv+"="+string(args))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		killAfter := 5 + rng.Intn(20)
		var head int64
		n := 0
		for line := range waitLines(t, cmd, lines) {
			seq, ok := strings.CutPrefix(line, "handled ")
			if !ok {
				continue
			}
			n++
			if !last {
				// Each handled event brings a new one, so the consumer
				// always has work while it is killed.
				produce()
				if n == killAfter {
					cmd.Process.Signal(syscall.SIGKILL)
				}
				continue
			}
			if head == 0 && produced < maxEvents {
				produce()
				continue
			}
			if head == 0 {
				head = waitPushed(t, producer)
			}
			if v, _ := strconv.ParseInt(seq, 10, 64); v >= head {
				cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		err = cmd.Wait()
		if last && err != nil {
			t.Fatalf("consumer did not stop cleanly: %v", err)
		}
		// The producer goes on while the consumer is down.
		for range 3 {
			produce()
		}
	}
	checkJournal(t, producer, journal)
}

// waitLines yields the child's lines until its output ends, failing the
// test when it stalls.
func waitLines(t *testing.T, cmd *exec.Cmd, lines <-chan string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					return
				}
				if !yield(l) {
					return
				}
			case <-time.After(60 * time.Second):
				cmd.Process.Signal(syscall.SIGKILL)
				for range lines {
				}
				t.Fatal("consumer made no progress for 60s")
			}
		}
	}
}

// waitPushed waits until the producer has no pending events and returns the
// server's head.
func waitPushed(t *testing.T, s *livestore.Store) int64 {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := s.SyncStatus(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.PendingCount == 0 && st.Connected {
			return st.UpstreamHead
		}
		if time.Now().After(deadline) {
			t.Fatalf("producer never pushed everything: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkJournal compares the journal with the confirmed events of the
// producer: every one, once, in order, and no other.
func checkJournal(t *testing.T, producer *livestore.Store, journal string) {
	t.Helper()
	data, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	var got []handled
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		var h handled
		if err := json.Unmarshal([]byte(line), &h); err != nil {
			t.Fatalf("journal line %d %q: %v", i+1, line, err)
		}
		got = append(got, h)
	}
	head := waitPushed(t, producer)
	if int64(len(got)) != head {
		t.Fatalf("journal has %d events, the server %d", len(got), head)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	i := 0
	for ev, err := range producer.ConfirmedEvents(ctx, livestore.ConfirmedEventsOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		h := got[i]
		if h.SeqNum != int64(i+1) || h.SeqNum != ev.SeqNum.Global || h.Name != ev.Name || string(h.Args) != string(ev.Args) {
			t.Fatalf("journal line %d: %d %s %s, confirmed %s %s %s", i+1, h.SeqNum, h.Name, h.Args, ev.SeqNum, ev.Name, ev.Args)
		}
		if h.Name == "v1.TodoRenamedLocally" {
			t.Fatalf("client-only event handled: %+v", h)
		}
		i++
		if i == len(got) {
			break
		}
	}
	t.Logf("%d confirmed events handled once each", len(got))
}

// A line a crash left half-written is cut off, and the cursor is the last
// complete line's seqNum.
func TestRecoverJournalCutsIncompleteLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "handled.jsonl")
	if c, err := recoverJournal(path); err != nil || c != 0 {
		t.Fatalf("missing journal: %d, %v", c, err)
	}
	full := `{"seqNum":1,"name":"a","args":{}}` + "\n" + `{"seqNum":2,"name":"b","args":{}}` + "\n"
	if err := os.WriteFile(path, []byte(full+`{"seqNum":3,"na`), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := recoverJournal(path)
	if err != nil || c != 2 {
		t.Fatalf("cursor %d, %v; want 2", c, err)
	}
	if data, _ := os.ReadFile(path); string(data) != full {
		t.Fatalf("journal after recovery: %q", data)
	}
}
