package devtools_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/performance"
	"github.com/chromedp/chromedp"

	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

var scaleFlag = flag.Bool("devtools.scale", false, "run TestServerPageScale at full size: 500,000 events and 60 s of live traffic")

// Bounds of TestServerPageScale.
const (
	firstPageLimit = 2 * time.Second
	heapLimit      = 300 << 20
	// livePollInterval is how often the server page's live stream looks
	// for changes (livePoll in the package).
	livePollInterval = 500 * time.Millisecond
)

// seedStore writes n events to a new store straight into the storage, in
// large batches.
func seedStore(t *testing.T, st *sqlitestore.Store, storeID string, n int) {
	t.Helper()
	const batchSize = 10_000
	batch := make([]syncproto.Event, 0, batchSize)
	now := time.Now()
	for seq := int64(1); seq <= int64(n); seq++ {
		batch = append(batch, syncproto.Event{Name: "v1.TodoCreated",
			Args:   json.RawMessage(fmt.Sprintf(`{"id":"t%d","text":"todo %d of the seeded log"}`, seq, seq)),
			SeqNum: seq, ParentSeqNum: seq - 1, ClientID: "seeder", SessionID: "seed"})
		if len(batch) == batchSize || seq == int64(n) {
			if err := st.Append(t.Context(), storeID, batch, now); err != nil {
				t.Fatalf("seed %s: %v", storeID, err)
			}
			batch = batch[:0]
		}
	}
}

// pusher pushes to two stores of a sync server until stopped, like clients
// at work: 5 events per 50 ms to one, 1 to the other.
type pusher struct {
	stopping chan struct{}
	done     chan struct{}
	heads    map[string]int64
	err      error
}

func startPusher(t *testing.T, url string, heads map[string]int64, batch map[string]int) *pusher {
	t.Helper()
	// Stopping waits for the push under way, so that heads are exact.
	p := &pusher{stopping: make(chan struct{}), done: make(chan struct{}), heads: heads}
	clients := map[string]*syncclient.Client{}
	for id := range heads {
		clients[id] = dialStore(t, url, id)
	}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stopping:
				return
			case <-tick.C:
			}
			for id, c := range clients {
				evs := make([]syncproto.Event, batch[id])
				for i := range evs {
					seq := p.heads[id] + int64(i) + 1
					evs[i] = syncproto.Event{Name: "v1.TodoCreated", Args: json.RawMessage(fmt.Sprintf(`{"id":"live%d"}`, seq)),
						SeqNum: seq, ParentSeqNum: seq - 1, ClientID: "pusher", SessionID: "live"}
				}
				if err := c.Push(t.Context(), evs, nil); err != nil {
					p.err = fmt.Errorf("push to %s: %w", id, err)
					return
				}
				p.heads[id] += int64(len(evs))
			}
		}
	}()
	return p
}

// stop ends the pushes and returns the stores' heads.
func (p *pusher) stop(t *testing.T) map[string]int64 {
	t.Helper()
	close(p.stopping)
	<-p.done
	if p.err != nil {
		t.Fatal(p.err)
	}
	return p.heads
}

// jsHeap reads the tab's used JavaScript heap and DOM node count through
// the Chrome DevTools Protocol (Performance.getMetrics).
func jsHeap(t *testing.T, ctx context.Context) (heap, nodes float64) {
	t.Helper()
	metrics, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (map[string]float64, error) {
		if _, err := cdp.Call(ctx, tg, performance.Enable, performance.EnableParams{}); err != nil {
			return nil, err
		}
		res, err := cdp.Call(ctx, tg, performance.GetMetrics, cdp.Empty{})
		if err != nil {
			return nil, err
		}
		out := map[string]float64{}
		for _, m := range res.Metrics {
			out[m.Name] = m.Value
		}
		return out, nil
	})
	if err != nil {
		t.Fatalf("Performance.getMetrics: %v", err)
	}
	return metrics["JSHeapUsedSize"], metrics["Nodes"]
}

// TestServerPageScale opens the sync server's page over a large store in
// headless Chromium: the store list and the store's first and last pages of
// events show within 2 s, pages load on demand, the store followed live
// from its last page during traffic holds each event once, in order, and
// the tab's JavaScript heap stays under 300 MB. The normal run uses 50,000 events and 5 s of traffic;
// -devtools.scale uses 500,000 events and 60 s.
func TestServerPageScale(t *testing.T) {
	events, traffic, limit := 50_000, 5*time.Second, firstPageLimit
	switch {
	case *scaleFlag:
		events, traffic = 500_000, 60*time.Second
	case raceEnabled:
		// The bound on the first pages holds without the race detector
		// (go test -run TestServerPageScale ./devtools); under it the
		// page still has to come, only later.
		events, limit = 20_000, 3*firstPageLimit
	}
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	start := time.Now()
	seedStore(t, st, "big", events)
	seedStore(t, st, "small", 10)
	t.Logf("seeded %d events in %s", events, time.Since(start).Round(time.Millisecond))
	hs := syncServerOn(t, st)

	p := &page{t: t, ctx: tab(t, traffic+3*time.Minute)}
	start = time.Now()
	p.do(chromedp.Navigate(hs.URL + "/_devtools/"))
	p.waitText(`#stores tbody tr[data-store="big"]`, fmt.Sprintf("e%d", events))
	storesShown := time.Since(start)
	p.eval(`(performance.setResourceTimingBufferSize(1e6), "")`)

	start = time.Now()
	p.do(chromedp.Click(`#stores tbody tr[data-store="big"]`))
	p.waitText(`#events-count`, "100 events held, more after")
	eventsShown := time.Since(start)
	t.Logf("%d events: store list shown in %s, first page of events in %s", events, storesShown.Round(time.Millisecond), eventsShown.Round(time.Millisecond))
	if storesShown > limit || eventsShown > limit {
		t.Fatalf("first pages took %s (stores) and %s (events), over %s", storesShown, eventsShown, limit)
	}
	if first := p.text(`#events-table tbody tr:first-child`); !containsAll(first, "e1", "v1.TodoCreated") {
		t.Fatalf("first event row %q", first)
	}
	for held := 200; held <= 400; held += 100 {
		p.do(chromedp.Click(`#events-more`))
		p.waitText(`#events-count`, fmt.Sprintf("%d events held, more after", held))
	}

	// The last page of the big store, shown as fast as the first, then
	// followed while both stores take pushes.
	start = time.Now()
	p.do(chromedp.Click(`#events-latest`))
	p.waitText(fmt.Sprintf(`#events-table tbody tr[data-seq="e%d"]`, events), "v1.TodoCreated")
	latestShown := time.Since(start)
	t.Logf("last page of events in %s", latestShown.Round(time.Millisecond))
	if latestShown > limit {
		t.Fatalf("last page took %s, over %s", latestShown, limit)
	}
	from := events - 99
	checkRows := func(head int64) {
		t.Helper()
		rows := p.count(`#events-table tbody tr`)
		unique := p.eval(`String(new Set([...document.querySelectorAll("#events-table tbody tr")].map((tr) => tr.dataset.seq)).size)`)
		inOrder := p.eval(fmt.Sprintf(`String([...document.querySelectorAll("#events-table tbody tr")].every((tr, i) => tr.dataset.seq === "e" + (i + %d)))`, from))
		if int64(rows) != head-int64(from)+1 || unique != fmt.Sprint(rows) || inOrder != "true" {
			t.Fatalf("big store at e%d: %d rows from e%d, %s distinct, in order %s", head, rows, from, unique, inOrder)
		}
	}
	checkRows(int64(events))
	followed := time.Now()
	// 40 events a second to the followed store: a page (100) holds what
	// comes between two live polls with room to spare.
	push := startPusher(t, hs.URL, map[string]int64{"big": int64(events), "small": 10}, map[string]int{"big": 2, "small": 1})
	// The heap is sampled each second of the traffic.
	var maxHeap float64
	sampling := time.NewTicker(time.Second)
	end := time.After(traffic)
traffic:
	for {
		heap, _ := jsHeap(t, p.ctx)
		maxHeap = max(maxHeap, heap)
		select {
		case <-sampling.C:
		case <-end:
			break traffic
		}
	}
	sampling.Stop()
	heads := push.stop(t)

	last := fmt.Sprintf("e%d", heads["big"])
	p.waitText(fmt.Sprintf(`#events-table tbody tr[data-seq="%s"]`, last), last)
	p.waitText(`#stores tbody tr[data-store="small"]`, fmt.Sprintf("e%d", heads["small"]))
	checkRows(heads["big"])
	// Pages were asked for on demand, never the whole log.
	fetches := p.eval(`String(performance.getEntriesByType("resource").filter((e) => e.name.includes("/events?")).length)`)
	heap, nodes := jsHeap(t, p.ctx)
	maxHeap = max(maxHeap, heap)
	t.Logf("after %s of traffic (big %s, small e%d): %s event requests, JS heap %.1f MiB (max %.1f MiB), %.0f DOM nodes",
		traffic, last, heads["small"], fetches, heap/(1<<20), maxHeap/(1<<20), nodes)
	if maxHeap > heapLimit {
		t.Fatalf("JS heap reached %.1f MiB, over %d MiB", maxHeap/(1<<20), heapLimit>>20)
	}
	// One request per page loaded (first, 3 more, latest), and while
	// following a store at most one per "store" event of it, which the live
	// stream sends at most once a poll.
	bound := 5 + 2 + int(time.Since(followed)/livePollInterval)
	if n, err := strconv.Atoi(fetches); err != nil || n > bound {
		t.Fatalf("%s event requests, more than %d", fetches, bound)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
