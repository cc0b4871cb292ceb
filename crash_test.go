package livestore_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
)

const crashChildEnv = "LIVESTORE_CRASH_CHILD_DIR"

// TestCrashChild is the child process of TestCrashSafety: it commits batches
// until it is killed, printing "ack <batch>" after each Commit returns. With
// LIVESTORE_CRASH_WRITERS=n, n goroutines commit at once (their commits
// share transactions); writer w commits batches start+w, start+w+n, ...
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		return // only meaningful as a child of TestCrashSafety
	}
	a := newTodoApp(t)
	durability := livestore.DurabilityFull
	if os.Getenv("LIVESTORE_CRASH_DURABILITY") == "process" {
		durability = livestore.DurabilityProcess
	}
	s, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: dir, Durability: durability})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	start, _ := strconv.Atoi(os.Getenv("LIVESTORE_CRASH_START"))
	writers, _ := strconv.Atoi(os.Getenv("LIVESTORE_CRASH_WRITERS"))
	writers = max(writers, 1)
	var out sync.Mutex
	for w := 0; w < writers; w++ {
		go func() {
			for b := start + w; ; b += writers {
				evs := make([]livestore.Event, 0, 5)
				for i := 0; i < 5; i++ {
					id := fmt.Sprintf("b%d-%d", b, i)
					evs = append(evs, a.created.New(todoCreated{ID: id, Text: strings.Repeat("x", 100*(i+1))}))
				}
				evs = append(evs, a.completed.New(todoID{ID: fmt.Sprintf("b%d-0", b)}))
				err := s.Commit(context.Background(), evs...)
				out.Lock()
				if err != nil {
					fmt.Println("error", err)
					os.Exit(1)
				}
				fmt.Println("ack", b)
				out.Unlock()
			}
		}()
	}
	select {}
}

func TestCrashSafety(t *testing.T) {
	for _, d := range []string{"full", "process"} {
		t.Run(d, func(t *testing.T) { crashSafety(t, d, 1) })
	}
	// Concurrent committers: the process is killed while groups of their
	// commits are being written; no commit that returned may be lost.
	t.Run("full-8-writers", func(t *testing.T) { crashSafety(t, "full", 8) })
}

func crashSafety(t *testing.T, durability string, writers int) {
	seed := time.Now().UnixNano()
	if v := os.Getenv("LIVESTORE_CRASH_SEED"); v != "" {
		seed, _ = strconv.ParseInt(v, 10, 64)
	}
	t.Logf("seed %d (set LIVESTORE_CRASH_SEED to reproduce)", seed)
	rng := rand.New(rand.NewSource(seed))
	a := newTodoApp(t)
	dir := t.TempDir()
	acked := map[int]bool{}
	next := 0
	for round := 0; round < 4; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "LIVESTORE_CRASH_DURABILITY="+durability,
			"LIVESTORE_CRASH_START="+strconv.Itoa(next), "LIVESTORE_CRASH_WRITERS="+strconv.Itoa(writers))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 20 + rng.Intn(200)
		sc := bufio.NewScanner(out)
		n := 0
		for sc.Scan() {
			line := sc.Text()
			if b, ok := strings.CutPrefix(line, "ack "); ok {
				v, _ := strconv.Atoi(b)
				acked[v] = true
				next = max(next, v+writers)
				n++
				if n == killAfter {
					// Kill while the child is in the middle of its next commit.
					time.Sleep(time.Duration(rng.Intn(300)) * time.Microsecond)
					cmd.Process.Signal(syscall.SIGKILL)
				}
			} else if strings.HasPrefix(line, "error") {
				t.Fatalf("child: %s", line)
			}
		}
		cmd.Wait()
		next += 1000 // ids of a batch that may have been half-written are never reused

		s, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: dir})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		batches := map[int]int{}
		var prev eventlog.SeqNum
		for ev, err := range s.Events(context.Background(), eventlog.Root) {
			if err != nil {
				t.Fatal(err)
			}
			if ev.SeqNum.Global != prev.Global+1 {
				t.Fatalf("round %d: gap: %s after %s", round, ev.SeqNum, prev)
			}
			prev = ev.SeqNum
			if ev.Name == "v1.TodoCreated" {
				var id string
				fmt.Sscanf(string(ev.Args), `{"id":"b%s`, &id)
				b, _ := strconv.Atoi(strings.SplitN(id, "-", 2)[0])
				batches[b]++
			}
		}
		for b := range acked {
			if batches[b] != 5 {
				t.Fatalf("round %d: acknowledged batch %d has %d of 5 events", round, b, batches[b])
			}
		}
		for b, n := range batches {
			if n != 5 {
				t.Fatalf("round %d: partial batch %d: %d events", round, b, n)
			}
		}
		before := dump(t, s)
		if err := s.Rematerialize(context.Background()); err != nil {
			t.Fatal(err)
		}
		if after := dump(t, s); after != before {
			t.Fatalf("round %d: state differs from a rematerialization of the eventlog", round)
		}
		s.Close()
		t.Logf("round %d: killed after %d acks; %d batches in log", round, n, len(batches))
	}
}
