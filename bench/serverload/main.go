// Command serverload measures the sync server under load on loopback: C
// clients push batches of B events to S stores while L live clients follow
// the stores. It runs the server in-process on 127.0.0.1, for a bounded time,
// and reports throughput, push latency and fan-out latency (from a push being
// sent to a live client receiving its events).
//
//	go run ./bench/serverload --storage sqlite --clients 8 --stores 8 --live 200 --duration 10s
//	go run ./bench/serverload --storage postgres --postgres postgres://postgres@127.0.0.1:5432/test
//
// It measures the server alone, over the wire: no client stores, no
// rebases and no comparison with the reference server (bench/compare
// measures client stores).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/pgstore"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

type config struct {
	storage     string
	postgresURL string
	clients     int
	stores      int
	live        int
	batch       int
	argBytes    int
	duration    time.Duration
	maxEvents   int64
	rate        int
	light       bool
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "serverload:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	cfg, cpuProfile, err := parseConfig(args)
	if err != nil {
		return err
	}
	if cpuProfile != "" {
		stop, err := startCPUProfile(cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	storage, cleanup, err := openStorage(cfg)
	if err != nil {
		return err
	}
	defer cleanup()
	url, stopServer, err := startServer(storage)
	if err != nil {
		return err
	}
	defer stopServer()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := &load{cfg: cfg, url: url, runID: randomHex(4)}
	defer l.closeClients()
	fmt.Fprintln(out, cfg.describe())

	followers, followWG, err := l.startFollowers(ctx)
	if err != nil {
		return err
	}
	stats, elapsed, err := l.push(ctx)
	if err != nil {
		return err
	}
	if err := l.waitDelivered(ctx, storage, followers); err != nil {
		return err
	}
	cancel()
	followWG.Wait()
	l.report(out, stats, followers, elapsed)
	return nil
}

// parseConfig reads the flags; cpuProfile is the file named by --cpuprofile.
func parseConfig(args []string) (cfg config, cpuProfile string, err error) {
	fs := flag.NewFlagSet("serverload", flag.ContinueOnError)
	fs.StringVar(&cfg.storage, "storage", "sqlite", "storage: sqlite or postgres")
	fs.StringVar(&cfg.postgresURL, "postgres", os.Getenv("LIVESTORE_TEST_POSTGRES_URL"), "PostgreSQL URL (for --storage postgres; a temporary schema is used and dropped)")
	fs.IntVar(&cfg.clients, "clients", 8, "pushing clients")
	fs.IntVar(&cfg.stores, "stores", 8, "stores (pushers and live clients are spread over them)")
	fs.IntVar(&cfg.live, "live", 200, "live pulling clients")
	fs.IntVar(&cfg.batch, "batch", 50, "events per push")
	fs.IntVar(&cfg.argBytes, "arg-bytes", 100, "size of each event's args")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to push (at most 2 minutes)")
	fs.Int64Var(&cfg.maxEvents, "max-events", 2_000_000, "stop pushing after this many events")
	fs.IntVar(&cfg.rate, "rate", 0, "target total push rate in events/s (0: as fast as possible)")
	fs.BoolVar(&cfg.light, "light-followers", false, "live clients read raw messages instead of decoding pages with syncclient (less client CPU, so the server's share of the machine is measured)")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	if err := fs.Parse(args); err != nil {
		return cfg, "", err
	}
	if cfg.duration <= 0 || cfg.duration > 2*time.Minute {
		return cfg, "", errors.New("--duration must be in (0, 2m]")
	}
	if cfg.clients < 1 || cfg.stores < 1 || cfg.batch < 1 || cfg.live < 0 {
		return cfg, "", errors.New("--clients, --stores and --batch must be positive")
	}
	return cfg, cpuProfile, nil
}

// describe is the line naming the run's settings.
func (cfg config) describe() string {
	rate := "max"
	if cfg.rate > 0 {
		rate = strconv.Itoa(cfg.rate) + "/s"
	}
	kind := "syncclient"
	if cfg.light {
		kind = "light"
	}
	return fmt.Sprintf("storage=%s clients=%d stores=%d live=%d (%s) batch=%d arg-bytes=%d rate=%s duration=%s",
		cfg.storage, cfg.clients, cfg.stores, cfg.live, kind, cfg.batch, cfg.argBytes, rate, cfg.duration)
}

// startCPUProfile profiles the process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// startServer serves a sync server over storage on a loopback port and
// returns its ws:// URL and what shuts it down.
func startServer(storage syncserver.Storage) (url string, stop func(), err error) {
	srv, err := syncserver.New(syncserver.Options{Storage: storage})
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	httpSrv := &http.Server{Handler: srv}
	go func() { _ = httpSrv.Serve(ln) }()
	return "ws://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = httpSrv.Shutdown(ctx)
		_ = srv.Shutdown(ctx)
	}, nil
}

// load is one run: its settings, the server's URL and the clients to close
// at its end.
type load struct {
	cfg     config
	url     string
	runID   string
	closers []func()
}

// storeID is the store of the i-th pusher or follower.
func (l *load) storeID(i int) string { return fmt.Sprintf("load-%s-%d", l.runID, i%l.cfg.stores) }

// closeClients closes the clients, the last opened first.
func (l *load) closeClients() {
	for i := len(l.closers) - 1; i >= 0; i-- {
		l.closers[i]()
	}
}

// startFollowers connects the live clients, then starts a goroutine reading
// each; the goroutines end with ctx and the WaitGroup waits for them.
func (l *load) startFollowers(ctx context.Context) ([]*follower, *sync.WaitGroup, error) {
	followers := make([]*follower, l.cfg.live)
	for i := range followers {
		f, err := l.dialFollower(ctx, i)
		if err != nil {
			return nil, nil, err
		}
		followers[i] = f
	}
	var wg sync.WaitGroup
	for _, f := range followers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if f.ws != nil {
				f.runLight(ctx)
				return
			}
			f.run(ctx)
		}()
	}
	return followers, &wg, nil
}

// dialFollower connects the i-th live client and opens its live pull.
func (l *load) dialFollower(ctx context.Context, i int) (*follower, error) {
	f := &follower{}
	if !l.cfg.light {
		c, err := syncclient.Dial(ctx, l.url, syncclient.Options{StoreID: l.storeID(i), PingInterval: -1})
		if err != nil {
			return nil, fmt.Errorf("dial live client %d: %w", i, err)
		}
		l.closers = append(l.closers, func() { c.Close() })
		s, err := c.Pull(ctx, nil, true)
		if err != nil {
			return nil, err
		}
		f.stream = s
		return f, nil
	}
	ws, _, err := websocket.Dial(ctx, l.url+"/?storeId="+l.storeID(i)+"&transport=ws", nil)
	if err != nil {
		return nil, fmt.Errorf("dial live client %d: %w", i, err)
	}
	l.closers = append(l.closers, func() { ws.CloseNow() })
	ws.SetReadLimit(16 << 20)
	req := `{"_tag":"Request","id":"0","tag":"SyncWsRpc.Pull","payload":{"storeId":"` + l.storeID(i) + `","live":true,"cursor":{"_tag":"None"}},"headers":[]}`
	if err := ws.Write(ctx, websocket.MessageText, []byte(req)); err != nil {
		return nil, err
	}
	f.ws = ws
	return f, nil
}

// pushStats gathers what the pushers measured.
type pushStats struct {
	pushed    atomic.Int64
	conflicts atomic.Int64
	mu        sync.Mutex
	latencies []time.Duration
	err       error
}

// push connects the pushers, then runs them until the duration or the event budget is spent
// and returns what they measured and how long they pushed.
func (l *load) push(ctx context.Context) (*pushStats, time.Duration, error) {
	pad := strings.Repeat("x", max(l.cfg.argBytes-40, 0))
	stats := &pushStats{}
	deadline := time.Now().Add(l.cfg.duration)
	start := time.Now()
	clients := make([]*syncclient.Client, l.cfg.clients)
	for i := range clients {
		c, err := syncclient.Dial(ctx, l.url, syncclient.Options{StoreID: l.storeID(i), PingInterval: -1})
		if err != nil {
			return nil, 0, fmt.Errorf("dial pusher %d: %w", i, err)
		}
		l.closers = append(l.closers, func() { c.Close() })
		clients[i] = c
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.pushLoop(ctx, c, i, pad, deadline, stats)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if stats.err != nil {
		return nil, 0, stats.err
	}
	return stats, elapsed, nil
}

// pushLoop is the i-th pusher: it pushes batches through c, at its share
// of --rate when one is set, rebasing on the head of a pusher that won.
func (l *load) pushLoop(ctx context.Context, c *syncclient.Client, i int, pad string, deadline time.Time, stats *pushStats) {
	var lat []time.Duration
	defer func() {
		stats.mu.Lock()
		stats.latencies = append(stats.latencies, lat...)
		stats.mu.Unlock()
	}()
	var head int64
	client := "p" + strconv.Itoa(i)
	var tick <-chan time.Time
	if l.cfg.rate > 0 {
		interval := time.Duration(float64(time.Second) * float64(l.cfg.batch*l.cfg.clients) / float64(l.cfg.rate))
		// Spread the pushers evenly over the interval.
		time.Sleep(interval * time.Duration(i) / time.Duration(l.cfg.clients))
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	retry := false
	for time.Now().Before(deadline) && stats.pushed.Load() < l.cfg.maxEvents {
		if tick != nil && !retry {
			<-tick
		}
		retry = false
		sent := time.Now()
		err := c.Push(ctx, loadBatch(head, l.cfg.batch, client, sent, pad), nil)
		var ahead *syncproto.ServerAheadError
		switch {
		case errors.As(err, &ahead):
			// Another pusher on the same store won; rebase on its head.
			stats.conflicts.Add(1)
			head = ahead.MinimumExpectedNum
			retry = true
		case err != nil:
			stats.mu.Lock()
			stats.err = errors.Join(stats.err, fmt.Errorf("pusher %d: %w", i, err))
			stats.mu.Unlock()
			return
		default:
			lat = append(lat, time.Since(sent))
			head += int64(l.cfg.batch)
			stats.pushed.Add(int64(l.cfg.batch))
		}
	}
}

// loadBatch is n events following head, each carrying the time it was sent
// (for the fan-out latency) and pad.
func loadBatch(head int64, n int, client string, sent time.Time, pad string) []syncproto.Event {
	batch := make([]syncproto.Event, n)
	for j := range batch {
		seq := head + int64(j) + 1
		batch[j] = syncproto.Event{
			Name:         "v1.LoadTest",
			Args:         json.RawMessage(`{"t":` + strconv.FormatInt(sent.UnixNano(), 10) + `,"p":"` + pad + `"}`),
			SeqNum:       seq,
			ParentSeqNum: seq - 1,
			ClientID:     client,
			SessionID:    "s",
		}
	}
	return batch
}

// waitDelivered waits until every follower has every event of its store.
func (l *load) waitDelivered(ctx context.Context, storage syncserver.Storage, followers []*follower) error {
	heads := make(map[string]int64)
	for i := range l.cfg.stores {
		h, err := storage.Head(ctx, l.storeID(i))
		if err != nil {
			return err
		}
		heads[l.storeID(i)] = h
	}
	drainDeadline := time.Now().Add(30 * time.Second)
	for i, f := range followers {
		for f.seen.Load() < heads[l.storeID(i)] {
			if time.Now().After(drainDeadline) {
				return fmt.Errorf("live client %d saw %d of %d events", i, f.seen.Load(), heads[l.storeID(i)])
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// report writes throughput and the latencies measured.
func (l *load) report(out io.Writer, stats *pushStats, followers []*follower, elapsed time.Duration) {
	var fan []time.Duration
	var delivered int64
	for _, f := range followers {
		fan = append(fan, f.latencies...)
		delivered += f.seen.Load()
	}
	n := stats.pushed.Load()
	fmt.Fprintf(out, "pushed %d events in %s: %.0f events/s (%d pushes, %d server-ahead retries)\n",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), len(stats.latencies), stats.conflicts.Load())
	fmt.Fprintf(out, "push latency:    p50 %s  p99 %s\n", pct(stats.latencies, 50), pct(stats.latencies, 99))
	if l.cfg.live > 0 {
		fmt.Fprintf(out, "fan-out latency: p50 %s  p99 %s  (%d live clients, %d events delivered, %.0f events/s)\n",
			pct(fan, 50), pct(fan, 99), l.cfg.live, delivered, float64(delivered)/elapsed.Seconds())
	}
}

// follower consumes one live pull and records, per page, the time since the
// page's first event was pushed.
type follower struct {
	stream    *syncclient.PullStream // or
	ws        *websocket.Conn        // for a light follower
	seen      atomic.Int64
	latencies []time.Duration
}

// runLight reads Chunks without decoding the pages: it finds the push time
// of the first event and the seqNum of the last, and acknowledges each Chunk
// as a client does.
func (f *follower) runLight(ctx context.Context) {
	ack := []byte(`{"_tag":"Ack","requestId":"0"}`)
	for {
		_, data, err := f.ws.Read(ctx)
		if err != nil {
			return
		}
		now := time.Now()
		_, values, ok := syncproto.CutChunk(data)
		if !ok {
			continue
		}
		if err := f.ws.Write(ctx, websocket.MessageText, ack); err != nil {
			return
		}
		if i := bytes.Index(values, []byte(`{"t":`)); i >= 0 {
			rest := values[i+5:]
			if j := bytes.IndexByte(rest, ','); j > 0 {
				if t, err := strconv.ParseInt(string(rest[:j]), 10, 64); err == nil {
					f.latencies = append(f.latencies, now.Sub(time.Unix(0, t)))
				}
			}
		}
		if i := bytes.LastIndex(values, []byte(`"seqNum":`)); i >= 0 {
			rest := values[i+9:]
			if j := bytes.IndexByte(rest, ','); j > 0 {
				if n, err := strconv.ParseInt(string(rest[:j]), 10, 64); err == nil {
					f.seen.Store(n)
				}
			}
		}
	}
}

func (f *follower) run(ctx context.Context) {
	defer f.stream.Close()
	for {
		page, err := f.stream.Next(ctx)
		if err != nil {
			return
		}
		now := time.Now()
		if len(page.Batch) == 0 {
			continue
		}
		var args struct {
			T int64 `json:"t"`
		}
		if json.Unmarshal(page.Batch[0].Event.Args, &args) == nil && args.T > 0 {
			f.latencies = append(f.latencies, now.Sub(time.Unix(0, args.T)))
		}
		f.seen.Store(page.Batch[len(page.Batch)-1].Event.SeqNum)
	}
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)].Round(10 * time.Microsecond)
}

func openStorage(cfg config) (syncserver.Storage, func(), error) {
	switch cfg.storage {
	case "sqlite":
		dir, err := os.MkdirTemp("", "serverload")
		if err != nil {
			return nil, nil, err
		}
		st, err := sqlitestore.Open(filepath.Join(dir, "sync.db"), sqlitestore.Options{})
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		return st, func() { st.Close(); os.RemoveAll(dir) }, nil
	case "postgres":
		if cfg.postgresURL == "" {
			return nil, nil, errors.New("--postgres URL (or LIVESTORE_TEST_POSTGRES_URL) is required for --storage postgres")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := pgstore.Open(ctx, cfg.postgresURL, pgstore.Options{Schema: "serverload_" + randomHex(4)})
		if err != nil {
			return nil, nil, err
		}
		return st, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = st.DropSchema(ctx)
			st.Close()
		}, nil
	}
	return nil, nil, fmt.Errorf("unknown --storage %q (sqlite or postgres)", cfg.storage)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
