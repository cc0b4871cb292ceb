package syncserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

func httpGet(t *testing.T, url string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHTTPRoutes(t *testing.T) {
	ts := startServer(t, syncserver.Options{})
	base := ts.http.URL
	upgrade := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	tests := []struct {
		name   string
		path   string
		header http.Header
		status int
		body   string
	}{
		{"health", "/health", nil, 200, `{"status":"ok"}`},
		{"info", "/", nil, 200, "Info: LiveStore sync endpoint"},
		{"unknown path", "/nope", nil, 400, "Invalid path"},
		{"no upgrade", "/?storeId=s1&transport=ws", nil, 426, "expected Upgrade: websocket"},
		{"http transport takes POST", "/?storeId=s1&transport=http", nil, 405, "the HTTP transport takes POST requests"},
		{"unknown transport", "/?storeId=s1&transport=sse", upgrade, 400, `transport "sse" is not supported by this server; use transport=ws or transport=http`},
		{"bad store id", "/?storeId=a%2Fb&transport=ws", upgrade, 400, "invalid store id"},
		{"long store id", "/?storeId=" + strings.Repeat("a", 257) + "&transport=ws", upgrade, 400, "at most 256"},
		{"bad payload", "/?storeId=s1&transport=ws&payload=%7Bnope", upgrade, 400, "invalid payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := httpGet(t, base+tt.path, tt.header)
			if status != tt.status || !strings.Contains(body, tt.body) {
				t.Fatalf("GET %s = %d %q; want %d containing %q", tt.path, status, body, tt.status, tt.body)
			}
		})
	}
	// Any path carrying the sync parameters is the sync endpoint.
	ctx := t.Context()
	ws, _, err := websocket.Dial(ctx, ts.url+"/some/deep/path?storeId=s1&transport=ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"_tag":"Ping"}`)); err != nil {
		t.Fatal(err)
	}
	if _, b, err := ws.Read(ctx); err != nil || string(b) != `{"_tag":"Pong"}` {
		t.Fatalf("read %s, %v", b, err)
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
}

// waitClients waits until the server counts n open connections.
func waitClients(t *testing.T, ts *testServer, n int) {
	t.Helper()
	want := fmt.Sprintf("livestore_sync_connected_clients %d\n", n)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, body := httpGet(t, ts.http.URL+"/metrics", nil)
		if strings.Contains(body, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("never reached %d connections", n)
		}
	}
}

func TestMetrics(t *testing.T) {
	ts := startServer(t, syncserver.Options{})
	c := dialRaw(t, ts, "m")
	c.send(pushMsg(t, "0", "m", chain(0, 3, "a"), nil))
	c.expect(fmt.Sprintf(pushOK, "0"))
	c.send(pushMsg(t, "1", "m", chain(0, 3, "a"), nil))
	c.recv()
	status, body := httpGet(t, ts.http.URL+"/metrics", nil)
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	for _, want := range []string{
		`livestore_sync_pushes_total{result="ok"} 1`,
		`livestore_sync_pushes_total{result="server_ahead"} 1`,
		`livestore_sync_events_pushed_total 3`,
		`livestore_sync_connected_clients 1`,
		`livestore_sync_push_duration_seconds_count 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestAuth(t *testing.T) {
	ts := startServer(t, syncserver.Options{
		Auth: func(ctx context.Context, storeID string, payload json.RawMessage, header http.Header) (syncserver.Access, error) {
			var p struct {
				Token string `json:"authToken"`
			}
			_ = json.Unmarshal(payload, &p)
			if p.Token != "s3cret & more" || header.Get("X-App") != "todo" {
				return syncserver.Access{}, errors.New("bad token")
			}
			return syncserver.Access{}, nil
		},
	})
	ctx := t.Context()
	good := json.RawMessage(`{"authToken":"s3cret & more"}`)
	c, err := syncclient.Dial(ctx, ts.url, syncclient.Options{StoreID: "auth", Payload: good, Header: http.Header{"X-App": {"todo"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()

	_, err = syncclient.Dial(ctx, ts.url, syncclient.Options{StoreID: "auth", Payload: json.RawMessage(`{"authToken":"guess"}`), Header: http.Header{"X-App": {"todo"}}})
	var de *syncclient.DialError
	if !errors.As(err, &de) || de.StatusCode != http.StatusUnauthorized || de.Body != "unauthorized: bad token" {
		t.Fatalf("dial with a wrong token: %v", err)
	}
}

func TestConnectionLimit(t *testing.T) {
	ts := startServer(t, syncserver.Options{MaxConnectionsPerStore: 2})
	ctx := t.Context()
	var clients []*syncclient.Client
	for range 2 {
		c, err := syncclient.Dial(ctx, ts.url, syncclient.Options{StoreID: "full"})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	_, err := syncclient.Dial(ctx, ts.url, syncclient.Options{StoreID: "full"})
	var de *syncclient.DialError
	if !errors.As(err, &de) || de.StatusCode != http.StatusTooManyRequests || !strings.Contains(de.Body, `too many connections to store "full" (limit 2)`) {
		t.Fatalf("third connection: %v", err)
	}
	// Other stores are not affected, and a slot frees up on close.
	other, err := syncclient.Dial(ctx, ts.url, syncclient.Options{StoreID: "other"})
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
	clients[0].Close()
	var again *syncclient.Client
	for deadline := time.Now().Add(5 * time.Second); ; {
		again, err = syncclient.Dial(ctx, ts.url, syncclient.Options{StoreID: "full"})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
	clients[1].Close()
}

// gatedStorage blocks Append until released, to hold a push in flight.
type gatedStorage struct {
	syncserver.Storage
	entered chan struct{}
	release chan struct{}
}

func (g *gatedStorage) Append(ctx context.Context, storeID string, batch []syncproto.Event, createdAt time.Time) error {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	select {
	case <-g.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Storage.Append(ctx, storeID, batch, createdAt)
}

func newGated(t *testing.T) (*testServer, *gatedStorage) {
	base := startServer(t, syncserver.Options{}) // only for its storage
	g := &gatedStorage{Storage: base.storage, entered: make(chan struct{}, 1), release: make(chan struct{})}
	return startServer(t, syncserver.Options{Storage: g}), g
}

func TestShutdownFinishesInFlightPush(t *testing.T) {
	ts, g := newGated(t)
	c := dialRaw(t, ts, "shut")
	idle := dialRaw(t, ts, "shut")
	idle.send(pullMsg(t, "0", "shut", true, nil))
	idle.recv()
	c.send(pushMsg(t, "0", "shut", chain(0, 5, "a"), nil))
	<-g.entered

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- ts.Shutdown(ctx)
	}()
	// New connections are refused while shutting down.
	for deadline := time.Now().Add(5 * time.Second); ; {
		status, body := httpGet(t, ts.http.URL+"/health", nil)
		if status == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health still %d %s", status, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, _, err := websocket.Dial(t.Context(), ts.url+"/?storeId=shut&transport=ws", nil)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("dial during shutdown: %v", err)
	}
	// The idle connection is closed at once; the busy one after its push.
	if code := idle.closed(); code != websocket.StatusGoingAway {
		t.Fatalf("idle connection closed with %v", code)
	}
	close(g.release)
	c.expect(fmt.Sprintf(pushOK, "0"))
	if code := c.closed(); code != websocket.StatusGoingAway {
		t.Fatalf("closed with %v", code)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkLog(t, ts, "shut", 5)
}

func TestDroppedMidPush(t *testing.T) {
	ts, g := newGated(t)
	c := dialRaw(t, ts, "drop")
	c.send(pushMsg(t, "0", "drop", chain(0, 3, "a"), nil))
	<-g.entered
	_ = c.ws.CloseNow()
	close(g.release)
	waitClients(t, ts, 0)

	// The server keeps serving; the log is consistent whether or not the
	// dropped push was stored.
	d := dialRaw(t, ts, "drop")
	d.send(pullMsg(t, "0", "drop", false, nil))
	res := page(t, d.recv(), "0")
	n := int64(len(res.Batch))
	if n != 0 && n != 3 {
		t.Fatalf("pulled %d events", n)
	}
	d.send(`{"_tag":"Ack","requestId":"0"}`)
	d.recv()
	d.send(pushMsg(t, "1", "drop", chain(n, 2, "b"), nil))
	d.expect(fmt.Sprintf(pushOK, "1"))
	checkLog(t, ts, "drop", n+2)
}

func TestCloseAbortsInFlightPush(t *testing.T) {
	ts, g := newGated(t)
	c := dialRaw(t, ts, "abort")
	c.send(pushMsg(t, "0", "abort", chain(0, 3, "a"), nil))
	<-g.entered
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	c.closed()
	checkLog(t, ts, "abort", 0) // not acknowledged, not stored
}

// smallBuffers makes accepted connections' kernel send buffers small, so that
// a client that does not read blocks the server's writes quickly.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

func TestSlowClientIsDisconnected(t *testing.T) {
	st := startServer(t, syncserver.Options{}).storage
	srv, err := syncserver.New(syncserver.Options{Storage: st, MaxPendingBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv)
	hs.Listener = smallBuffers{hs.Listener}
	hs.Start()
	defer hs.Close()
	defer srv.Close()
	ts := &testServer{Server: srv, http: hs, storage: st, url: "ws" + strings.TrimPrefix(hs.URL, "http")}

	ctx := t.Context()
	// A client that asks for live updates and then never reads.
	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8<<10) })
	}}
	httpClient := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	slow, _, err := websocket.Dial(ctx, ts.url+"/?storeId=slow&transport=ws", &websocket.DialOptions{HTTPClient: httpClient})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	if err := slow.Write(ctx, websocket.MessageText, []byte(pullMsg(t, "0", "slow", true, nil))); err != nil {
		t.Fatal(err)
	}
	w := dialRaw(t, ts, "slow")
	args := json.RawMessage(`{"text":"` + strings.Repeat("x", 8000) + `"}`)
	// Push until the server gives up on the slow client.
	var n int64
	for i := 0; ; i++ {
		batch := chain(n, 100, "w")
		for j := range batch {
			batch[j].Args = args
		}
		w.send(pushMsg(t, fmt.Sprint(i), "slow", batch, nil))
		w.expect(fmt.Sprintf(pushOK, fmt.Sprint(i)))
		n += 100
		if i >= 2 {
			break
		}
	}
	waitClients(t, ts, 1)
	t.Logf("disconnected after %d events", n)
	// Reading now drains what was buffered, then the connection ends.
	slow.SetReadLimit(16 << 20)
	for {
		if _, _, err := slow.Read(ctx); err != nil {
			if code := websocket.CloseStatus(err); code != websocket.StatusPolicyViolation && code != -1 {
				t.Fatalf("slow client closed with %v (%v)", code, err)
			}
			break
		}
	}
	checkLog(t, ts, "slow", n)
}

func TestConcurrentPushersStayOrdered(t *testing.T) {
	ts := startServer(t, syncserver.Options{})
	const pushers, perPusher = 6, 15
	ctx := t.Context()
	follower, err := syncclient.Dial(ctx, ts.url, syncclient.Options{StoreID: "conc"})
	if err != nil {
		t.Fatal(err)
	}
	defer follower.Close()
	stream, err := follower.Pull(ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()

	var wg sync.WaitGroup
	errs := make(chan error, pushers)
	for p := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := syncclient.Dial(ctx, ts.url, syncclient.Options{StoreID: "conc"})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			var head int64
			for done := 0; done < perPusher; {
				err := c.Push(ctx, chain(head, 2, fmt.Sprintf("p%d", p)), nil)
				var ahead *syncproto.ServerAheadError
				switch {
				case errors.As(err, &ahead):
					head = ahead.MinimumExpectedNum // rebase onto the server's head
				case err != nil:
					errs <- err
					return
				default:
					head += 2
					done++
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := int64(pushers * perPusher * 2)
	checkLog(t, ts, "conc", total)
	// The live follower saw every event once, in order.
	next := int64(1)
	for next <= total {
		res, err := stream.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range res.Batch {
			if it.Event.SeqNum != next {
				t.Fatalf("follower got %d, want %d", it.Event.SeqNum, next)
			}
			next++
		}
	}
}
