package syncserver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livestore-go/livestore/internal/lockedbuf"

	"github.com/coder/websocket"

	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// sink is a WebSocket client that reads every message and keeps only a
// summary, so that tests measuring the server's memory do not measure the
// client's: the number of Chunks and the Exit of each request, and Pongs.
type sink struct {
	t       *testing.T
	ws      *websocket.Conn
	mu      sync.Mutex
	chunks  map[string]int
	exits   map[string]string
	pongs   int
	defects int
	err     error
	wake    chan struct{}
	done    chan struct{}
}

func dialSink(t *testing.T, ts *testServer, storeID string) *sink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, ts.url+"/?storeId="+storeID+"&transport=ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(4 << 20)
	s := &sink{t: t, ws: ws, chunks: map[string]int{}, exits: map[string]string{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go s.read()
	t.Cleanup(func() {
		_ = ws.CloseNow()
		<-s.done
	})
	return s
}

func (s *sink) read() {
	defer close(s.done)
	for {
		_, r, err := s.ws.Reader(context.Background())
		if err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			s.signal()
			return
		}
		br := bufio.NewReaderSize(r, 256)
		head, _ := br.Peek(200)
		head = bytes.Clone(head)
		if _, err := io.Copy(io.Discard, br); err != nil {
			continue
		}
		s.mu.Lock()
		switch {
		case bytes.HasPrefix(head, []byte(`{"_tag":"Chunk","requestId":"`)):
			s.chunks[requestIDOf(head)]++
		case bytes.HasPrefix(head, []byte(`{"_tag":"Exit"`)):
			s.exits[requestIDOf(head)] = string(head)
		case bytes.Equal(head, []byte(`{"_tag":"Pong"}`)):
			s.pongs++
		case bytes.HasPrefix(head, []byte(`{"_tag":"Defect"`)):
			s.defects++
		}
		s.mu.Unlock()
		s.signal()
	}
}

func requestIDOf(msg []byte) string {
	_, rest, _ := bytes.Cut(msg, []byte(`"requestId":"`))
	id, _, _ := bytes.Cut(rest, []byte(`"`))
	return string(id)
}

func (s *sink) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sink) send(msg string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		s.t.Fatalf("send: %v", err)
	}
}

// await waits until cond (called with s.mu held) holds.
func (s *sink) await(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		s.mu.Lock()
		ok, err := cond(), s.err
		s.mu.Unlock()
		if ok {
			return
		}
		if err != nil {
			s.t.Fatalf("waiting for %s: connection ended: %v", what, err)
		}
		select {
		case <-s.wake:
		case <-deadline:
			s.t.Fatalf("waiting for %s: timed out", what)
		}
	}
}

// heapAfterGC is the live heap once garbage is collected.
func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

const mib = 1 << 20

// fillStore appends n events whose args hold size bytes of text each.
func fillStore(t *testing.T, ts *testServer, storeID string, n, size int) {
	t.Helper()
	ctx := context.Background()
	if _, err := ts.storage.BackendID(ctx, storeID); err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("x", size)
	for done := 0; done < n; {
		batch := chain(int64(done), min(50, n-done), "filler")
		for i := range batch {
			batch[i].Args = json.RawMessage(`{"text":"` + text + `"}`)
		}
		if err := ts.storage.Append(ctx, storeID, batch, time.Now()); err != nil {
			t.Fatal(err)
		}
		done += len(batch)
	}
}

// TestUnackedPullsHoldNoPages opens 150 non-live pulls on one connection of a
// store of 300 events of 20 KB, reads the first page of each (about 890 KB)
// and never acknowledges. A pull reads its next page only after the Ack, so
// the pulls hold nothing: the heap stays within 48 MiB of what it was before
// (holding each pull's 256-event window, as the server once did, cost twice
// the window's bytes: 30 such pulls on events of 40 KB grew the heap by
// 599 MiB). Then one pull is acknowledged to its end. With the race
// detector, 20 pulls of 120 events.
func TestUnackedPullsHoldNoPages(t *testing.T) {
	const size = 20_000
	pulls, events := 150, 300
	if raceEnabled {
		pulls, events = 20, 120
	}
	// The first pages of all pulls are queued at once; the client's queue
	// bound (tested elsewhere) must not cut a client that reads them slower
	// than they come, as on a busy machine.
	ts := startServer(t, syncserver.Options{MaxPullsPerConnection: pulls, MaxPendingBytes: pulls * mib})
	fillStore(t, ts, "big", events, size)
	c := dialSink(t, ts, "big")
	before := heapAfterGC()

	for i := range pulls {
		c.send(pullMsg(t, strconv.Itoa(i), "big", false, nil))
	}
	c.await("the first page of every pull", func() bool {
		for i := range pulls {
			if c.chunks[strconv.Itoa(i)] == 0 {
				return false
			}
		}
		return true
	})
	after := heapAfterGC()
	grown := int64(after) - int64(before)
	t.Logf("heap %d MiB before the pulls, %d MiB with %d unacknowledged pulls (%+d MiB)", before/mib, after/mib, pulls, grown/mib)
	if grown > 48*mib {
		t.Fatalf("%d unacknowledged pulls grew the heap by %d MiB; want at most 48 MiB", pulls, grown/mib)
	}
	c.mu.Lock()
	for id, n := range c.chunks {
		if n != 1 {
			t.Errorf("pull %s: %d pages before its first Ack, want 1", id, n)
		}
	}
	c.mu.Unlock()

	// Acknowledged, pull 0 delivers everything in pages of at most 44 events
	// (890 KB), each window of 256 events cut on its own: for 300 events, 5
	// pages of 44 and one of 36, then one of 44.
	wantPages := 0
	for left := events; left > 0; left -= 256 {
		wantPages += (min(left, 256) + 43) / 44
	}
	for pages := 1; ; pages++ {
		c.send(`{"_tag":"Ack","requestId":"0"}`)
		c.await("the next page or the end of pull 0", func() bool { return c.chunks["0"] > pages || c.exits["0"] != "" })
		c.mu.Lock()
		exit := c.exits["0"]
		c.mu.Unlock()
		if exit != "" {
			if pages != wantPages {
				t.Fatalf("pull 0 sent %d pages; want %d", pages, wantPages)
			}
			if !strings.Contains(exit, `"Success"`) {
				t.Fatalf("pull 0 ended with %s", exit)
			}
			break
		}
	}
}

// TestPullPagesMatchWindowModel pulls a store of events of random sizes and
// checks every page against the reference's paging: 256 events read at a
// time, each window cut greedily into pages of at most 100 events and
// 900,000 bytes. The server reads only each page's events, guessing how many
// fit; the pages must not change.
func TestPullPagesMatchWindowModel(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	ts := startServer(t, syncserver.Options{})
	n, maxLarge := 540, 250_000
	if raceEnabled {
		n, maxLarge = 300, 100_000
	}
	ctx := context.Background()
	backend := backendID(t, ts, "mixed")
	var log []syncproto.Event
	for len(log) < n {
		batch := chain(int64(len(log)), min(20, n-len(log)), "mixed")
		for i := range batch {
			size := 50 + rng.IntN(2000)
			if rng.IntN(10) == 0 {
				size = 20_000 + rng.IntN(maxLarge)
			}
			batch[i].Args = json.RawMessage(`{"text":"` + strings.Repeat("y", size) + `"}`)
		}
		if err := ts.storage.Append(ctx, "mixed", batch, time.Now()); err != nil {
			t.Fatal(err)
		}
		log = append(log, batch...)
	}
	stored, err := ts.storage.Read(ctx, "mixed", 0, int64(n), n)
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for start := 0; start < n; start += 256 {
		var items []syncproto.PullItem
		for _, ev := range stored[start:min(start+256, n)] {
			items = append(items, syncproto.PullItem{Event: ev.Event, Metadata: &syncproto.SyncMetadata{CreatedAt: syncserver.FormatCreatedAt(ev.CreatedAt)}})
		}
		pages, err := splitPull(items, backend)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pages {
			want = append(want, len(p))
		}
	}

	c := dialRaw(t, ts, "mixed")
	c.send(pullMsg(t, "1", "mixed", false, nil))
	next, sent := int64(1), 0
	for i, w := range want {
		res := page(t, c.recv(), "1")
		sent += len(res.Batch)
		wantInfo := syncproto.PageInfo{Kind: syncproto.MoreKnown, Remaining: int64(n - sent)}
		if sent == n {
			wantInfo = syncproto.PageInfo{Kind: syncproto.NoMore}
		}
		if len(res.Batch) != w || res.PageInfo != wantInfo {
			t.Fatalf("page %d: %d events, %+v; want %d, %+v", i, len(res.Batch), res.PageInfo, w, wantInfo)
		}
		for _, it := range res.Batch {
			if it.Event.SeqNum != next || !bytes.Equal(it.Event.Args, log[next-1].Args) {
				t.Fatalf("page %d: event %d, want %d", i, it.Event.SeqNum, next)
			}
			next++
		}
		c.send(`{"_tag":"Ack","requestId":"1"}`)
	}
	c.expect(`{"_tag":"Exit","requestId":"1","exit":{"_tag":"Success"}}`)
	t.Logf("%d events in %d pages", n, len(want))
}

func TestPullsPerConnectionLimit(t *testing.T) {
	ts := startServer(t, syncserver.Options{MaxPullsPerConnection: 3})
	c := dialRaw(t, ts, "many")
	for i := range 3 {
		c.send(pullMsg(t, strconv.Itoa(i), "many", true, nil))
		page(t, c.recv(), strconv.Itoa(i))
	}
	c.send(pullMsg(t, "3", "many", true, nil))
	c.expect(`{"_tag":"Exit","requestId":"3","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"UnknownError","cause":{"name":"Error","message":"too many pulls open on this connection (limit 3); interrupt one first"}}}}}`)
	// Pushes still work, and an interrupted pull frees its place.
	c.send(pushMsg(t, "4", "many", chain(0, 1, "a"), nil))
	c.expect(fmt.Sprintf(pushOK, "4"))
	for range 3 {
		if m := c.recv(); !strings.HasPrefix(m, `{"_tag":"Chunk"`) {
			t.Fatalf("live pull got %s", m)
		}
	}
	c.send(`{"_tag":"Interrupt","requestId":"1"}`)
	if m := c.recv(); !strings.Contains(m, `"requestId":"1"`) || !strings.Contains(m, "Interrupt") {
		t.Fatalf("interrupt answered with %s", m)
	}
	c.send(pullMsg(t, "5", "many", false, nil))
	if res := page(t, c.recv(), "5"); len(res.Batch) != 1 {
		t.Fatalf("pull after the interrupt: %+v", res)
	}
	if v := metricValue(t, ts, "livestore_sync_pulls_refused_total"); v != 1 {
		t.Fatalf("livestore_sync_pulls_refused_total = %v, want 1", v)
	}
}

// TestPullBytesBudget fills the server's pull budget (1 MiB, one page) with
// pages written to a client that never reads its socket, then checks that
// another client's pull waits for the budget, that it can be interrupted
// while waiting, and that it is served once the bytes are released.
func TestPullBytesBudget(t *testing.T) {
	ts := startServer(t, syncserver.Options{MaxPullBytes: mib, MaxPullsPerConnection: 64})
	fillStore(t, ts, "budget", 100, 80_000)

	ctx := t.Context()
	stuck, _, err := websocket.Dial(ctx, ts.url+"/?storeId=budget&transport=ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.CloseNow()
	// 64 pages of 880 KB: more than the socket buffers take (loopback
	// receive buffers can grow to 32 MiB).
	for i := range 64 {
		if err := stuck.Write(ctx, websocket.MessageText, []byte(pullMsg(t, strconv.Itoa(i), "budget", false, nil))); err != nil {
			t.Fatal(err)
		}
	}
	pollMetric(t, ts, "livestore_sync_pull_budget_waits_total", func(v float64) bool { return v >= 1 })
	// The socket buffers may still be growing and taking pages: wait until
	// no more events go out, so the stuck pulls hold the budget for good.
	for sent, deadline := -1.0, time.Now().Add(10*time.Second); ; {
		time.Sleep(300 * time.Millisecond)
		now := metricValue(t, ts, "livestore_sync_events_sent_total")
		if now == sent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pages to the stuck client still going out after 10 s (%v events sent)", now)
		}
		sent = now
	}

	c := dialRaw(t, ts, "budget")
	c.send(pullMsg(t, "1", "budget", false, nil))
	c.quiet(300 * time.Millisecond)
	c.send(`{"_tag":"Interrupt","requestId":"1"}`)
	if m := c.recv(); !strings.Contains(m, `"requestId":"1"`) || !strings.Contains(m, "Interrupt") {
		t.Fatalf("interrupt of a waiting pull answered with %s", m)
	}
	c.send(pullMsg(t, "2", "budget", false, nil))
	c.quiet(100 * time.Millisecond)
	if held := metricValue(t, ts, "livestore_sync_pull_bytes_held"); held > mib || held < syncproto.MaxPayloadBytes/2 {
		t.Fatalf("pull bytes held %v; want about one page, at most 1 MiB", held)
	}
	_ = stuck.CloseNow()
	if res := page(t, c.recv(), "2"); len(res.Batch) != 11 {
		t.Fatalf("first page: %d events, want 11", len(res.Batch))
	}
}

func TestServerConnectionLimit(t *testing.T) {
	var logs lockedbuf.Buffer
	ts := startServer(t, syncserver.Options{MaxConnections: 2, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := t.Context()
	a, err := syncclient.Dial(ctx, ts.url, syncclient.Options{StoreID: "one"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := syncclient.Dial(ctx, ts.url, syncclient.Options{StoreID: "two"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = syncclient.Dial(ctx, ts.url, syncclient.Options{StoreID: "three"})
	var de *syncclient.DialError
	if !errors.As(err, &de) || de.StatusCode != http.StatusServiceUnavailable || de.Body != "server connection limit (2) reached" {
		t.Fatalf("third connection: %v", err)
	}
	if n := strings.Count(logs.String(), "server connection limit reached"); n != 1 {
		t.Fatalf("%d log lines for the refusal, want 1:\n%s", n, logs.String())
	}
	if v := metricValue(t, ts, `livestore_sync_connections_refused_total{reason="connection_limit"}`); v != 1 {
		t.Fatalf("refusals counted: %v", v)
	}
	// A closed connection frees its place (once its handler has returned).
	b.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := syncclient.Dial(ctx, ts.url, syncclient.Options{StoreID: "three"})
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection after one closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIdleConnectionsAfterLargeMessage has 200 connections send one message
// of 2 MiB each and then stay idle. The messages are just over the server's
// limit, which the server reads to the limit and answers with a Defect (so
// that the test spends no time decoding JSON); its read buffer has then grown
// to 4 MiB, as for a push of 2 MiB. The server drops a read buffer over 64 KiB
// after its message, so the idle connections cost little: the heap grows by
// at most 40 MiB (800 MiB when each connection kept its buffer). With the
// race detector, 20 connections.
func TestIdleConnectionsAfterLargeMessage(t *testing.T) {
	conns := 200
	if raceEnabled {
		conns = 20
	}
	ts := startServer(t, syncserver.Options{})
	msg := `{"_tag":"Ping"` + strings.Repeat(" ", syncserver.DefaultMaxMessageBytes) + `}`
	before := heapAfterGC()
	sinks := make([]*sink, conns)
	for i := range sinks {
		s := dialSink(t, ts, "idle")
		s.send(msg)
		s.await("the answer to a large message", func() bool { return s.defects == 1 })
		sinks[i] = s
	}
	after := heapAfterGC()
	grown := int64(after) - int64(before)
	t.Logf("heap %d MiB before, %d MiB with %d idle connections after a 2 MiB message each (%+d MiB)", before/mib, after/mib, conns, grown/mib)
	if grown > 40*mib {
		t.Fatalf("%d idle connections grew the heap by %d MiB; want at most 40 MiB", conns, grown/mib)
	}
}

// metricValue scrapes /metrics and returns the sample named by series
// (name, or name{labels} as exposed).
func metricValue(t *testing.T, ts *testServer, series string) float64 {
	t.Helper()
	_, body := httpGet(t, ts.http.URL+"/metrics", nil)
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s in:\n%s", series, body)
	return 0
}

func pollMetric(t *testing.T, ts *testServer, series string, ok func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v := metricValue(t, ts, series)
		if ok(v) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metric %s stayed at %v", series, v)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
