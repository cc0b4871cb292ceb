package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// ReferenceStartTimeout bounds how long StartReferenceServer waits for the
// server to answer; wrangler needs ~5-10 s on an idle machine.
const ReferenceStartTimeout = 60 * time.Second

// StartReferenceServer runs the reference sync server (the @livestore/sync-cf
// 0.4.0 Durable Object in workerd, via `wrangler dev --local`) on a free
// loopback port with its storage in a fresh temporary directory, and returns
// its WebSocket base URL ("ws://127.0.0.1:PORT"). It returns once the server
// answers a Ping on a sync WebSocket. The server and its children are stopped
// in t.Cleanup; if the test fails, the server's output is logged.
func StartReferenceServer(t testing.TB) string {
	t.Helper()
	dir := NPMInstalled(t)
	persist := t.TempDir()

	// A port picked as free can be taken before wrangler binds it: try again then.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ports, err := freePorts(2)
		if err != nil {
			t.Fatalf("reference server: %v", err)
		}
		p, err := startProcess(dir, childEnv("CI=true", "WRANGLER_SEND_METRICS=false", "NO_COLOR=1", "FORCE_COLOR=0"),
			"npx", "wrangler", "dev",
			"--config", "js/reference-server/wrangler.toml",
			"--local", "--ip", "127.0.0.1",
			"--port", strconv.Itoa(ports[0]),
			"--inspector-port", strconv.Itoa(ports[1]),
			"--persist-to", persist,
			"--show-interactive-dev-session=false",
		)
		if err != nil {
			t.Fatalf("reference server: %v", err)
		}
		t.Cleanup(func() {
			p.stop(10 * time.Second)
			if t.Failed() {
				t.Logf("reference server output:\n%s", p.out)
			}
		})

		url := fmt.Sprintf("ws://127.0.0.1:%d", ports[0])
		start := time.Now()
		err = waitForServer(p, url, ReferenceStartTimeout)
		if err == nil {
			t.Logf("reference server up at %s after %v", url, time.Since(start).Round(time.Millisecond))
			return url
		}
		lastErr = fmt.Errorf("%w\noutput:\n%s", err, p.out)
		if !p.exited() {
			break // still running but not answering: another port will not help
		}
		p.stop(0)
	}
	t.Fatalf("reference server did not come up: %v", lastErr)
	return ""
}

var errExited = errors.New("the server process exited")

// waitForServer polls url with a WebSocket Ping until it answers Pong.
func waitForServer(p *process, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%w (%v)", errExited, p.err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		lastErr = PingServer(ctx, url)
		cancel()
		if lastErr == nil {
			return nil
		}
		select {
		case <-p.done:
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("no answer within %v: %v", timeout, lastErr)
}

// PingServer opens a sync WebSocket to the server at url (any server of the
// sync-cf WebSocket protocol: the reference or ours), sends a Ping and waits
// for the Pong.
func PingServer(ctx context.Context, url string) error {
	conn, _, err := websocket.Dial(ctx, strings.TrimRight(url, "/")+"/?storeId=interop-ping&transport=ws", nil)
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"_tag":"Ping"}`)); err != nil {
		return err
	}
	_, msg, err := conn.Read(ctx)
	if err != nil {
		return err
	}
	if string(msg) != `{"_tag":"Pong"}` {
		return fmt.Errorf("answer to Ping: %s", msg)
	}
	conn.Close(websocket.StatusNormalClosure, "")
	return nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
