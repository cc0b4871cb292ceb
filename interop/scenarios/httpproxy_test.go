package scenarios

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/livestore-go/livestore/syncproto"
)

// httpHoldProxy is holdProxy for the HTTP transport: while it holds, pull
// requests wait at the proxy (a client learns of no new events, so its next
// push is based on a stale head); every other request passes at once. On
// the first ServerAheadError it passes to a client it releases the pulls, in
// the order they came, as if they had merely been slow.
type httpHoldProxy struct {
	holdState
	upstream string // http://host:port of the server
	hs       *httptest.Server
}

func newHTTPHoldProxy(t testing.TB, upstream string, hold bool) *httpHoldProxy {
	p := &httpHoldProxy{upstream: strings.TrimRight(upstream, "/")}
	p.hs = p.start(t, "HTTP proxy to "+upstream, hold, p.serve)
	return p
}

// URL is the proxy's base URL, for clients.
func (p *httpHoldProxy) URL() string { return p.hs.URL }

func (p *httpHoldProxy) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "proxy: "+err.Error(), http.StatusBadRequest)
		return
	}
	if bytes.Contains(body, []byte(`"tag":"`+syncproto.TagHTTPPull+`"`)) {
		if holding, released := p.state(); holding {
			p.mu.Lock()
			p.held++
			p.mu.Unlock()
			p.log.Debug("holding a pull", "msg", clip(string(body)))
			select {
			case <-released:
			case <-r.Context().Done():
				return
			}
		}
	}
	p.log.Debug("client→server", "msg", clip(string(body)))
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, "proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	for _, h := range []string{"Content-Type", "Authorization", "Origin"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, "proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, "proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	p.log.Debug("server→client", "status", resp.StatusCode, "msg", clip(string(answer)))
	var msgs []json.RawMessage
	_ = json.Unmarshal(answer, &msgs) // an answer is a JSON array of messages
	for _, m := range msgs {
		if bytes.Contains(m, []byte(`"_tag":"ServerAheadError"`)) {
			p.passedServerAhead(string(m))
		}
	}
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}
