package syncclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/pgstore/pgtest"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs a sync server on storage and returns its URL.
func serve(t *testing.T, storage syncserver.Storage) (string, *syncserver.Server) {
	t.Helper()
	srv, err := syncserver.New(syncserver.Options{Storage: storage})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return hs.URL, srv
}

func sqliteStorage(t *testing.T) syncserver.Storage {
	t.Helper()
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func dial(t *testing.T, url, storeID string) *syncclient.Client {
	t.Helper()
	c, err := syncclient.Dial(t.Context(), url, syncclient.Options{StoreID: storeID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func chain(after int64, n int, clientID string) []syncproto.Event {
	out := make([]syncproto.Event, n)
	for i := range out {
		seq := after + int64(i) + 1
		out[i] = syncproto.Event{Name: "v1.Test", Args: json.RawMessage(fmt.Sprintf(`{"n":%d}`, seq)), SeqNum: seq, ParentSeqNum: seq - 1, ClientID: clientID, SessionID: "s"}
	}
	return out
}

func TestSyncURL(t *testing.T) {
	got, err := syncclient.SyncURL("wss://sync.example.com/base?x=1", "my-store", json.RawMessage(`{"authToken": "a b&c"}`))
	if err != nil {
		t.Fatal(err)
	}
	// The payload is URI-component-encoded, then query-encoded, like the
	// reference client's URL.
	want := "wss://sync.example.com/base?payload=%257B%2522authToken%2522%253A%2522a%2520b%2526c%2522%257D&storeId=my-store&transport=ws&x=1"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if _, err := syncclient.SyncURL("ftp://x", "s", nil); err == nil {
		t.Fatal("ftp accepted")
	}
}

// transports are the client's transports, each as a backend for a server
// at url; the tests of a client's behaviour run on each.
var transports = []struct {
	name    string
	backend func(url string) syncproto.Backend
}{
	{"ws", func(url string) syncproto.Backend { return syncclient.WebSocketBackend(url, syncclient.Options{}) }},
	{"http", func(url string) syncproto.Backend {
		return syncclient.HTTPBackend(url, syncclient.HTTPOptions{PollInterval: 20 * time.Millisecond})
	}},
}

// eachTransport runs test once per transport, as a subtest.
func eachTransport(t *testing.T, test func(t *testing.T, backend func(url string) syncproto.Backend)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { test(t, tr.backend) })
	}
}

func connect(t *testing.T, b syncproto.Backend, storeID string) syncproto.Conn {
	t.Helper()
	c, err := b.Connect(t.Context(), storeID, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestClientServerSQLite(t *testing.T) {
	eachTransport(t, func(t *testing.T, backend func(string) syncproto.Backend) {
		url, _ := serve(t, sqliteStorage(t))
		testClientServer(t, backend(url))
	})
}

func TestClientServerPostgres(t *testing.T) {
	eachTransport(t, func(t *testing.T, backend func(string) syncproto.Backend) {
		url, _ := serve(t, pgtest.Open(t, pgtest.Schema(t)))
		testClientServer(t, backend(url))
	})
}

func testClientServer(t *testing.T, server syncproto.Backend) {
	ctx := t.Context()
	a := connect(t, server, "cs")
	b := connect(t, server, "cs")

	// An empty store: one empty page, then the end.
	s, err := a.Pull(ctx, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Next(ctx)
	if err != nil || len(first.Batch) != 0 || first.PageInfo.Kind != syncproto.NoMore || first.BackendID == "" {
		t.Fatalf("first page %+v, %v", first, err)
	}
	if _, err := s.Next(ctx); err != io.EOF {
		t.Fatalf("end of pull: %v", err)
	}
	s.Close()
	backend := first.BackendID

	live, err := b.Pull(ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if p, err := live.Next(ctx); err != nil || len(p.Batch) != 0 {
		t.Fatalf("live first page %+v, %v", p, err)
	}

	// 250 events split into requests of at most 100.
	if err := a.Push(ctx, chain(0, 250, "a"), &backend); err != nil {
		t.Fatal(err)
	}
	var seen int64
	for seen < 250 {
		p, err := live.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Batch {
			if it.Event.SeqNum != seen+1 || it.Metadata == nil {
				t.Fatalf("live event %d (%+v) after %d", it.Event.SeqNum, it.Metadata, seen)
			}
			seen++
		}
	}

	var ahead *syncproto.ServerAheadError
	if err := b.Push(ctx, chain(10, 1, "b"), &backend); !errors.As(err, &ahead) || *ahead != (syncproto.ServerAheadError{MinimumExpectedNum: 250, ProvidedNum: 10}) {
		t.Fatalf("stale push: %v", err)
	}
	wrong := "other-backend"
	var mismatch *syncproto.BackendIDMismatchError
	if err := b.Push(ctx, chain(250, 1, "b"), &wrong); !errors.As(err, &mismatch) || mismatch.Expected != backend {
		t.Fatalf("push to another backend: %v", err)
	}
	old, err := b.Pull(ctx, &syncproto.Cursor{BackendID: wrong, EventSequenceNumber: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Next(ctx); !errors.As(err, &mismatch) {
		t.Fatalf("pull from another backend: %v", err)
	}
	old.Close()

	// A pull from a cursor pages with MoreKnown and ends.
	s, err = b.Pull(ctx, &syncproto.Cursor{BackendID: backend, EventSequenceNumber: 20}, false)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	var infos []syncproto.PageInfo
	for {
		p, err := s.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, p.PageInfo)
		for _, it := range p.Batch {
			got = append(got, it.Event.SeqNum)
		}
	}
	if len(got) != 230 || got[0] != 21 || got[229] != 250 {
		t.Fatalf("pulled %d events", len(got))
	}
	wantInfos := []syncproto.PageInfo{{Kind: syncproto.MoreKnown, Remaining: 130}, {Kind: syncproto.MoreKnown, Remaining: 30}, {Kind: syncproto.NoMore}}
	if fmt.Sprint(infos) != fmt.Sprint(wantInfos) {
		t.Fatalf("page infos %v, want %v", infos, wantInfos)
	}
}

func TestBackendConnect(t *testing.T) {
	url, _ := serve(t, sqliteStorage(t))
	// Each ping has one interval to be answered: short enough for several
	// to pass in the test, long enough for a loaded machine under -race.
	b := syncclient.Backend{URL: url, Options: syncclient.Options{PingInterval: 250 * time.Millisecond}}
	c, err := b.Connect(t.Context(), "via-backend", json.RawMessage(`{"authToken":"t"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Several automatic pings pass.
	time.Sleep(time.Second)
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Push(t.Context(), chain(0, 1, "b"), nil); err != nil {
		t.Fatal(err)
	}
}

func TestPingTimeout(t *testing.T) {
	// A server that accepts the connection but never answers.
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for {
			if _, _, err := ws.Read(r.Context()); err != nil {
				return
			}
		}
	}))
	defer hs.Close()
	c, err := syncclient.Dial(t.Context(), hs.URL, syncclient.Options{StoreID: "mute", PingInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("no ping timeout")
	}
	if !errors.Is(c.Err(), syncclient.ErrPingTimeout) {
		t.Fatalf("Err = %v", c.Err())
	}
	if err := c.Push(t.Context(), chain(0, 1, "x"), nil); !errors.Is(err, syncclient.ErrPingTimeout) {
		t.Fatalf("Push = %v", err)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	url, _ := serve(t, sqliteStorage(t))
	ctx := t.Context()
	c := dial(t, url, "close")
	live, err := c.Pull(ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := live.Next(ctx); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := live.Next(ctx)
		errc <- err
	}()
	c.Close()
	if err := <-errc; !errors.Is(err, syncclient.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	<-c.Done()
	if !errors.Is(c.Err(), syncclient.ErrClosed) {
		t.Fatalf("Err = %v", c.Err())
	}
	if err := c.Push(ctx, chain(0, 1, "x"), nil); !errors.Is(err, syncclient.ErrClosed) {
		t.Fatalf("Push after Close: %v", err)
	}
	if err := c.Ping(ctx); !errors.Is(err, syncclient.ErrClosed) {
		t.Fatalf("Ping after Close: %v", err)
	}
	c.Close() // idempotent
}

func TestServerShutdownEndsClient(t *testing.T) {
	url, srv := serve(t, sqliteStorage(t))
	c := dial(t, url, "bye")
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("client not told")
	}
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "server is shutting down") {
		t.Fatalf("Err = %v", err)
	}
}

func TestInterruptStopsLivePull(t *testing.T) {
	url, _ := serve(t, sqliteStorage(t))
	ctx := t.Context()
	c := dial(t, url, "intr")
	live, err := c.Pull(ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := live.Next(ctx); err != nil {
		t.Fatal(err)
	}
	if err := live.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Next(ctx); !errors.Is(err, syncclient.ErrStreamClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	// The connection is still fine.
	if err := c.Push(ctx, chain(0, 3, "c"), nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// replica is a minimal sync engine for tests: it follows the store with a
// live pull and pushes its own events, rebasing them on the server's head
// when the server is ahead.
type replica struct {
	c    syncproto.Conn
	id   string
	mu   sync.Mutex
	log  []syncproto.Event
	grew chan struct{}
}

func newReplica(t *testing.T, server syncproto.Backend, storeID, id string) *replica {
	r := &replica{c: connect(t, server, storeID), id: id, grew: make(chan struct{}, 1)}
	s, err := r.c.Pull(t.Context(), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			p, err := s.Next(context.Background())
			if err != nil {
				return
			}
			r.mu.Lock()
			for _, it := range p.Batch {
				if it.Event.SeqNum != int64(len(r.log))+1 {
					t.Errorf("%s: got seqNum %d after %d", id, it.Event.SeqNum, len(r.log))
				}
				r.log = append(r.log, it.Event)
			}
			r.mu.Unlock()
			select {
			case r.grew <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		s.Close()
		wg.Wait()
	})
	return r
}

func (r *replica) head() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int64(len(r.log))
}

func (r *replica) waitHead(ctx context.Context, n int64) error {
	for r.head() < n {
		select {
		case <-r.grew:
		case <-ctx.Done():
			return fmt.Errorf("%s: head %d, waiting for %d: %w", r.id, r.head(), n, ctx.Err())
		}
	}
	return nil
}

// commit pushes n events of its own, rebasing until they are accepted.
func (r *replica) commit(ctx context.Context, n int) error {
	for {
		h := r.head()
		err := r.c.Push(ctx, chain(h, n, r.id), nil)
		var ahead *syncproto.ServerAheadError
		if errors.As(err, &ahead) {
			if err := r.waitHead(ctx, ahead.MinimumExpectedNum); err != nil {
				return err
			}
			continue
		}
		return err
	}
}

func converge(t *testing.T, replicas []*replica, rounds, perCommit int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, r := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if err := r.commit(ctx, perCommit); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	total := int64(len(replicas) * rounds * perCommit)
	for _, r := range replicas {
		if err := r.waitHead(ctx, total); err != nil {
			t.Fatal(err)
		}
	}
	ref := replicas[0]
	for _, r := range replicas[1:] {
		r.mu.Lock()
		ref.mu.Lock()
		for i := range ref.log {
			if ref.log[i].ClientID != r.log[i].ClientID || string(ref.log[i].Args) != string(r.log[i].Args) {
				t.Errorf("replicas differ at %d", i)
				break
			}
		}
		ref.mu.Unlock()
		r.mu.Unlock()
	}
}

func TestReplicasConvergeSQLite(t *testing.T) {
	eachTransport(t, func(t *testing.T, backend func(string) syncproto.Backend) {
		url, _ := serve(t, sqliteStorage(t))
		var rs []*replica
		for i := range 4 {
			rs = append(rs, newReplica(t, backend(url), "conv", fmt.Sprintf("r%d", i)))
		}
		converge(t, rs, 10, 3)
	})
}

// TestTwoServersOnePostgres runs two servers, each with its own pool, on one
// schema: clients of either converge on one log.
func TestTwoServersOnePostgres(t *testing.T) {
	eachTransport(t, func(t *testing.T, backend func(string) syncproto.Backend) {
		schema := pgtest.Schema(t)
		url1, _ := serve(t, pgtest.Open(t, schema))
		url2, _ := serve(t, pgtest.Open(t, schema))
		s1, s2 := backend(url1), backend(url2)
		rs := []*replica{
			newReplica(t, s1, "shared", "a1"),
			newReplica(t, s2, "shared", "b1"),
			newReplica(t, s1, "shared", "a2"),
			newReplica(t, s2, "shared", "b2"),
		}
		converge(t, rs, 10, 3)

		// Both servers report the same backend.
		ctx := t.Context()
		var ids []string
		for _, server := range []syncproto.Backend{s1, s2} {
			s, err := connect(t, server, "shared").Pull(ctx, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			p, err := s.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, p.BackendID)
			s.Close()
		}
		if ids[0] != ids[1] {
			t.Fatalf("backend ids %v", ids)
		}
	})
}
