package syncserver_test

import (
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/internal/faultproxy"
	"github.com/livestore-go/livestore/syncserver"
)

// A client that vanishes without closing (its packets are dropped, as when
// a laptop sleeps or a NAT mapping dies) is disconnected by the server's
// pings; a client that answers them stays connected.
func TestPingDisconnectsVanishedClient(t *testing.T) {
	// Long enough for an answering client's pong to arrive in time on a
	// loaded machine under -race.
	const every = 300 * time.Millisecond
	ts := startServer(t, syncserver.Options{PingInterval: every})
	p, err := faultproxy.New(faultproxy.Options{Target: strings.TrimPrefix(ts.url, "ws://")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })

	alive := dialRaw(t, ts, "keep")
	alive.send(pullMsg(t, "0", "keep", true, nil))
	alive.recv() // the first (empty) page
	viaProxy := &testServer{Server: ts.Server, http: ts.http, storage: ts.storage, url: "ws://" + p.Addr()}
	gone := dialRaw(t, viaProxy, "keep")
	gone.send(pullMsg(t, "0", "keep", true, nil))
	gone.recv()
	waitClients(t, ts, 2)

	p.SetBlackhole(true)
	waitClients(t, ts, 1)
	_, body := httpGet(t, ts.http.URL+"/metrics", nil)
	if !strings.Contains(body, "livestore_sync_ping_timeouts_total 1\n") {
		t.Fatalf("metrics do not count one ping timeout:\n%s", grepLines(body, "ping_timeouts"))
	}

	// Several intervals later the answering client is still served.
	time.Sleep(5 * every)
	alive.send(`{"_tag":"Ping"}`)
	alive.expect(`{"_tag":"Pong"}`)
	waitClients(t, ts, 1)
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
