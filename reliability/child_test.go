package reliability

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/internal/lockedbuf"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// Environment of a rebase child (see childRebase).
const (
	envChildDir   = "LIVESTORE_RELIABILITY_DIR"
	envChildURL   = "LIVESTORE_RELIABILITY_URL"
	envChildStore = "LIVESTORE_RELIABILITY_STORE"
	envChildName  = "LIVESTORE_RELIABILITY_NAME"
	envChildFrom  = "LIVESTORE_RELIABILITY_FROM"
	envChildCount = "LIVESTORE_RELIABILITY_COUNT"
	envChildSeed  = "LIVESTORE_RELIABILITY_CHILD_SEED"
)

// runChild runs the test binary as a child process of a test; mode names
// which.
func runChild(mode string) int {
	switch mode {
	case "rebase":
		if err := childRebase(); err != nil {
			fmt.Println("error", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(os.Stderr, "unknown child mode %q\n", mode)
		return 2
	}
}

// childRebase opens a synced store (whose server is unreachable at first),
// commits a run of events, printing "ok KEY" once each commit returned, then
// "ready", and then reports its sync progress ("upstream N", "synced") until
// it is killed.
func childRebase() error {
	a, err := makeApp()
	if err != nil {
		return err
	}
	from, _ := strconv.Atoi(os.Getenv(envChildFrom))
	count, _ := strconv.Atoi(os.Getenv(envChildCount))
	seed, _ := strconv.ParseUint(os.Getenv(envChildSeed), 10, 64)
	name := os.Getenv(envChildName)
	rng := rand.New(rand.NewPCG(seed, seed>>1|1))
	sync := syncOptions(wsBackend(os.Getenv(envChildURL)))
	sync.MaxBackoff = 30 * time.Millisecond
	ctx := context.Background()
	s, err := livestore.Open(ctx, a.schema, livestore.Options{Dir: os.Getenv(envChildDir),
		StoreID: os.Getenv(envChildStore), Sync: sync, Durability: livestore.DurabilityProcess})
	if err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	n := from
	for n < from+count {
		var evs []livestore.Event
		var keys []string
		for i, k := 0, 1+rng.IntN(20); i < k && n < from+count; i++ {
			n++
			switch r := rng.IntN(10); {
			case r < 6 || n == from+1:
				id := fmt.Sprintf("%s-%d", name, n)
				evs = append(evs, a.added.New(itemAdded{ID: id, Text: "offline", Owner: name}))
				keys = append(keys, "add:"+id)
			case r < 8:
				text := fmt.Sprintf("%s-edit%d", name, n)
				evs = append(evs, a.edited.New(itemEdited{ID: fmt.Sprintf("%s-%d", name, from+1+rng.IntN(n-from)), Text: text}))
				keys = append(keys, "edit:"+text)
			default:
				evs = append(evs, a.viewed.New(itemViewed{ID: fmt.Sprintf("%s-%d", name, from+1)}))
			}
		}
		if err := s.Commit(ctx, evs...); err != nil {
			return err
		}
		for _, k := range keys {
			fmt.Fprintln(out, "ok", k)
		}
		out.Flush()
	}
	fmt.Println("ready")
	var last int64 = -1
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		st, err := s.SyncStatus(ctx)
		if err != nil {
			return err
		}
		if st.UpstreamHead != last {
			last = st.UpstreamHead
			fmt.Println("upstream", last)
		}
		if st.PendingCount == 0 {
			fmt.Println("synced")
			break
		}
		time.Sleep(time.Millisecond)
	}
	// Wait to be killed.
	time.Sleep(2 * time.Minute)
	return s.Close()
}

// child is a running rebase child.
type child struct {
	cmd       *exec.Cmd
	committed []string // keys of events whose commit returned
	ready     chan struct{}
	upstream  chan struct{} // closed at the first upstream head change after ready
	synced    chan struct{}
	done      chan struct{}
	mu        sync.Mutex
	errLine   string
	stderr    *lockedbuf.Buffer
}

func startChild(t *testing.T, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{envChild + "=rebase"}, env...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, ready: make(chan struct{}), upstream: make(chan struct{}), synced: make(chan struct{}),
		done: make(chan struct{}), stderr: newOutput()}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		isReady, ups := false, 0
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "ok "):
				c.mu.Lock()
				c.committed = append(c.committed, strings.TrimPrefix(line, "ok "))
				c.mu.Unlock()
			case line == "ready":
				isReady = true
				close(c.ready)
			case strings.HasPrefix(line, "upstream "):
				// The first line reports the head at open; the second, a
				// change after it, means a pulled page was applied.
				if ups++; ups == 2 && isReady {
					close(c.upstream)
				}
			case line == "synced":
				close(c.synced)
			case strings.HasPrefix(line, "error"):
				c.mu.Lock()
				c.errLine = line
				c.mu.Unlock()
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-c.done
		if t.Failed() {
			t.Logf("child stderr:\n%s", c.stderr.String())
		}
	})
	return c
}

func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestClientKilledDuringRebase runs a store in a child process that commits
// hundreds to thousands of events while its server is unreachable (the
// proxy refuses it), while another store pushes events upstream. Once the
// child is ready the proxy lets it through, so it pulls, rolls its pending
// events back, applies the upstream events and rebases (page by page) and
// pushes; the test SIGKILLs it at a random moment of that. After each kill
// the child's directory is opened without sync: its eventlog must chain, hold
// every event whose commit returned exactly once, and its state must equal a
// rebuild from its eventlog. In the end the child's store, reopened with
// sync, converges with the server and the other store.
func TestClientKilledDuringRebase(t *testing.T) {
	rng := seeded(t)
	rounds := pick(4, 20)
	const storeID = "rebase"
	srv := startTestServer(t, syncserver.Options{})
	proxy := newProxy(t, srv.addr)
	a := newApp(t)
	writer := openStore(t, a, t.TempDir(), storeID, syncOptions(wsBackend(srv.url())))
	dir := t.TempDir()

	budget := 500 * time.Millisecond // kill window after the child is let through
	var committed []string
	phases := map[string]int{}
	writerN := 0
	for round := 0; round < rounds; round++ {
		// Upstream events the child has not seen: more than one pull page.
		var evs []livestore.Event
		for i, m := 0, 50+rng.IntN(250); i < m; i++ {
			writerN++
			evs = append(evs, a.added.New(itemAdded{ID: fmt.Sprintf("w-%d", writerN), Text: "upstream", Owner: "w"}))
		}
		if err := writer.Commit(context.Background(), evs...); err != nil {
			t.Fatal(err)
		}
		waitConverged(t, 30*time.Second, func() ([]syncproto.Event, error) { return srv.log(storeID) }, writer)

		proxy.Partition()
		proxy.ResetAll()
		count := pick(300+rng.IntN(700), 1000+rng.IntN(2000))
		c := startChild(t,
			envChildDir+"="+dir, envChildURL+"=ws://"+proxy.Addr(), envChildStore+"="+storeID,
			envChildName+"=c", envChildFrom+"="+strconv.Itoa(round*100_000), envChildCount+"="+strconv.Itoa(count),
			envChildSeed+"="+strconv.FormatUint(rng.Uint64(), 10))
		select {
		case <-c.ready:
		case <-c.done:
			t.Fatalf("round %d: child exited before it was ready: %s\n%s", round, c.errLine, c.stderr.String())
		case <-time.After(2 * time.Minute):
			t.Fatalf("round %d: child not ready", round)
		}
		proxy.Heal()
		healed := time.Now()
		delay := randDur(rng, 0, budget)
		select {
		case <-time.After(delay):
		case <-c.done:
			t.Fatalf("round %d: child exited: %s\n%s", round, c.errLine, c.stderr.String())
		}
		c.kill()
		phase := "before its first rebase committed"
		switch {
		case closed(c.synced):
			phase = "after it synced"
			// Aim later kills at the rebase: the window shrinks to the time
			// the child needed.
			budget = max(50*time.Millisecond, time.Since(healed)*3/4)
		case closed(c.upstream):
			phase = "after a rebase, before it synced"
		default:
			budget = min(budget*3/2, 10*time.Second)
		}
		phases[phase]++
		c.mu.Lock()
		committed = append(committed, c.committed...)
		c.mu.Unlock()
		t.Logf("round %d: %d events committed offline, killed %v after reconnecting was allowed (%s)", round, count, delay.Round(time.Millisecond), phase)

		s := openStore(t, a, dir, storeID, nil)
		checkStoreConsistent(t, s, fmt.Sprintf("round %d", round))
		checkCommittedOnce(t, s, committed, fmt.Sprintf("round %d", round))
		// What the child saw confirmed is the server's log.
		confirmed, err := syncedEvents(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := s.SyncStatus(context.Background())
		log, err := srv.log(storeID)
		if err != nil {
			t.Fatal(err)
		}
		if st.UpstreamHead > int64(len(log)) {
			t.Fatalf("round %d: child's upstream head %d beyond the server's %d", round, st.UpstreamHead, len(log))
		}
		if d := logDiff(confirmed[:st.UpstreamHead], log[:st.UpstreamHead]); d != "" {
			t.Fatalf("round %d: child's confirmed events differ from the server's: %s", round, d)
		}
		s.Close()
	}

	s := openStore(t, a, dir, storeID, syncOptions(wsBackend("ws://"+proxy.Addr())))
	log := waitConverged(t, 60*time.Second, func() ([]syncproto.Event, error) { return srv.log(storeID) }, writer, s)
	keys := checkServerLog(t, log)
	for _, k := range committed {
		if _, ok := keys[k]; !ok {
			t.Fatalf("event %s committed by the child is not on the server", k)
		}
	}
	t.Logf("%d kills: %v; %d child events committed, server log %d events", rounds, phases, len(committed), len(log))
}

// checkCommittedOnce asserts that each key is in the store's eventlog once.
func checkCommittedOnce(t *testing.T, s *livestore.Store, keys []string, what string) {
	t.Helper()
	evs, err := syncedEvents(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]int{}
	for _, ev := range evs {
		have[eventKey(ev.Name, ev.Args)]++
	}
	for _, k := range keys {
		if have[k] != 1 {
			t.Fatalf("%s: committed event %s is %d times in the eventlog", what, k, have[k])
		}
	}
}
