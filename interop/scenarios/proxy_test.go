package scenarios

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// holdProxy is a WebSocket proxy between sync clients and a sync server that
// can hold back the server's pull pages (Chunk messages). A client whose
// pages are held does not learn of new events, so its next push is based on
// a stale head and the server rejects it with ServerAheadError: the proxy
// makes "someone pushed first" happen on cue instead of by chance. It counts
// the ServerAheadErrors it passes to clients and, on the first one, releases
// the held pages (in order), as if they had merely been slow.
//
// Everything else (pushes, Pings, Exits) passes through at once. Holding
// reorders messages of different requests only, which the protocol allows.
type holdProxy struct {
	holdState
	t        testing.TB
	upstream string // ws://host:port of the server
	hs       *httptest.Server
}

// holdState is the switch of a proxy that holds back what tells clients
// of new events, until a ServerAheadError passes.
type holdState struct {
	mu          sync.Mutex
	holding     bool
	released    chan struct{} // closed when holding ends
	serverAhead []string      // the ServerAheadError exits passed on
	held        int           // pages (or pull requests) held so far
	log         *slog.Logger  // what passed, printed if the test fails
}

// proxy is a holding proxy of either transport.
type proxy interface {
	URL() string
	Hold()
	Release()
	ServerAheadErrors() []string
}

// newHoldProxy starts a proxy to upstream; hold says whether it starts
// holding pages. It is stopped when the test ends.
func newHoldProxy(t testing.TB, upstream string, hold bool) *holdProxy {
	p := &holdProxy{t: t, upstream: strings.TrimRight(upstream, "/")}
	p.hs = p.start(t, "proxy to "+upstream, hold, p.serve)
	return p
}

// start serves handler until the test ends (then lets go of what is held),
// holding from the start if hold is set; name labels the log.
func (p *holdState) start(t testing.TB, name string, hold bool, handler http.HandlerFunc) *httptest.Server {
	p.released, p.log = make(chan struct{}), testLogger(t, name)
	if hold {
		p.Hold()
	}
	hs := httptest.NewServer(handler)
	t.Cleanup(func() {
		p.Release()
		hs.CloseClientConnections()
		hs.Close()
	})
	return hs
}

// URL is the proxy's WebSocket base URL, for clients.
func (p *holdProxy) URL() string { return "ws" + strings.TrimPrefix(p.hs.URL, "http") }

// holdLimit bounds a hold: if the expected ServerAheadError never comes, the
// pages flow again (and the test's check of ServerAheadErrors fails) instead
// of the clients waiting until the test's deadline.
const holdLimit = 3 * time.Minute

// Hold makes the proxy hold back pull pages until a ServerAheadError passes,
// Release is called or holdLimit passes.
func (p *holdState) Hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.holding {
		p.holding = true
		released := make(chan struct{})
		p.released = released
		time.AfterFunc(holdLimit, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.holding && p.released == released {
				p.log.Warn("hold limit reached: releasing")
				p.holding = false
				close(released)
			}
		})
	}
}

// Release sends the held pages on and stops holding.
func (p *holdState) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holding {
		p.holding = false
		close(p.released)
	}
}

// ServerAheadErrors returns the ServerAheadError exits passed to clients.
func (p *holdState) ServerAheadErrors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.serverAhead...)
}

// passedServerAhead records a ServerAheadError answer passed to a client and
// releases what is held.
func (p *holdState) passedServerAhead(exit string) {
	p.mu.Lock()
	p.serverAhead = append(p.serverAhead, exit)
	p.mu.Unlock()
	p.Release()
}

// state reports whether pages are held, and a channel closed when that ends
// (nil when not holding).
func (p *holdState) state() (bool, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.holding {
		return false, nil
	}
	return true, p.released
}

const proxyReadLimit = 32 << 20

func (p *holdProxy) serve(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	up, resp, err := websocket.Dial(ctx, p.upstream+r.URL.RequestURI(), &websocket.DialOptions{HTTPHeader: http.Header{}})
	if err != nil {
		status := http.StatusBadGateway
		if resp != nil {
			status = resp.StatusCode
		}
		http.Error(w, "proxy: "+err.Error(), status)
		return
	}
	defer up.CloseNow()
	down, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer down.CloseNow()
	up.SetReadLimit(proxyReadLimit)
	down.SetReadLimit(proxyReadLimit)

	errc := make(chan error, 2)
	go func() { errc <- p.pipeUp(ctx, down, up) }()
	go func() { errc <- p.pipeDown(ctx, up, down) }()
	<-errc
	// One side ended: end the other like it ended (as far as a proxy can tell).
	cancel()
}

// pipeUp copies client messages to the server unchanged.
func (p *holdProxy) pipeUp(ctx context.Context, down, up *websocket.Conn) error {
	for {
		typ, b, err := down.Read(ctx)
		if err != nil {
			up.Close(websocket.StatusGoingAway, "client gone")
			return err
		}
		p.log.Debug("client→server", "msg", clip(string(b)))
		if err := up.Write(ctx, typ, b); err != nil {
			return err
		}
	}
}

type frame struct {
	typ  websocket.MessageType
	data []byte
}

// pipeDown copies server messages to the client, holding Chunks while the
// proxy holds.
func (p *holdProxy) pipeDown(ctx context.Context, up, down *websocket.Conn) error {
	frames := make(chan frame)
	readErr := make(chan error, 1)
	go func() {
		for {
			typ, b, err := up.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case frames <- frame{typ, b}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var queue []frame
	write := func(f frame) error {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return down.Write(wctx, f.typ, f.data)
	}
	for {
		holding, released := p.state()
		if !holding && len(queue) > 0 {
			for _, f := range queue {
				if err := write(f); err != nil {
					return err
				}
			}
			queue = nil
		}
		select {
		case f := <-frames:
			holding, _ = p.state() // Hold may have been called while waiting
			var msg struct {
				Tag  string `json:"_tag"`
				Exit struct {
					Cause struct {
						Error struct {
							Tag string `json:"_tag"`
						} `json:"error"`
					} `json:"cause"`
				} `json:"exit"`
			}
			_ = json.Unmarshal(f.data, &msg)
			p.log.Debug("server→client", "holding", holding, "queued", len(queue), "msg", clip(string(f.data)))
			switch {
			case msg.Tag == "Chunk" && (holding || len(queue) > 0):
				queue = append(queue, f)
				p.mu.Lock()
				p.held++
				p.mu.Unlock()
			case msg.Tag == "Exit" && msg.Exit.Cause.Error.Tag == "ServerAheadError":
				if err := write(f); err != nil {
					return err
				}
				p.passedServerAhead(string(f.data))
			default:
				if err := write(f); err != nil {
					return err
				}
			}
		case <-released:
		case err := <-readErr:
			var ce websocket.CloseError
			code, reason := websocket.StatusGoingAway, "server gone"
			if errors.As(err, &ce) && ce.Code != websocket.StatusNoStatusRcvd && ce.Code != websocket.StatusAbnormalClosure {
				code, reason = ce.Code, ce.Reason
			}
			for _, f := range queue {
				_ = write(f)
			}
			down.Close(code, reason)
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
