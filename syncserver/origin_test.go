package syncserver_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/livestore-go/livestore/syncserver"
)

// upgradeWith sends a WebSocket upgrade to the server at addr naming host
// in its Host header, with origin in Origin (none if empty), and returns
// the status and body of the answer.
func upgradeWith(t *testing.T, addr, host, origin string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/?storeId=o&transport=ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, ""
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// publicListener reports a public local address for its connections, as a
// listener on every interface does for a connection to a public address.
type publicListener struct{ net.Listener }

func (l publicListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return publicConn{c}, nil
}

type publicConn struct{ net.Conn }

func (publicConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 443} }

// TestOriginOfRebindingPage checks the same-origin rule against DNS
// rebinding: on a loopback address a page is the server's own only if the
// Host names loopback, while a server reached on a public address takes its
// Host as it comes. A refusal ends with OriginRefusalHint.
func TestOriginOfRebindingPage(t *testing.T) {
	ts := startServer(t, syncserver.Options{OriginRefusalHint: "see --allowed-origins"})
	addr := strings.TrimPrefix(ts.http.URL, "http://")
	_, port, _ := net.SplitHostPort(addr)
	for _, tt := range []struct {
		host string
		want int
	}{
		{"evil.example:" + port, http.StatusForbidden},
		{"localhost:" + port, http.StatusSwitchingProtocols},
		{"app.localhost:" + port, http.StatusSwitchingProtocols},
		{"[::1]:" + port, http.StatusSwitchingProtocols},
		{addr, http.StatusSwitchingProtocols},
	} {
		code, body := upgradeWith(t, addr, tt.host, "http://"+tt.host)
		if code != tt.want {
			t.Errorf("loopback, same origin %s: status %d %q, want %d", tt.host, code, body, tt.want)
		}
		if code == http.StatusForbidden && !strings.Contains(body, `is not allowed by this server (see --allowed-origins)`) {
			t.Errorf("refusal body %q lacks the hint", body)
		}
	}

	srv, err := syncserver.New(syncserver.Options{Storage: ts.storage})
	if err != nil {
		t.Fatal(err)
	}
	public := httptest.NewUnstartedServer(srv)
	public.Listener = publicListener{public.Listener}
	public.Start()
	defer func() {
		public.CloseClientConnections()
		_ = srv.Close()
		public.Close()
	}()
	addr = strings.TrimPrefix(public.URL, "http://")
	if code, body := upgradeWith(t, addr, "app.example.com", "https://app.example.com"); code != http.StatusSwitchingProtocols {
		t.Errorf("public address, same origin: status %d %q", code, body)
	}
	if code, body := upgradeWith(t, addr, "app.example.com", "https://evil.example"); code != http.StatusForbidden || strings.Contains(body, "(") {
		t.Errorf("public address, other origin: status %d %q, want 403 without a hint", code, body)
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST:8787": true, "localhost.:80": true, "app.localhost:5173": true,
		"127.0.0.1": true, "127.1.2.3:80": true, "[::1]:8787": true, "::1": true,
		"localhost.evil.example": false, "evil.example:80": false, "10.0.0.1": false, "[2001:db8::1]:80": false, "": false,
	} {
		if got := syncserver.IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
