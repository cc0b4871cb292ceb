package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"strings"
)

// deployFlags decide how far serve may be reached: which browser origins
// may open sync connections, where the admin surface (devtools and metrics)
// listens and who may use it, TLS, and whether a public address may run
// without authentication.
type deployFlags struct {
	allowedOrigins    string
	adminAddr         string
	adminTokenFile    string
	adminAllowedHosts string
	tlsCert           string
	tlsKey            string
	insecureNoAuth    bool

	// Set by prepare.
	originPatterns []string // nil: the loopback defaults or none, by listener
	adminHosts     []string
	adminToken     string
	tlsConfig      *tls.Config
}

// defaultAdminAddr is where the admin surface listens when the sync
// listener is public or authenticated and --admin-addr is not given.
const defaultAdminAddr = "127.0.0.1:8788"

func (d *deployFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.allowedOrigins, "allowed-origins", "", "comma-separated browser origins allowed to open sync connections, as host patterns (`localhost:*`, `*.example.com`, `https://app.example.com`, `*` for any); default: loopback origins on a loopback address, none otherwise (same-origin and non-browser clients are always allowed)")
	fs.StringVar(&d.adminAddr, "admin-addr", "", `address of the admin surface (devtools page and /metrics) on its own listener, or "off"; default: the sync listener when it is loopback without auth or with --admin-token-file, else `+defaultAdminAddr)
	fs.StringVar(&d.adminTokenFile, "admin-token-file", "", "file holding the token the admin surface requires (Authorization: Bearer TOKEN, or HTTP Basic with the token as password)")
	fs.StringVar(&d.adminAllowedHosts, "admin-allowed-hosts", "", "comma-separated host names (patterns) the admin surface answers besides localhost, 127.0.0.1 and [::1]; requests naming another Host get 403")
	fs.StringVar(&d.tlsCert, "tls-cert", "", "PEM certificate (chain) file; with --tls-key, serve wss:// and https://")
	fs.StringVar(&d.tlsKey, "tls-key", "", "PEM private key file of --tls-cert")
	fs.BoolVar(&d.insecureNoAuth, "insecure-no-auth", false, "allow a non-loopback address without authentication (anyone who reaches it can read and write every store)")
}

// prepare checks the flags and loads the files they name.
func (d *deployFlags) prepare() error {
	var err error
	if d.originPatterns, err = splitPatterns(d.allowedOrigins, "--allowed-origins"); err != nil {
		return err
	}
	if d.adminHosts, err = splitPatterns(d.adminAllowedHosts, "--admin-allowed-hosts"); err != nil {
		return err
	}
	if d.adminTokenFile != "" {
		b, err := os.ReadFile(d.adminTokenFile)
		if err != nil {
			return fmt.Errorf("read --admin-token-file: %w", err)
		}
		d.adminToken = strings.TrimSpace(string(b))
		if len(d.adminToken) < 16 {
			return fmt.Errorf("%w: --admin-token-file %s: the token must be at least 16 characters", errUsage, d.adminTokenFile)
		}
	}
	if (d.tlsCert == "") != (d.tlsKey == "") {
		return fmt.Errorf("%w: --tls-cert and --tls-key go together", errUsage)
	}
	if d.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(d.tlsCert, d.tlsKey)
		if err != nil {
			return fmt.Errorf("load TLS certificate %s and key %s: %w", d.tlsCert, d.tlsKey, err)
		}
		// HTTP/1.1 only: WebSocket upgrades need it.
		d.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	}
	return nil
}

// splitPatterns splits a comma-separated list of path.Match patterns and
// checks their syntax.
func splitPatterns(list, flagName string) ([]string, error) {
	var out []string
	for p := range strings.SplitSeq(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("%w: %s: pattern %q: %v (escape [ and ] as \\[ and \\])", errUsage, flagName, p, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// loopbackOrigins are the origins of apps served from this machine (a dev
// server such as http://localhost:5173), accepted by a loopback server.
var loopbackOrigins = []string{"localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*", `\[::1\]`, `\[::1\]:*`}

// origins returns the origin patterns for a sync listener.
func (d *deployFlags) origins(loopback bool) []string {
	if d.originPatterns != nil {
		return d.originPatterns
	}
	if loopback {
		return loopbackOrigins
	}
	return nil
}

// insecureStart returns the refusal of a public listener without auth.
func (d *deployFlags) insecureStart(addr net.Addr, loopback, authConfigured bool) error {
	if loopback || authConfigured || d.insecureNoAuth {
		return nil
	}
	return fmt.Errorf("refusing to serve on %s without authentication: anyone who reaches it could read and write every store. "+
		"Configure tokens (--auth-secret-file, --auth-public-key-file or --auth-jwks-url), listen on loopback (--addr 127.0.0.1:8787) "+
		"behind a proxy that authenticates, or pass --insecure-no-auth", addr)
}

// adminPlan says where the admin surface is served: not at all, on the
// sync listener, or on a listener of its own at addr.
type adminPlan struct {
	off      bool
	onMain   bool
	addr     string
	implicit bool   // addr is the default, not --admin-addr
	why      string // why the surface is off, if not asked for
}

// plan places the admin surface. On a loopback sync listener without auth
// it stays beside the sync endpoint, so that `make serve` needs no flags;
// once the sync listener is public or authenticated it moves to its own
// loopback listener unless a token protects it.
func (d *deployFlags) plan(syncLoopback, authConfigured bool) adminPlan {
	switch {
	case d.adminAddr == "off":
		return adminPlan{off: true}
	case d.adminAddr != "":
		return adminPlan{addr: d.adminAddr}
	case d.adminToken != "" || (syncLoopback && !authConfigured):
		return adminPlan{onMain: true}
	default:
		return adminPlan{addr: defaultAdminAddr, implicit: true}
	}
}

// isLoopbackListener reports whether ln accepts only connections from this
// machine. The bound address decides, not the flag: "localhost:0" binds
// 127.0.0.1, ":8787" every interface.
func isLoopbackListener(ln net.Listener) bool {
	a, ok := ln.Addr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// hostName is the lower-case host of a Host header, without port, brackets
// or trailing dot.
func hostName(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// serveListeners are the sockets of serve: the sync listener and, when the
// admin surface has its own, the admin listener (TLS-wrapped if asked).
type serveListeners struct {
	sync, admin net.Listener
	loopback    bool // the sync listener accepts only this machine
	plan        adminPlan
	scheme      string // "ws" or "wss"
}

// listen opens the listeners after checking that what they expose is
// allowed. The bound address decides what is public, so it listens first;
// nothing is served before the checks pass.
func (d *deployFlags) listen(addr string, authConfigured bool) (*serveListeners, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	l := &serveListeners{sync: ln, loopback: isLoopbackListener(ln), scheme: "ws"}
	if err := d.insecureStart(ln.Addr(), l.loopback, authConfigured); err != nil {
		l.close()
		return nil, err
	}
	l.plan = d.plan(l.loopback, authConfigured)
	if l.plan.addr != "" {
		l.admin, err = net.Listen("tcp", l.plan.addr)
		switch {
		case err != nil && l.plan.implicit:
			// The sync service does not depend on its admin surface: a
			// default port in use (another serve, `livestore devtools`)
			// turns the surface off rather than the server.
			l.plan = adminPlan{off: true, why: fmt.Sprintf("%v; choose an address with --admin-addr", err)}
		case err != nil:
			l.close()
			return nil, fmt.Errorf("listen on admin address %s: %w (choose another with --admin-addr, or --admin-addr off)", l.plan.addr, err)
		}
	}
	if l.admin != nil {
		if !isLoopbackListener(l.admin) && d.adminToken == "" && !d.insecureNoAuth {
			l.close()
			return nil, fmt.Errorf("refusing to serve the admin surface on %s without --admin-token-file (or --insecure-no-auth)", l.admin.Addr())
		}
	}
	if d.tlsConfig != nil {
		l.scheme = "wss"
		l.sync = tls.NewListener(l.sync, d.tlsConfig)
		if l.admin != nil {
			l.admin = tls.NewListener(l.admin, d.tlsConfig)
		}
	}
	return l, nil
}

func (l *serveListeners) close() {
	_ = l.sync.Close()
	if l.admin != nil {
		_ = l.admin.Close()
	}
}

// announce prints where serve listens; the first line is what scripts wait
// for.
func (l *serveListeners) announce(w io.Writer, storage string, devtools bool) {
	fmt.Fprintf(w, "livestore sync server listening on %s://%s (storage: %s)\n", l.scheme, l.sync.Addr(), storage)
	web := strings.Replace(strings.Replace(l.scheme, "wss", "https", 1), "ws", "http", 1)
	switch {
	case l.plan.off && l.plan.why != "":
		fmt.Fprintf(w, "admin surface: off (%s)\n", l.plan.why)
	case l.plan.off:
		fmt.Fprintln(w, "admin surface: off")
	case l.plan.onMain && devtools:
		fmt.Fprintf(w, "devtools: %s://%s/_devtools/\n", web, l.sync.Addr())
	case l.plan.onMain:
		fmt.Fprintf(w, "metrics: %s://%s/metrics\n", web, l.sync.Addr())
	case devtools:
		fmt.Fprintf(w, "devtools: %s://%s/_devtools/ (metrics: /metrics there)\n", web, l.admin.Addr())
	default:
		fmt.Fprintf(w, "metrics: %s://%s/metrics\n", web, l.admin.Addr())
	}
}
