package scenarios

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/livestore-go/livestore/internal/lockedbuf"
	"github.com/livestore-go/livestore/interop/harness"
	"github.com/livestore-go/livestore/jwtauth"
)

// multiRequest is one request to interop/js/multi-client.mjs.
type multiRequest struct {
	ID          string          `json:"id"`
	URL         string          `json:"url"`
	Store       string          `json:"store"`
	Commit      []string        `json:"commit,omitempty"`
	WaitRows    int             `json:"waitRows"`
	TimeoutMs   int             `json:"timeoutMs"`
	SyncPayload json.RawMessage `json:"syncPayload,omitempty"`
	Confirm     *bool           `json:"confirm,omitempty"`
	Later       *multiLater     `json:"later,omitempty"`
	HoldMs      int             `json:"holdMs,omitempty"`
}

// multiLater is a request's second batch of commits, made at AtMs (Unix ms).
type multiLater struct {
	AtMs   int64    `json:"atMs"`
	Commit []string `json:"commit"`
}

// multiAnswer is multi-client.mjs's answer to one request.
type multiAnswer struct {
	ID       string            `json:"id"`
	ClientID string            `json:"clientId"`
	Todos    []harness.TodoRow `json:"todos"`
	Error    string            `json:"error"`
	Ready    bool              `json:"ready"`
}

// multiClient is one Node process running multi-client.mjs, stopped when
// the test ends. It is returned once Node has loaded LiveStore, so that
// deadlines set afterwards (a token's expiry) do not include Node's boot.
type multiClient struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *lockedbuf.Buffer
	ready  chan struct{} // closed when the process greeted
	done   chan struct{} // closed when the process has exited
	err    error         // why it exited, valid after done
	nextID atomic.Int64

	mu      sync.Mutex
	waiters map[string]chan multiAnswer
}

func startMultiClient(t *testing.T) *multiClient {
	t.Helper()
	dir := harness.NPMInstalled(t)
	cmd := exec.Command("node", "js/multi-client.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	m := &multiClient{cmd: cmd, stderr: newLogBuffer(), ready: make(chan struct{}), done: make(chan struct{}), waiters: map[string]chan multiAnswer{}}
	cmd.Stderr = m.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if m.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node js/multi-client.mjs: %v", err)
	}
	go m.read(stdout)
	t.Cleanup(func() {
		// With stdin closed the process answers what it runs and exits.
		_ = m.stdin.Close()
		select {
		case <-m.done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-m.done
		}
		if t.Failed() {
			t.Logf("node multi-client stderr:\n%s", tailString(m.stderr.String(), 16<<10))
		}
	})
	select {
	case <-m.ready:
	case <-m.done:
		t.Fatalf("node multi-client exited before it was ready (%v)", m.err)
	case <-time.After(2 * time.Minute):
		t.Fatal("node multi-client not ready after 2 min")
	}
	return m
}

func (m *multiClient) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 1<<16), 64<<20)
	for sc.Scan() {
		var a multiAnswer
		if json.Unmarshal(sc.Bytes(), &a) != nil {
			continue
		}
		if a.Ready {
			close(m.ready)
			continue
		}
		m.mu.Lock()
		ch := m.waiters[a.ID]
		delete(m.waiters, a.ID)
		m.mu.Unlock()
		if ch != nil {
			ch <- a
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	m.err = m.cmd.Wait()
	close(m.done)
}

// run sends req and waits for its answer.
func (m *multiClient) run(ctx context.Context, req multiRequest) (multiAnswer, error) {
	req.ID = strconv.FormatInt(m.nextID.Add(1), 10)
	if req.TimeoutMs == 0 {
		req.TimeoutMs = 60_000
	}
	ch := make(chan multiAnswer, 1)
	line, err := json.Marshal(req)
	if err != nil {
		return multiAnswer{}, fmt.Errorf("encode request: %w", err)
	}
	m.mu.Lock() // also keeps lines from interleaving
	m.waiters[req.ID] = ch
	_, err = m.stdin.Write(append(line, '\n'))
	m.mu.Unlock()
	if err != nil {
		return multiAnswer{}, fmt.Errorf("node multi-client: write request: %w", err)
	}
	select {
	case a := <-ch:
		if a.Error != "" {
			return a, fmt.Errorf("node multi-client, store %s: %s", req.Store, a.Error)
		}
		return a, nil
	case <-m.done:
		return multiAnswer{}, fmt.Errorf("node multi-client exited (%v)", m.err)
	case <-ctx.Done():
		return multiAnswer{}, fmt.Errorf("node multi-client: no answer for store %s: %w", req.Store, ctx.Err())
	}
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// authPayload is the syncPayload {"authToken": token}.
func authPayload(t *testing.T, token string) json.RawMessage {
	t.Helper()
	return json.RawMessage(syncPayload(t, token))
}

func signToken(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s token: %v", method.Alg(), err)
	}
	return s
}

// jwksServer serves a JSON Web Key Set on loopback that the test can
// replace, as an identity provider rotating its keys does.
type jwksServer struct {
	mu   sync.Mutex
	body []byte
}

func (s *jwksServer) set(t *testing.T, keys map[string]*rsa.PublicKey) {
	t.Helper()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	for kid, pub := range keys {
		set.Keys = append(set.Keys, map[string]string{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
			"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.body = b
	s.mu.Unlock()
}

func (s *jwksServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	b := s.body
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// Every token case with the real @livestore/sync-cf 0.4.0 client passing
// its token in syncPayload, all clients in one Node process: accepted
// tokens sync; refused ones get nothing into the storage and the server
// records why; a pull-only token pulls but never pushes; a token expiring
// mid-connection is disconnected and what it commits afterwards never
// arrives; after a JWKS key rotation only the new key id is accepted.
func TestAuthCasesJSClient(t *testing.T) {
	harnessReady(t)
	timed(t)
	// The parallel subtests run after this function returns.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)

	const issuer, audience = "https://id.interop.test", "livestore-interop"
	secret := []byte("interop-secret-0123456789abcdef0123456789")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	oldKey, newKey := rsaKey, mustRSA(t)

	// HS256 with issuer and audience, and no leeway so that a token expiring
	// in seconds is disconnected when it expires.
	hs := startAuthServerConfig(t, jwtauth.Config{Secret: secret, Issuer: issuer, Audience: audience, Leeway: -1})
	// RSA public key: HS256 tokens must not verify against its PEM.
	rs := startAuthServerConfig(t, jwtauth.Config{PublicKeysPEM: rsaPEM})
	keySet := &jwksServer{}
	keySet.set(t, map[string]*rsa.PublicKey{"k1": &oldKey.PublicKey})
	jwksHTTP := httptest.NewServer(keySet)
	t.Cleanup(jwksHTTP.Close)
	jw := startAuthServerConfig(t, jwtauth.Config{JWKSURL: jwksHTTP.URL, JWKSMinRefetch: time.Millisecond})

	node := startMultiClient(t)

	claims := func(store string, mod func(jwt.MapClaims)) jwt.MapClaims {
		now := time.Now()
		c := jwt.MapClaims{"iss": issuer, "aud": audience, "iat": now.Unix(), "nbf": now.Unix(),
			"exp": now.Add(10 * time.Minute).Unix(), "stores": []string{store}}
		if mod != nil {
			mod(c)
		}
		return c
	}
	hsToken := func(store string, mod func(jwt.MapClaims)) json.RawMessage {
		return authPayload(t, signToken(t, jwt.SigningMethodHS256, secret, "", claims(store, mod)))
	}
	no := false

	// refusedCase runs a client whose every connection is refused: it
	// commits, keeps trying to sync for a while, and must leave nothing on
	// the server, which recorded the refusal.
	refusedCase := func(t *testing.T, srv *authServer, store string, payload json.RawMessage, want string) {
		_, err := node.run(ctx, multiRequest{URL: srv.url, Store: store, Commit: []string{"r-1", "r-2"},
			WaitRows: 2, SyncPayload: payload, Confirm: &no, HoldMs: 3000})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := srv.storage.Count(ctx, store, 0, 1<<62); err != nil || n != 0 {
			t.Errorf("%d events on the server (err %v), want none", n, err)
		}
		refusals := srv.refused(store)
		if len(refusals) == 0 {
			t.Fatalf("the server recorded no refusal, want %q", want)
		}
		for _, r := range refusals {
			if !strings.HasPrefix(r, want) {
				t.Errorf("refusal %q, want %q", r, want)
			}
		}
	}
	// acceptedCase runs a client that commits and waits until the server
	// lists its events.
	acceptedCase := func(t *testing.T, srv *authServer, store string, payload json.RawMessage, n int) {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("ok-%d", i)
		}
		res, err := node.run(ctx, multiRequest{URL: srv.url, Store: store, Commit: ids, WaitRows: n, SyncPayload: payload})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Todos) != n {
			t.Errorf("client has %d todos, want %d", len(res.Todos), n)
		}
		if head, err := srv.storage.Head(ctx, store); err != nil || head != int64(n) {
			t.Errorf("server head %d (err %v), want %d", head, err, n)
		}
		if r := srv.refused(store); len(r) != 0 {
			t.Errorf("valid token refused: %q", r)
		}
	}

	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		store := newStoreID("valid")
		acceptedCase(t, hs, store, hsToken(store, nil), 3)
	})
	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		store := newStoreID("expired")
		refusedCase(t, hs, store, hsToken(store, func(c jwt.MapClaims) {
			past := time.Now().Add(-time.Hour)
			c["iat"], c["nbf"], c["exp"] = past.Unix(), past.Unix(), past.Add(30*time.Minute).Unix()
		}), "401 token expired at ")
	})
	t.Run("not yet valid", func(t *testing.T) {
		t.Parallel()
		store := newStoreID("nbf")
		refusedCase(t, hs, store, hsToken(store, func(c jwt.MapClaims) {
			c["nbf"] = time.Now().Add(5 * time.Minute).Unix()
		}), "401 token not valid before ")
	})
	t.Run("wrong signature", func(t *testing.T) {
		t.Parallel()
		store := newStoreID("badsig")
		refusedCase(t, hs, store, authPayload(t, signToken(t, jwt.SigningMethodHS256,
			[]byte("not-the-server-secret-0123456789abcdef"), "", claims(store, nil))), "401 token signature is invalid")
	})
	t.Run("alg none", func(t *testing.T) {
		t.Parallel()
		store := newStoreID("none")
		refusedCase(t, hs, store, authPayload(t, signToken(t, jwt.SigningMethodNone,
			jwt.UnsafeAllowNoneSignatureType, "", claims(store, nil))), `401 token algorithm "none" is not accepted`)
	})
	t.Run("wrong issuer", func(t *testing.T) {
		t.Parallel()
		store := newStoreID("iss")
		refusedCase(t, hs, store, hsToken(store, func(c jwt.MapClaims) { c["iss"] = "https://evil.test" }),
			"401 token issuer is not accepted")
	})
	t.Run("wrong audience", func(t *testing.T) {
		t.Parallel()
		store := newStoreID("aud")
		refusedCase(t, hs, store, hsToken(store, func(c jwt.MapClaims) { c["aud"] = "another-service" }),
			"401 token audience is not accepted")
	})
	t.Run("another store", func(t *testing.T) {
		t.Parallel()
		store := newStoreID("other")
		refusedCase(t, hs, store, hsToken(newStoreID("other"), nil), `403 token not valid for store "`+store+`"`)
	})
	t.Run("HS256 with the RSA public key", func(t *testing.T) {
		t.Parallel()
		// The same server accepts the RSA key's own tokens.
		good := newStoreID("rs-ok")
		acceptedCase(t, rs, good, authPayload(t, signToken(t, jwt.SigningMethodRS256, rsaKey, "", claims(good, nil))), 1)
		store := newStoreID("confusion")
		refusedCase(t, rs, store, authPayload(t, signToken(t, jwt.SigningMethodHS256, rsaPEM, "", claims(store, nil))),
			`401 token algorithm "HS256" is not accepted`)
	})
	t.Run("pull-only", func(t *testing.T) {
		t.Parallel()
		store := newStoreID("pull")
		// Events the pull-only client must receive.
		if _, err := node.run(ctx, multiRequest{URL: hs.url, Store: store, Commit: []string{"seed-1", "seed-2", "seed-3"},
			WaitRows: 3, SyncPayload: hsToken(store, nil)}); err != nil {
			t.Fatal(err)
		}
		res, err := node.run(ctx, multiRequest{URL: hs.url, Store: store, Commit: []string{"pull-1"}, WaitRows: 4,
			SyncPayload: hsToken(store, func(c jwt.MapClaims) { c["scope"] = jwtauth.ScopePull }), Confirm: &no, HoldMs: 3000})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range res.Todos {
			ids = append(ids, r.ID)
		}
		if want := []string{"pull-1", "seed-1", "seed-2", "seed-3"}; !slices.Equal(ids, want) {
			t.Errorf("pull-only client has todos %q, want %q", ids, want)
		}
		if head, err := hs.storage.Head(ctx, store); err != nil || head != 3 {
			t.Errorf("server head %d (err %v), want 3: the pull-only client's commit reached the server", head, err)
		}
		if r := hs.refused(store); len(r) != 0 {
			t.Errorf("pull-only token refused: %q", r)
		}
	})
	t.Run("expires mid-connection", func(t *testing.T) {
		t.Parallel()
		store := newStoreID("expiring")
		exp := time.Now().Add(12 * time.Second).Truncate(time.Second)
		payload := hsToken(store, func(c jwt.MapClaims) { c["exp"] = exp.Unix() })
		// The first commit is confirmed on the server while the token is
		// valid; the second is made 1.5 s after it expired.
		res, err := node.run(ctx, multiRequest{URL: hs.url, Store: store, Commit: []string{"before"}, WaitRows: 1,
			SyncPayload: payload, Later: &multiLater{AtMs: exp.Add(1500 * time.Millisecond).UnixMilli(), Commit: []string{"after"}},
			HoldMs: 2500})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Todos) != 2 {
			t.Errorf("client has %d todos, want 2", len(res.Todos))
		}
		if head, err := hs.storage.Head(ctx, store); err != nil || head != 1 {
			t.Errorf("server head %d (err %v), want 1: only the commit made before expiry", head, err)
		}
		logged := false
		for _, line := range strings.Split(hs.log.String(), "\n") {
			if strings.Contains(line, `msg="credentials expired; disconnecting"`) && strings.Contains(line, "store="+store) {
				logged = true
			}
		}
		if !logged {
			t.Errorf("the server did not record disconnecting store %s for expired credentials", store)
		}
		// The client tried again with its expired token, and was refused.
		refusals := hs.refused(store)
		if len(refusals) == 0 {
			t.Errorf("no reconnection refused after the expiry")
		}
		for _, r := range refusals {
			if !strings.HasPrefix(r, "401 token expired at ") && r != "401 credentials expired" {
				t.Errorf("refusal %q, want the token's expiry", r)
			}
		}
	})
	t.Run("JWKS rotation", func(t *testing.T) {
		t.Parallel()
		before := newStoreID("jwks-before")
		oldToken := signToken(t, jwt.SigningMethodRS256, oldKey, "k1", claims(before, nil))
		// Before the rotation the old key id is accepted.
		if _, err := jw.verifier.Authorize(ctx, before, authPayload(t, oldToken), nil); err != nil {
			t.Fatalf("old key before rotation: %v", err)
		}
		keySet.set(t, map[string]*rsa.PublicKey{"k2": &newKey.PublicKey})
		// The new key id, unknown to the server, makes it fetch the set again.
		fresh := newStoreID("jwks-new")
		acceptedCase(t, jw, fresh, authPayload(t, signToken(t, jwt.SigningMethodRS256, newKey, "k2", claims(fresh, nil))), 2)
		stale := newStoreID("jwks-old")
		refusedCase(t, jw, stale, authPayload(t, signToken(t, jwt.SigningMethodRS256, oldKey, "k1", claims(stale, nil))),
			"401 unknown signing key")
	})
}

func mustRSA(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
