package reliability

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncclient"
)

// ---- memory of a process ----

// rssBytes is a process's resident memory (VmRSS), or -1.
func rssBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// rssWatch samples a process's RSS every 50 ms and keeps the peak. A
// process passing limit is killed: a server that does not bound its memory
// must fail the test, not take the machine down with it.
type rssWatch struct {
	pid    int
	limit  int64
	peak   atomic.Int64
	killed atomic.Bool
	stop   chan struct{}
	done   chan struct{}
}

// watchRSS starts watching pid until the test ends.
func watchRSS(t testing.TB, pid int, limit int64) *rssWatch {
	w := &rssWatch{pid: pid, limit: limit, stop: make(chan struct{}), done: make(chan struct{})}
	w.peak.Store(max(0, rssBytes(pid))) // a process that answers at once is still measured
	go w.run()
	t.Cleanup(w.close)
	return w
}

func (w *rssWatch) run() {
	defer close(w.done)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		r := rssBytes(w.pid)
		if r < 0 {
			return // gone
		}
		if r > w.peak.Load() {
			w.peak.Store(r)
		}
		if r > w.limit && !w.killed.Load() {
			w.killed.Store(true)
			_ = syscall.Kill(w.pid, syscall.SIGKILL)
		}
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
	}
}

func (w *rssWatch) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// check fails the test if the process had to be killed.
func (w *rssWatch) check(t testing.TB, what string) {
	t.Helper()
	if w.killed.Load() {
		t.Fatalf("%s: the process passed %s of RSS and was killed (peak seen %s)", what, mib(w.limit), mib(w.peak.Load()))
	}
}

// waitRSSBelow polls until the process's RSS is under bound (memory freed
// by the Go runtime reaches the OS gradually) and returns the last value;
// it fails the test after timeout.
func waitRSSBelow(t testing.TB, pid int, bound int64, timeout time.Duration, what string) int64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := rssBytes(pid)
		if r >= 0 && r < bound {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: server RSS %s, want under %s (waited %v)", what, mib(r), mib(bound), timeout)
		}
		time.Sleep(100 * time.Millisecond) // polling /proc: nothing to wait on
	}
}

// TestHostileMemoryBound runs the memory attacks together on one server:
// 150 unacknowledged pulls of a store of large events, 200 connections idle
// after a 2 MiB message each, and devtools API reads of the large events four
// at a time. The server's RSS must stay under 512 MiB and an honest client's
// pushes must keep succeeding (latency logged).
func TestHostileMemoryBound(t *testing.T) {
	t.Parallel()
	js := useJS(t)
	dataDir := t.TempDir()
	seedStore(t, dataDir, "heavy", 120, 100_000)
	srv := startServe(t, freeAddr(t), "--data", dataDir)
	pid := srv.cmd.Process.Pid
	const bound = 512 << 20
	w := watchRSS(t, pid, bound)
	base := rssBytes(pid)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var attacks sync.WaitGroup
	errs := make(chan error, 16)
	var puller *rawConn
	attacks.Add(1)
	go func() {
		defer attacks.Done()
		c, _, _, err := unackedPulls(srv.addr, "heavy", 150, 0)
		if c != nil {
			puller = c
		}
		if err != nil {
			errs <- fmt.Errorf("unacknowledged pulls: %w", err)
		}
	}()
	var conns []*rawConn
	attacks.Add(1)
	go func() {
		defer attacks.Done()
		var err error
		if conns, err = idleAfterBigMessage(srv.addr, "heavy-idle", 200, 2<<20-1024); err != nil {
			errs <- err
		}
	}()
	var devtoolsBytes atomic.Int64
	var reader sync.WaitGroup
	for i := 0; i < 4; i++ {
		reader.Add(1)
		go func() {
			defer reader.Done()
			for ctx.Err() == nil {
				n, err := getCapped(ctx, devtoolsURL("http://"+srv.addr+"/_devtools", "heavy"), 64<<20)
				devtoolsBytes.Add(n)
				if err != nil && ctx.Err() == nil {
					errs <- fmt.Errorf("devtools read: %w", err)
					return
				}
			}
		}()
	}

	c, err := syncclient.Dial(ctx, srv.url(), syncclient.Options{StoreID: "calm", PingInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var head int64
	var lat latencies
	attacksDone := make(chan struct{})
	go func() { attacks.Wait(); close(attacksDone) }()
	until := time.Time{}
	for {
		l, err := pushSeries(ctx, c, "calm", &head, 1)
		if err != nil {
			w.check(t, "memory attacks at once")
			t.Errorf("honest client during the attacks: %v", err)
			break
		}
		lat = append(lat, l...)
		select {
		case <-attacksDone:
			if until.IsZero() {
				until = time.Now().Add(pick(2*time.Second, 60*time.Second))
			}
		default:
		}
		if !until.IsZero() && time.Now().After(until) {
			break
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
	stop()
	reader.Wait()
	<-attacksDone
	for _, c := range conns {
		resetClose(c)
	}
	if puller != nil {
		resetClose(puller)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	w.check(t, "memory attacks at once")
	t.Logf("server RSS %s before, peak %s during the attacks (bound %s); devtools answers %s in all", mib(base), mib(w.peak.Load()), mib(bound), mib(devtoolsBytes.Load()))
	t.Logf("honest push latency under the attacks: p50 %v p99 %v max %v (%d pushes)", lat.quantile(0.5), lat.quantile(0.99), lat.quantile(1), len(lat))
	if t.Failed() {
		return
	}
	log, err := pullLog(srv.url(), "calm")
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(log)) != head {
		t.Fatalf("the honest store holds %d events, %d were acknowledged", len(log), head)
	}
	// pushSeries writes the test app's events; the JS client reads only
	// todos, so check it on a store of its own after the attacks.
	calm := todoIDs("calm", 3)
	pushTodos(t, srv.url(), "calm-js", 0, calm, 20)
	checkUsable(t, js, srv.url(), "calm-js", calm, usable{jsPush: true})
}

// devtoolsURL is the devtools API's events of storeID, as many as it gives;
// base is where the devtools handler is mounted ("http://ADDR/_devtools"
// on livestore serve, "http://ADDR" on livestore devtools).
func devtoolsURL(base, storeID string) string {
	return base + "/api/stores/" + storeID + "/events?limit=1000"
}

// getCapped GETs url and reads at most limit bytes of the body; a longer
// body is an error. It returns the bytes read.
func getCapped(ctx context.Context, url string, limit int64) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return n, err
	}
	if n > limit {
		return n, fmt.Errorf("GET %s: answer longer than %s", url, mib(limit))
	}
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return n, nil
}
