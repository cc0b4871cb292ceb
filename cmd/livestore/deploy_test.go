package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
)

// upgradeStatus sends a WebSocket upgrade for store "s" to the listener at
// dialAddr (host:port on loopback) with the given Host and Origin headers
// (none if empty) and returns the response's status and body.
func upgradeStatus(t *testing.T, dialAddr, host, origin string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", dialAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET /?storeId=s&transport=ws HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
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

// hostPort is the host:port of a ws://, wss:// or http:// address.
func hostPort(addr string) string {
	_, rest, _ := strings.Cut(addr, "://")
	hp, _, _ := strings.Cut(rest, "/")
	return hp
}

func TestServeOrigins(t *testing.T) {
	s := launchServe(t, "--data", t.TempDir(), "--log-level", "warn")
	hp := hostPort(s.addr)
	evilHost := "evil.example:" + strings.Split(hp, ":")[1]
	tests := []struct {
		name, host, origin string
		want               int
	}{
		{"no Origin (non-browser client)", hp, "", http.StatusSwitchingProtocols},
		{"dev server origin", hp, "http://localhost:5173", http.StatusSwitchingProtocols},
		{"loopback IP origin", hp, "http://127.0.0.1:3000", http.StatusSwitchingProtocols},
		{"IPv6 loopback origin", hp, "http://[::1]:3000", http.StatusSwitchingProtocols},
		{"same origin", hp, "http://" + hp, http.StatusSwitchingProtocols},
		{"foreign origin", hp, "https://evil.example", http.StatusForbidden},
		{"foreign origin with a loopback-like name", hp, "https://localhost.evil.example", http.StatusForbidden},
		{"opaque origin", hp, "null", http.StatusForbidden},
		{"DNS rebinding (same origin, foreign Host)", evilHost, "http://" + evilHost, http.StatusForbidden},
	}
	for _, tt := range tests {
		code, body := upgradeStatus(t, hp, tt.host, tt.origin)
		if code != tt.want {
			t.Errorf("%s: status %d %q, want %d", tt.name, code, body, tt.want)
		}
		if code == http.StatusForbidden && !strings.Contains(body, "--allowed-origins") {
			t.Errorf("%s: body %q does not name --allowed-origins", tt.name, body)
		}
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}

	// Given origins replace the loopback defaults.
	s = launchServe(t, "--data", t.TempDir(), "--log-level", "warn", "--allowed-origins", "https://app.example.com, *.example.org")
	hp = hostPort(s.addr)
	for origin, want := range map[string]int{
		"https://app.example.com":  http.StatusSwitchingProtocols,
		"http://app.example.com":   http.StatusForbidden,
		"https://a.example.org":    http.StatusSwitchingProtocols,
		"http://localhost:5173":    http.StatusForbidden,
		"https://evil.example":     http.StatusForbidden,
		"https://app.example.com.": http.StatusForbidden,
		"null":                     http.StatusForbidden,
	} {
		if code, body := upgradeStatus(t, hp, hp, origin); code != want {
			t.Errorf("--allowed-origins, Origin %s: status %d %q, want %d", origin, code, body, want)
		}
	}

	// "*" allows every origin, opaque ones too.
	s = launchServe(t, "--data", t.TempDir(), "--log-level", "warn", "--allowed-origins", "*")
	hp = hostPort(s.addr)
	for _, origin := range []string{"https://evil.example", "null", "http://localhost:5173"} {
		if code, body := upgradeStatus(t, hp, hp, origin); code != http.StatusSwitchingProtocols {
			t.Errorf("--allowed-origins '*', Origin %s: status %d %q", origin, code, body)
		}
	}
}

// On every interface (reached here through loopback only) no browser
// origin is allowed by default.
func TestServePublicOrigins(t *testing.T) {
	s := launchServe(t, "--addr", "0.0.0.0:0", "--insecure-no-auth", "--admin-addr", "off", "--data", t.TempDir(), "--log-level", "warn")
	_, port, _ := net.SplitHostPort(hostPort(s.addr))
	hp := net.JoinHostPort("127.0.0.1", port)
	for origin, want := range map[string]int{
		"":                      http.StatusSwitchingProtocols,
		"http://" + hp:          http.StatusSwitchingProtocols,
		"http://localhost:5173": http.StatusForbidden,
		"https://evil.example":  http.StatusForbidden,
	} {
		if code, body := upgradeStatus(t, hp, hp, origin); code != want {
			t.Errorf("Origin %q: status %d %q, want %d", origin, code, body, want)
		}
	}
}

func TestServeRefusesPublicWithoutAuth(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0"} {
		dir := t.TempDir()
		code, stdout, stderr := runCLI(t, "serve", "--addr", addr, "--data", dir)
		if code != 1 || !strings.Contains(stderr, "--insecure-no-auth") || !strings.Contains(stderr, "--auth-secret-file") || stdout != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", addr, code, stdout, stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "sync.db")); !os.IsNotExist(err) {
			t.Errorf("%s: storage opened before the refusal: %v", addr, err)
		}
	}
}

func TestServeCommandLineChecks(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"--tls-cert", "x.pem"}, 2, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-cert", filepath.Join(dir, "no.pem"), "--tls-key", filepath.Join(dir, "no.key")}, 1, "load TLS certificate"},
		{[]string{"--allowed-origins", "[::1]:*,a[b"}, 2, "escape [ and ]"},
		{[]string{"--admin-token-file", filepath.Join(dir, "none")}, 1, "read --admin-token-file"},
		{[]string{"--admin-token-file", short}, 2, "at least 16 characters"},
		{[]string{"--max-storage-bytes", "-1"}, 2, "--max-storage-bytes must not be negative"},
		{[]string{"--admin-addr", "0.0.0.0:0"}, 1, "without --admin-token-file"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCLI(t, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dir}, tt.args...)...)
		if code != tt.code || !strings.Contains(stdout+stderr, tt.out) {
			t.Errorf("%v: exit %d, output %q; want %d containing %q", tt.args, code, stdout+stderr, tt.code, tt.out)
		}
	}
}

// The default admin address taken (here by the test, or by whoever has it)
// turns the admin surface off, not the server; an address asked for is
// an error.
func TestServeAdminDefaultAddrInUse(t *testing.T) {
	if ln, err := net.Listen("tcp", defaultAdminAddr); err == nil {
		defer ln.Close()
	}
	s := launchServe(t, "--addr", "0.0.0.0:0", "--insecure-no-auth", "--data", t.TempDir(), "--log-level", "warn")
	if line := s.nextLine(t); !strings.HasPrefix(line, "admin surface: off (") || !strings.Contains(line, "--admin-addr") {
		t.Errorf("second line %q", line)
	}
	_, port, _ := net.SplitHostPort(hostPort(s.addr))
	if code, _ := get(t, "http://127.0.0.1:"+port+"/metrics", ""); code != http.StatusNotFound {
		t.Errorf("/metrics on the sync listener: %d", code)
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	code, _, stderr := runCLI(t, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--admin-addr", defaultAdminAddr)
	if code != 1 || !strings.Contains(stderr, "listen on admin address") {
		t.Errorf("--admin-addr in use: exit %d, %s", code, stderr)
	}
}

func TestAdminPlan(t *testing.T) {
	tests := []struct {
		adminAddr, token string
		loopback, authOn bool
		want             adminPlan
	}{
		{"", "", true, false, adminPlan{onMain: true}},
		{"", "", true, true, adminPlan{addr: defaultAdminAddr, implicit: true}},
		{"", "", false, true, adminPlan{addr: defaultAdminAddr, implicit: true}},
		{"", "", false, false, adminPlan{addr: defaultAdminAddr, implicit: true}},
		{"", "0123456789abcdef", false, true, adminPlan{onMain: true}},
		{"127.0.0.1:9000", "", true, false, adminPlan{addr: "127.0.0.1:9000"}},
		{"off", "", true, false, adminPlan{off: true}},
	}
	for _, tt := range tests {
		d := deployFlags{adminAddr: tt.adminAddr, adminToken: tt.token}
		if got := d.plan(tt.loopback, tt.authOn); got != tt.want {
			t.Errorf("%+v: plan %+v, want %+v", tt, got, tt.want)
		}
	}
}

// get sends GET url with the given Host header (the URL's if empty) and
// extra headers, returning status and body.
func get(t *testing.T, url, host string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeAdminOnSyncListener(t *testing.T) {
	s := launchServe(t, "--data", t.TempDir(), "--log-level", "warn")
	base := "http://" + hostPort(s.addr)
	if line := s.nextLine(t); line != "devtools: "+base+"/_devtools/" {
		t.Errorf("second line %q", line)
	}
	exerciseServer(t, s.addr)
	if code, body := get(t, base+"/_devtools/api/stores", ""); code != 200 || !strings.Contains(body, `"cli"`) {
		t.Errorf("devtools API on loopback: %d %.200s", code, body)
	}
	if code, body := get(t, base+"/metrics", "localhost:8787"); code != 200 || !strings.Contains(body, "livestore_sync_pushes_total") {
		t.Errorf("metrics on loopback: %d %.200s", code, body)
	}
	// A page whose DNS name was rebound to 127.0.0.1 names its own host.
	for _, path := range []string{"/_devtools/api/stores", "/_devtools/", "/metrics", "/_devtools"} {
		code, body := get(t, base+path, "evil.example:8787")
		if code != http.StatusForbidden || strings.Contains(body, "cli") || strings.Contains(body, "livestore_sync") {
			t.Errorf("%s with a foreign Host: %d %.200s", path, code, body)
		}
	}
	// A proxy in front of a loopback server may rewrite Host to 127.0.0.1.
	for _, h := range []string{"X-Forwarded-For", "Forwarded", "Via"} {
		if code, body := get(t, base+"/_devtools/api/stores", "", h, "203.0.113.7"); code != http.StatusForbidden || strings.Contains(body, "cli") {
			t.Errorf("through a proxy (%s): %d %.200s", h, code, body)
		}
	}
	// Sync requests at /metrics still reach the sync endpoint.
	if code, body := get(t, base+"/metrics?storeId=x&transport=ws", ""); code != http.StatusUpgradeRequired {
		t.Errorf("sync request at /metrics: %d %q", code, body)
	}
}

func TestServeAdminSeparate(t *testing.T) {
	s := launchServe(t, "--data", t.TempDir(), "--log-level", "warn", "--admin-addr", "127.0.0.1:0")
	line := s.nextLine(t)
	if !strings.HasPrefix(line, "devtools: http://127.0.0.1:") {
		t.Fatalf("second line %q", line)
	}
	admin := "http://" + hostPort(strings.Fields(line)[1])
	base := "http://" + hostPort(s.addr)
	exerciseServer(t, s.addr)

	for _, path := range []string{"/_devtools/api/stores", "/_devtools/", "/metrics", "/_devtools/api/stores/cli/events"} {
		code, body := get(t, base+path, "")
		if code == 200 || strings.Contains(body, `"cli"`) || strings.Contains(body, "livestore_sync") {
			t.Errorf("sync listener %s: %d %.200s", path, code, body)
		}
	}
	if code, _ := get(t, base+"/metrics", ""); code != http.StatusNotFound {
		t.Errorf("sync listener /metrics: %d, want 404", code)
	}
	if code, body := get(t, base+"/metrics?storeId=x&transport=ws", ""); code != http.StatusUpgradeRequired {
		t.Errorf("sync request at /metrics: %d %q", code, body)
	}
	if code, body := get(t, admin+"/_devtools/api/stores", ""); code != 200 || !strings.Contains(body, `"cli"`) {
		t.Errorf("admin listener devtools API: %d %.200s", code, body)
	}
	if code, body := get(t, admin+"/metrics?storeId=x&transport=ws", ""); code != 200 || !strings.Contains(body, "livestore_sync_pushes_total") {
		t.Errorf("admin listener metrics: %d %.200s", code, body)
	}
	if code, body := get(t, admin+"/_devtools/api/stores", "evil.example"); code != http.StatusForbidden || strings.Contains(body, "cli") {
		t.Errorf("admin listener, foreign Host: %d %.200s", code, body)
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}

	// Allowed hosts open the admin surface to a name; others stay out.
	s = launchServe(t, "--data", t.TempDir(), "--log-level", "warn", "--admin-addr", "127.0.0.1:0", "--admin-allowed-hosts", "admin.internal")
	admin = "http://" + hostPort(strings.Fields(s.nextLine(t))[1])
	if code, _ := get(t, admin+"/metrics", "admin.internal:443"); code != 200 {
		t.Errorf("allowed host: %d", code)
	}
	if code, _ := get(t, admin+"/metrics", "other.internal"); code != http.StatusForbidden {
		t.Errorf("other host: %d", code)
	}
}

func TestServeAdminToken(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	const token = "s3cret-admin-token-0123456789"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := launchServe(t, "--data", t.TempDir(), "--log-level", "warn", "--admin-token-file", tokenFile)
	base := "http://" + hostPort(s.addr)
	exerciseServer(t, s.addr)
	tests := []struct {
		name   string
		header []string
		want   int
	}{
		{"no token", nil, http.StatusUnauthorized},
		{"wrong token", []string{"Authorization", "Bearer nope"}, http.StatusUnauthorized},
		{"token as Bearer", []string{"Authorization", "Bearer " + token}, http.StatusOK},
		{"token as Basic password", []string{"Authorization", "Basic " + basic("admin", token)}, http.StatusOK},
	}
	for _, tt := range tests {
		for _, path := range []string{"/_devtools/api/stores", "/metrics"} {
			code, body := get(t, base+path, "", tt.header...)
			if code != tt.want {
				t.Errorf("%s %s: %d %.100s, want %d", tt.name, path, code, body, tt.want)
			}
			if code != 200 && (strings.Contains(body, "cli") || strings.Contains(body, "livestore_sync")) {
				t.Errorf("%s %s: data in a refusal: %.200s", tt.name, path, body)
			}
		}
	}
	// The token does not lift the Host check.
	if code, _ := get(t, base+"/metrics", "evil.example", "Authorization", "Bearer "+token); code != http.StatusForbidden {
		t.Errorf("foreign Host with token: %d", code)
	}
}

func basic(user, pw string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	req.SetBasicAuth(user, pw)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// writeTestCert writes a self-signed certificate for 127.0.0.1 and its key
// and returns their paths and a pool trusting it.
func writeTestCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "livestore test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestServeTLS(t *testing.T) {
	certFile, keyFile, pool := writeTestCert(t)
	s := launchServe(t, "--data", t.TempDir(), "--log-level", "warn", "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(s.addr, "wss://127.0.0.1:") {
		t.Fatalf("address %q", s.addr)
	}
	if line := s.nextLine(t); !strings.HasPrefix(line, "devtools: https://127.0.0.1:") {
		t.Errorf("second line %q", line)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + hostPort(s.addr) + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("health over TLS: %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := syncclient.Dial(ctx, s.addr, syncclient.Options{StoreID: "tls", HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Push(ctx, []syncproto.Event{{Name: "v1.A", Args: []byte(`{}`), SeqNum: 1, ClientID: "c", SessionID: "s"}}, nil); err != nil {
		t.Fatalf("push over wss: %v", err)
	}
	// Plain HTTP on the TLS port gets nothing.
	if resp, err := http.Get("http://" + hostPort(s.addr) + "/health"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if bytes.Contains(b, []byte(`"ok"`)) {
			t.Errorf("plain HTTP served: %d %s", resp.StatusCode, b)
		}
	}
}
