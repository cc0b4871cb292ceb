package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/livestore-go/livestore/devtools"
	"github.com/livestore-go/livestore/syncserver"
)

// adminGate guards the admin surface (devtools page, its API, metrics). It
// answers only requests addressed to loopback or to an allowed host name,
// so that a web page whose DNS name was rebound to this machine gets
// nothing, and, with a token, only requests that present it. Sync clients'
// credentials never open it: the token is its own.
type adminGate struct {
	next  http.Handler
	hosts []string // patterns besides loopback
	token [sha256.Size]byte
	hasTk bool
	// proxied refuses requests that came through a proxy: beside a sync
	// endpoint on loopback, they come from wherever the proxy serves, and
	// a proxy may well have rewritten Host to 127.0.0.1.
	proxied bool
}

func newAdminGate(next http.Handler, hosts []string, token string) *adminGate {
	g := &adminGate{next: next, hosts: hosts}
	if token != "" {
		g.token, g.hasTk = sha256.Sum256([]byte(token)), true
	}
	return g
}

func (g *adminGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.hostAllowed(r.Host) {
		http.Error(w, fmt.Sprintf("forbidden: the admin surface does not answer host %q (see --admin-allowed-hosts)", hostName(r.Host)), http.StatusForbidden)
		return
	}
	if g.proxied && viaProxy(r.Header) {
		http.Error(w, "forbidden: the admin surface is not served through a proxy; use --admin-addr", http.StatusForbidden)
		return
	}
	if g.hasTk && !g.authorized(r) {
		// Basic lets a browser ask for the token and send it with the
		// page's API requests.
		w.Header().Set("WWW-Authenticate", `Basic realm="livestore admin", charset="UTF-8"`)
		http.Error(w, "unauthorized: the admin surface needs the admin token (Authorization: Bearer TOKEN)", http.StatusUnauthorized)
		return
	}
	g.next.ServeHTTP(w, r)
}

// viaProxy reports whether a request carries the headers proxies add.
func viaProxy(h http.Header) bool {
	for _, k := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "Via"} {
		if h.Get(k) != "" {
			return true
		}
	}
	return false
}

func (g *adminGate) hostAllowed(hostport string) bool {
	if syncserver.IsLoopbackHost(hostport) {
		return true
	}
	h := hostName(hostport)
	for _, p := range g.hosts {
		if ok, _ := path.Match(strings.ToLower(p), h); ok {
			return true
		}
	}
	return false
}

func (g *adminGate) authorized(r *http.Request) bool {
	var got string
	auth := r.Header.Get("Authorization")
	if scheme, rest, ok := strings.Cut(auth, " "); ok && strings.EqualFold(scheme, "Bearer") {
		got = strings.TrimSpace(rest)
	} else if _, pw, ok := r.BasicAuth(); ok {
		got = pw
	} else {
		return false
	}
	// Hashing first makes the comparison's time independent of the length.
	sum := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(sum[:], g.token[:]) == 1
}

// adminRoutes adds the admin surface's routes to mux: the devtools page
// under /_devtools/ (unless dt is nil) and the server's metrics at /metrics.
func adminRoutes(mux *http.ServeMux, srv *syncserver.Server, storage syncserver.Storage, dt *devtools.Options) error {
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		// Only the path reaches the sync server, so that no query turns
		// a metrics request into a sync connection.
		r2 := r.Clone(r.Context())
		r2.URL.RawQuery = ""
		srv.ServeHTTP(w, r2)
	})
	if dt == nil {
		return nil
	}
	src, ok := storage.(devtools.Source)
	if !ok {
		return fmt.Errorf("devtools: storage %T cannot list its stores", storage)
	}
	mux.Handle("/_devtools/", http.StripPrefix("/_devtools", devtools.ServerHandler(devtools.WithStats(src, srv.StoreStats), *dt)))
	mux.Handle("/_devtools", http.RedirectHandler("/_devtools/", http.StatusMovedPermanently))
	return nil
}

// metricsRoute routes /metrics on a sync listener: sync requests (storeId
// and transport, which the reference accepts at any path) go to the sync
// endpoint, everything else to rest (the admin surface, or not found when
// the admin surface is elsewhere).
func metricsRoute(sync, rest http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Has("storeId") && q.Has("transport") {
			sync.ServeHTTP(w, r)
			return
		}
		rest.ServeHTTP(w, r)
	})
}

// handlers returns the handler of the sync listener and, when the admin
// surface has a listener of its own, that listener's handler. dt configures
// the devtools page; nil leaves it out. The sync server itself refuses
// browser origins that may not connect (its OriginPatterns, see serve).
func (d *deployFlags) handlers(srv *syncserver.Server, storage syncserver.Storage, lns *serveListeners, dt *devtools.Options) (main, admin http.Handler, err error) {
	admin = http.NotFoundHandler()
	if !lns.plan.off {
		amux := http.NewServeMux()
		if err := adminRoutes(amux, srv, storage, dt); err != nil {
			return nil, nil, err
		}
		if dt != nil {
			amux.Handle("GET /{$}", http.RedirectHandler("/_devtools/", http.StatusFound))
		}
		gate := newAdminGate(amux, d.adminHosts, d.adminToken)
		gate.proxied = lns.plan.onMain && d.adminToken == ""
		admin = gate
	}
	mux := http.NewServeMux()
	mux.Handle("/", srv)
	if !lns.plan.onMain {
		mux.Handle("/metrics", metricsRoute(srv, http.NotFoundHandler()))
		return mux, admin, nil
	}
	mux.Handle("/metrics", metricsRoute(srv, admin))
	mux.Handle("/_devtools/", admin)
	mux.Handle("/_devtools", admin)
	return mux, nil, nil
}
