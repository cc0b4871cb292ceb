package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
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
	var out strings.Builder
	url, stop, err := StartReference(context.Background(), &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("reference server: %v", err)
		}
		if t.Failed() {
			t.Logf("reference server output:\n%s", out.String())
		}
	})
	t.Logf("reference server up at %s", url)
	return url
}

// StartReference is [StartReferenceServer] for programs: it starts the
// reference server, waits until it answers (at most
// [ReferenceStartTimeout], or until ctx ends) and returns its WebSocket base
// URL and stop, which stops the server and its children and removes its
// storage. The server's output (its last 256 KiB) is written to logw, if
// not nil, when stop is called. An error carries the output of the server
// that did not come up.
func StartReference(ctx context.Context, logw io.Writer) (url string, stop func() error, err error) {
	dir, err := npmInstalled()
	if err != nil {
		return "", nil, err
	}
	persist, err := os.MkdirTemp("", "livestore-reference-")
	if err != nil {
		return "", nil, fmt.Errorf("reference server storage: %w", err)
	}
	// A port picked as free can be taken before wrangler binds it: try again then.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		var p *process
		url, p, err = startWrangler(dir, persist)
		if err != nil {
			_ = os.RemoveAll(persist)
			return "", nil, err
		}
		err = waitForServer(ctx, p, url, ReferenceStartTimeout)
		if err == nil {
			return url, referenceStopper(p, persist, logw), nil
		}
		lastErr = fmt.Errorf("%w\noutput:\n%s", err, p.out)
		exited := p.exited()
		p.stop(10 * time.Second)
		if !exited || ctx.Err() != nil {
			break // still running but not answering: another port will not help
		}
	}
	_ = os.RemoveAll(persist)
	return "", nil, fmt.Errorf("reference server did not come up: %w", lastErr)
}

// startWrangler starts `wrangler dev` of interop dir on free ports, storing
// in persist, and returns the server's URL.
func startWrangler(dir, persist string) (string, *process, error) {
	ports, err := freePorts(2)
	if err != nil {
		return "", nil, fmt.Errorf("reference server: %w", err)
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
		return "", nil, fmt.Errorf("reference server: %w", err)
	}
	return fmt.Sprintf("ws://127.0.0.1:%d", ports[0]), p, nil
}

// referenceStopper returns the stop of StartReference.
func referenceStopper(p *process, persist string, logw io.Writer) func() error {
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			p.stop(10 * time.Second)
			if logw != nil {
				_, _ = io.WriteString(logw, p.out.String())
			}
			if rerr := os.RemoveAll(persist); rerr != nil {
				err = fmt.Errorf("remove the reference server's storage: %w", rerr)
			}
		})
		return err
	}
}

var errExited = errors.New("the server process exited")

// waitForServer polls url with a WebSocket Ping until it answers Pong.
func waitForServer(ctx context.Context, p *process, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p.exited() {
			return fmt.Errorf("%w (%v)", errExited, p.err)
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		lastErr = PingServer(pctx, url)
		cancel()
		if lastErr == nil {
			return nil
		}
		select {
		case <-p.done:
		case <-ctx.Done():
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
