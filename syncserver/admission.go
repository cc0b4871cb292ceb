package syncserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// grant is what admitSync grants a sync request.
type grant struct {
	access Access
	hub    *hub
	done   func() // to call when the connection or request ends
}

// admitSync applies the checks every sync request passes before it is
// served, whatever its transport: shutdown, Origin, the server's connection
// limit (MaxConnections), Auth and the store's (MaxConnectionsPerStore).
// When it refuses, it answers the request and ok is false.
func (s *Server) admitSync(w http.ResponseWriter, r *http.Request, storeID string, payload json.RawMessage) (g grant, ok bool) {
	if s.closing.Load() {
		refuse(w, r, "server is shutting down", http.StatusServiceUnavailable)
		return grant{}, false
	}
	if err := s.checkOrigin(r); err != nil {
		s.metrics.refused.WithLabelValues(refusedOrigin).Inc()
		s.log.Warn("connection refused: origin not allowed", "store", storeID, "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"))
		refuse(w, r, err.Error(), http.StatusForbidden)
		return grant{}, false
	}
	if !s.admit() {
		s.metrics.refused.WithLabelValues(refusedConnLimit).Inc()
		s.log.Warn("connection refused: server connection limit reached", "store", storeID, "remote", r.RemoteAddr, "limit", s.opts.MaxConnections)
		refuse(w, r, fmt.Sprintf("server connection limit (%d) reached", s.opts.MaxConnections), http.StatusServiceUnavailable)
		return grant{}, false
	}
	access, ok := s.authorize(w, r, storeID, payload)
	if !ok {
		s.open.Add(-1)
		return grant{}, false
	}
	h, err := s.acquireHub(storeID)
	if err != nil {
		s.open.Add(-1)
		s.metrics.refused.WithLabelValues(refusedStoreLimit).Inc()
		refuse(w, r, err.Error(), http.StatusTooManyRequests)
		return grant{}, false
	}
	return grant{access: access, hub: h, done: func() {
		s.releaseHub(h)
		s.open.Add(-1)
	}}, true
}

// admit counts one more connection under MaxConnections; false if the
// server is full. The caller undoes it with s.open.Add(-1).
func (s *Server) admit() bool {
	if s.open.Add(1) > int64(s.opts.MaxConnections) {
		s.open.Add(-1)
		return false
	}
	return true
}

// authorize runs the AuthFunc, if any. When it refuses, authorize answers
// the request and logs one line; ok is then false.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, storeID string, payload json.RawMessage) (access Access, ok bool) {
	if s.opts.Auth == nil {
		return Access{}, true
	}
	access, err := s.callAuth(r, storeID, payload)
	var ap *authPanic
	if errors.As(err, &ap) {
		s.metrics.refused.WithLabelValues(refusedAuth).Inc()
		s.log.Error("connection refused: auth function panicked", "store", storeID, "remote", r.RemoteAddr, "panic", err)
		refuse(w, r, "unauthorized: credentials could not be checked", http.StatusInternalServerError)
		return Access{}, false
	}
	if err == nil && !access.Expires.IsZero() && !access.Expires.After(time.Now()) {
		err = &AuthError{Status: http.StatusUnauthorized, Reason: "credentials expired"}
	}
	if err == nil {
		return access, true
	}
	status, reason := http.StatusUnauthorized, err.Error()
	var ae *AuthError
	if errors.As(err, &ae) {
		reason = ae.Reason
		if ae.Status >= 400 && ae.Status <= 599 {
			status = ae.Status
		}
	}
	s.metrics.refused.WithLabelValues(refusedAuth).Inc()
	s.log.Info("connection refused by auth", "store", storeID, "remote", r.RemoteAddr, "status", status, "reason", reason)
	refuse(w, r, "unauthorized: "+reason, status)
	return Access{}, false
}

// authPanic is the error of an AuthFunc that panicked.
type authPanic struct{ value any }

func (e *authPanic) Error() string { return fmt.Sprint(e.value) }

// callAuth calls the AuthFunc. A panic in it is an application bug, but
// one a request can trigger: it refuses the request instead of reaching
// net/http, which would log a stack trace and drop the connection.
func (s *Server) callAuth(r *http.Request, storeID string, payload json.RawMessage) (access Access, err error) {
	defer func() {
		if p := recover(); p != nil {
			access, err = Access{}, &authPanic{p}
		}
	}()
	return s.opts.Auth(r.Context(), storeID, payload, r.Header)
}

// checkOrigin applies the origin rule of [Options].OriginPatterns: no
// Origin header (a non-browser client), an origin matching a pattern, or the
// request's own origin passes, except that on a loopback address the Host
// must then name loopback. websocket.Accept checks again, with its rule,
// which lets through everything this one does; checking first lets the
// server log and count the refusal, and refuse DNS rebinding.
func (s *Server) checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil {
		return s.originRefusal(fmt.Sprintf("origin %q is not allowed: not a URL", origin))
	}
	for _, p := range s.opts.OriginPatterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, err := path.Match(strings.ToLower(p), strings.ToLower(target)); err == nil && ok {
			return nil
		}
	}
	// An opaque origin ("null": a sandboxed frame, a file) has no host and
	// is never the server's own.
	if u.Host != "" && strings.EqualFold(u.Host, r.Host) && (!reachedOnLoopback(r) || IsLoopbackHost(r.Host)) {
		return nil
	}
	return s.originRefusal(fmt.Sprintf("origin %q is not allowed by this server", origin))
}

func (s *Server) originRefusal(msg string) error {
	if hint := s.opts.OriginRefusalHint; hint != "" {
		msg += " (" + hint + ")"
	}
	return errors.New(msg)
}

// reachedOnLoopback reports whether r came in on a loopback address of this
// machine.
func reachedOnLoopback(r *http.Request) bool {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// IsLoopbackHost reports whether a Host header (with or without port) names
// this machine's loopback interface: localhost, a name under .localhost, or
// a loopback IP address.
func IsLoopbackHost(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// refuse answers r with status and msg, before its body has been read. A
// request with a body gets its connection closed after the answer: net/http
// would otherwise first read and discard what is left of the body (up to
// 256 KiB), so that a client sending it slowly would hold the refusal, and
// its place on the server, for as long as it liked.
func refuse(w http.ResponseWriter, r *http.Request, msg string, status int) {
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
	http.Error(w, msg, status)
}
