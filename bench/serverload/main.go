// Command serverload measures the sync server under load on loopback: C
// clients push batches of B events to S stores while L live clients follow
// the stores. It runs the server in-process on 127.0.0.1, for a bounded time,
// and reports throughput, push latency and fan-out latency (from a push being
// sent to a live client receiving its events).
//
//	go run ./bench/serverload --storage sqlite --clients 8 --stores 8 --live 200 --duration 10s
//	go run ./bench/serverload --storage postgres --postgres postgres://postgres@127.0.0.1:5432/test
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
	var cfg config
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
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.duration <= 0 || cfg.duration > 2*time.Minute {
		return errors.New("--duration must be in (0, 2m]")
	}
	if cfg.clients < 1 || cfg.stores < 1 || cfg.batch < 1 || cfg.live < 0 {
		return errors.New("--clients, --stores and --batch must be positive")
	}

	storage, cleanup, err := openStorage(cfg)
	if err != nil {
		return err
	}
	defer cleanup()
	srv, err := syncserver.New(syncserver.Options{Storage: storage})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	httpSrv := &http.Server{Handler: srv}
	go func() { _ = httpSrv.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = httpSrv.Shutdown(ctx)
		_ = srv.Shutdown(ctx)
	}()
	url := "ws://" + ln.Addr().String()
	runID := randomHex(4)
	storeID := func(i int) string { return fmt.Sprintf("load-%s-%d", runID, i%cfg.stores) }

	rate := "max"
	if cfg.rate > 0 {
		rate = strconv.Itoa(cfg.rate) + "/s"
	}
	kind := "syncclient"
	if cfg.light {
		kind = "light"
	}
	fmt.Fprintf(out, "storage=%s clients=%d stores=%d live=%d (%s) batch=%d arg-bytes=%d rate=%s duration=%s\n",
		cfg.storage, cfg.clients, cfg.stores, cfg.live, kind, cfg.batch, cfg.argBytes, rate, cfg.duration)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Live followers.
	followers := make([]*follower, cfg.live)
	var followWG sync.WaitGroup
	for i := range followers {
		f := &follower{}
		if cfg.light {
			ws, _, err := websocket.Dial(ctx, url+"/?storeId="+storeID(i)+"&transport=ws", nil)
			if err != nil {
				return fmt.Errorf("dial live client %d: %w", i, err)
			}
			defer ws.CloseNow()
			ws.SetReadLimit(16 << 20)
			req := `{"_tag":"Request","id":"0","tag":"SyncWsRpc.Pull","payload":{"storeId":"` + storeID(i) + `","live":true,"cursor":{"_tag":"None"}},"headers":[]}`
			if err := ws.Write(ctx, websocket.MessageText, []byte(req)); err != nil {
				return err
			}
			f.ws = ws
		} else {
			c, err := syncclient.Dial(ctx, url, syncclient.Options{StoreID: storeID(i), PingInterval: -1})
			if err != nil {
				return fmt.Errorf("dial live client %d: %w", i, err)
			}
			defer c.Close()
			s, err := c.Pull(ctx, nil, true)
			if err != nil {
				return err
			}
			f.stream = s
		}
		followers[i] = f
		followWG.Add(1)
		go func() {
			defer followWG.Done()
			if f.ws != nil {
				f.runLight(ctx)
				return
			}
			f.run(ctx)
		}()
	}

	// Pushers.
	pad := string(make([]byte, 0))
	for len(pad) < cfg.argBytes-40 {
		pad += "x"
	}
	var (
		pushed    atomic.Int64
		conflicts atomic.Int64
		pushMu    sync.Mutex
		pushLat   []time.Duration
		pushErr   error
	)
	deadline := time.Now().Add(cfg.duration)
	var pushWG sync.WaitGroup
	start := time.Now()
	for i := range cfg.clients {
		c, err := syncclient.Dial(ctx, url, syncclient.Options{StoreID: storeID(i), PingInterval: -1})
		if err != nil {
			return fmt.Errorf("dial pusher %d: %w", i, err)
		}
		defer c.Close()
		pushWG.Add(1)
		go func() {
			defer pushWG.Done()
			var lat []time.Duration
			defer func() {
				pushMu.Lock()
				pushLat = append(pushLat, lat...)
				pushMu.Unlock()
			}()
			var head int64
			client := "p" + strconv.Itoa(i)
			var tick <-chan time.Time
			if cfg.rate > 0 {
				interval := time.Duration(float64(time.Second) * float64(cfg.batch*cfg.clients) / float64(cfg.rate))
				// Spread the pushers evenly over the interval.
				time.Sleep(interval * time.Duration(i) / time.Duration(cfg.clients))
				t := time.NewTicker(interval)
				defer t.Stop()
				tick = t.C
			}
			retry := false
			for time.Now().Before(deadline) && pushed.Load() < cfg.maxEvents {
				if tick != nil && !retry {
					<-tick
				}
				retry = false
				sent := time.Now()
				batch := make([]syncproto.Event, cfg.batch)
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
				err := c.Push(ctx, batch, nil)
				var ahead *syncproto.ServerAheadError
				switch {
				case errors.As(err, &ahead):
					// Another pusher on the same store won; rebase on its head.
					conflicts.Add(1)
					head = ahead.MinimumExpectedNum
					retry = true
				case err != nil:
					pushMu.Lock()
					pushErr = errors.Join(pushErr, fmt.Errorf("pusher %d: %w", i, err))
					pushMu.Unlock()
					return
				default:
					lat = append(lat, time.Since(sent))
					head += int64(cfg.batch)
					pushed.Add(int64(cfg.batch))
				}
			}
		}()
	}
	pushWG.Wait()
	elapsed := time.Since(start)
	if pushErr != nil {
		return pushErr
	}

	// Wait until every follower has every event of its store.
	heads := make(map[string]int64)
	for i := range cfg.stores {
		h, err := storage.Head(ctx, storeID(i))
		if err != nil {
			return err
		}
		heads[storeID(i)] = h
	}
	drainDeadline := time.Now().Add(30 * time.Second)
	for i, f := range followers {
		for f.seen.Load() < heads[storeID(i)] {
			if time.Now().After(drainDeadline) {
				return fmt.Errorf("live client %d saw %d of %d events", i, f.seen.Load(), heads[storeID(i)])
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cancel()
	followWG.Wait()

	var fan []time.Duration
	var delivered int64
	for _, f := range followers {
		fan = append(fan, f.latencies...)
		delivered += f.seen.Load()
	}
	n := pushed.Load()
	fmt.Fprintf(out, "pushed %d events in %s: %.0f events/s (%d pushes, %d server-ahead retries)\n",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), len(pushLat), conflicts.Load())
	fmt.Fprintf(out, "push latency:    p50 %s  p99 %s\n", pct(pushLat, 50), pct(pushLat, 99))
	if cfg.live > 0 {
		fmt.Fprintf(out, "fan-out latency: p50 %s  p99 %s  (%d live clients, %d events delivered, %.0f events/s)\n",
			pct(fan, 50), pct(fan, 99), cfg.live, delivered, float64(delivered)/elapsed.Seconds())
	}
	return nil
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
