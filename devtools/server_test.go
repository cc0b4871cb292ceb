package devtools_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/devtools"
	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// syncServerWithPage runs a sync server at / and its devtools page, with the
// server's stats, under /_devtools/, as `livestore serve` mounts them.
func syncServerWithPage(t *testing.T) (*httptest.Server, *sqlitestore.Store) {
	t.Helper()
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return syncServerOn(t, st), st
}

// syncServerOn is syncServerWithPage over a given storage.
func syncServerOn(t *testing.T, st *sqlitestore.Store) *httptest.Server {
	t.Helper()
	srv, err := syncserver.New(syncserver.Options{Storage: st})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", srv)
	mux.Handle("/_devtools/", http.StripPrefix("/_devtools", devtools.ServerHandler(devtools.WithStats(st, srv.StoreStats), devtools.Options{})))
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		_ = srv.Close()
		hs.Close()
	})
	return hs
}

func dialStore(t *testing.T, url, storeID string) *syncclient.Client {
	t.Helper()
	c, err := syncclient.Dial(t.Context(), url, syncclient.Options{StoreID: storeID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func eventChain(after int64, n int) []syncproto.Event {
	out := make([]syncproto.Event, n)
	for i := range out {
		seq := after + int64(i) + 1
		out[i] = syncproto.Event{Name: "v1.TodoCreated", Args: json.RawMessage(fmt.Sprintf(`{"id":"t%d"}`, seq)),
			SeqNum: seq, ParentSeqNum: seq - 1, ClientID: "c1", SessionID: "s1"}
	}
	return out
}

type serverStore struct {
	StoreID  string   `json:"storeId"`
	Head     int64    `json:"head"`
	Clients  *int     `json:"clients"`
	PushRate *float64 `json:"pushRate"`
}

type serverInfo struct {
	Mode        string            `json:"mode"`
	ReadOnly    bool              `json:"readOnly"`
	Views       []string          `json:"views"`
	Unavailable map[string]string `json:"unavailable"`
}

// TestServerPageStats shows each store's connected clients from the running
// sync server, and null for them when the page has only the storage.
func TestServerPageStats(t *testing.T) {
	hs, st := syncServerWithPage(t)
	a := dialStore(t, hs.URL, "alpha")
	dialStore(t, hs.URL, "alpha")
	if err := a.Push(t.Context(), eventChain(0, 5), nil); err != nil {
		t.Fatal(err)
	}
	base := hs.URL + "/_devtools/"
	var info serverInfo
	getJSON(t, base+"api/info", 200, &info)
	if info.Mode != "server" || !info.ReadOnly || !strings.Contains(strings.Join(info.Views, ","), "sync") || info.Unavailable["sync"] != "" || info.Unavailable["data"] == "" {
		t.Fatalf("info = %+v", info)
	}
	var stores []serverStore
	getJSON(t, base+"api/stores", 200, &stores)
	if len(stores) != 1 || stores[0].StoreID != "alpha" || stores[0].Head != 5 || stores[0].Clients == nil || *stores[0].Clients != 2 || stores[0].PushRate == nil {
		t.Fatalf("stores = %s", mustMarshal(t, stores))
	}

	// The same storage without a server: no stats, and the page says why.
	plain := httptest.NewServer(devtools.ServerHandler(st, devtools.Options{}))
	t.Cleanup(plain.Close)
	getJSON(t, plain.URL+"/api/info", 200, &info)
	if !strings.Contains(info.Unavailable["sync"], "running sync server") {
		t.Fatalf("info without stats = %+v", info)
	}
	stores = nil
	getJSON(t, plain.URL+"/api/stores", 200, &stores)
	if len(stores) != 1 || stores[0].Clients != nil || stores[0].PushRate != nil {
		t.Fatalf("stores without stats = %s", mustMarshal(t, stores))
	}
	var e struct {
		Error string `json:"error"`
	}
	getJSON(t, plain.URL+"/api/tables", 404, &e)
	if !strings.Contains(e.Error, "sync server") {
		t.Fatalf("unknown API: %q", e.Error)
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestServerStoresPaged pages the store list with offset and limit.
func TestServerStoresPaged(t *testing.T) {
	srv, st := seededServer(t)
	for i := range 5 {
		if err := st.CreateStore(t.Context(), fmt.Sprintf("s%d", i), syncserver.NewBackendID()); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Get(srv.URL + "/_devtools/api/stores?offset=2&limit=3")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page []serverStore
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	// empty-store, s0…s4, todos-demo
	if resp.Header.Get("X-Livestore-Total") != "7" || len(page) != 3 || page[0].StoreID != "s1" || page[2].StoreID != "s3" {
		t.Fatalf("total %q, page %+v", resp.Header.Get("X-Livestore-Total"), page)
	}
	var e struct {
		Error string `json:"error"`
	}
	getJSON(t, srv.URL+"/_devtools/api/stores?offset=-1", 400, &e)
	getJSON(t, srv.URL+"/_devtools/api/stores?limit=0", 400, &e)
}

// TestServerEventsBefore reads the events before a seqNum, the way the page
// opens a store at its newest events.
func TestServerEventsBefore(t *testing.T) {
	srv, _ := seededServer(t)
	base := srv.URL + "/_devtools/api/stores/todos-demo/events"
	type page struct {
		Events []struct {
			SeqNum int64 `json:"seqNum"`
		} `json:"events"`
		More      bool  `json:"more"`
		NextAfter int64 `json:"nextAfter"`
	}
	seqs := func(p page) []int64 {
		var out []int64
		for _, e := range p.Events {
			out = append(out, e.SeqNum)
		}
		return out
	}
	var p page
	getJSON(t, base+"?before=151&limit=20", 200, &p)
	if s := seqs(p); len(s) != 20 || s[0] != 131 || s[19] != 150 || p.More || p.NextAfter != 150 {
		t.Fatalf("newest page: %v more %v", s, p.More)
	}
	p = page{}
	getJSON(t, base+"?before=50&limit=20", 200, &p)
	if s := seqs(p); len(s) != 20 || s[0] != 30 || s[19] != 49 || !p.More {
		t.Fatalf("page before 50: %v more %v", s, p.More)
	}
	p = page{}
	getJSON(t, base+"?before=5&limit=20", 200, &p)
	if s := seqs(p); len(s) != 4 || s[0] != 1 || !p.More {
		t.Fatalf("page before 5: %v more %v", s, p.More)
	}
	var e struct {
		Error string `json:"error"`
	}
	getJSON(t, base+"?before=0", 400, &e)
	getJSON(t, base+"?before=10&after=2", 400, &e)
	if !strings.Contains(e.Error, "not both") {
		t.Fatalf("error %q", e.Error)
	}
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	Type string
	Data string
}

// readSSE reads events from body into a channel, closed when the stream
// ends.
func readSSE(body io.Reader) <-chan sseEvent {
	out := make(chan sseEvent, 1024)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Type != "" || ev.Data != "" {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.Type = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.Data += strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return out
}

// nextStore waits for the next "store" event.
func nextStore(t *testing.T, evs <-chan sseEvent) serverStore {
	t.Helper()
	select {
	case ev, ok := <-evs:
		if !ok {
			t.Fatal("live stream ended")
		}
		var s serverStore
		if ev.Type != "store" || json.Unmarshal([]byte(ev.Data), &s) != nil {
			t.Fatalf("event %+v", ev)
		}
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no store event within 10s")
	}
	return serverStore{}
}

// TestServerLive follows the live stream: every store once when it starts,
// then only the stores that changed, each change once.
func TestServerLive(t *testing.T) {
	hs, _ := syncServerWithPage(t)
	a := dialStore(t, hs.URL, "alpha")
	if err := a.Push(t.Context(), eventChain(0, 3), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", hs.URL+"/_devtools/api/live", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	evs := readSSE(resp.Body)
	first := nextStore(t, evs)
	if first.StoreID != "alpha" || first.Head != 3 || first.Clients == nil || *first.Clients != 1 {
		t.Fatalf("first event %+v", first)
	}
	b := dialStore(t, hs.URL, "beta")
	if err := b.Push(t.Context(), eventChain(0, 2), nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Push(t.Context(), eventChain(3, 4), nil); err != nil {
		t.Fatal(err)
	}
	// alpha's head reaches 7 and beta appears with head 2; pushes also move
	// the push rate, which is a change too. No event repeats the previous
	// one of its store.
	last := map[string]serverStore{"alpha": first}
	for last["alpha"].Head != 7 || last["beta"].Head != 2 {
		s := nextStore(t, evs)
		if prev, ok := last[s.StoreID]; ok && mustMarshal(t, prev) == mustMarshal(t, s) {
			t.Fatalf("repeated event %+v", s)
		}
		last[s.StoreID] = s
	}
}

// TestServerLiveEndsOnShutdown: an open live stream does not hold up the
// shutdown of the http.Server serving it.
func TestServerLiveEndsOnShutdown(t *testing.T) {
	_, st := seededServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: devtools.ServerHandler(st, devtools.Options{})}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/api/live")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	evs := readSSE(resp.Body)
	nextStore(t, evs)
	nextStore(t, evs)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a live stream open: %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatal(err)
	}
	for range evs {
	}
}
