package jwtauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/livestore-go/livestore/jwtauth"
)

// issuer serves a JWK Set on loopback that the test can replace.
type issuer struct {
	srv     *httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	set     []byte
}

func newIssuer(t *testing.T, keys ...map[string]string) *issuer {
	t.Helper()
	is := &issuer{}
	is.publish(t, keys...)
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.fetches.Add(1)
		is.mu.Lock()
		body := is.set
		is.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) publish(t *testing.T, keys ...map[string]string) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	is.mu.Lock()
	is.set = b
	is.mu.Unlock()
}

func TestJWKSRotation(t *testing.T) {
	k1, k2 := rsaKeys()[0], rsaKeys()[1]
	is := newIssuer(t, jwkOf(t, "k1", &k1.PublicKey))
	clk := &clock{t: epoch}
	v := newVerifier(t, jwtauth.Config{JWKSURL: is.srv.URL, JWKSMinRefetch: time.Minute, Now: clk.Now})
	if n := is.fetches.Load(); n != 1 {
		t.Fatalf("New fetched %d times, want 1", n)
	}
	authorize := func(tok string) error {
		_, err := v.Authorize(context.Background(), "todos", payload(tok), nil)
		return err
	}
	old := sign(t, jwt.SigningMethodRS256, k1, "k1", claims("todos", nil))
	rotated := sign(t, jwt.SigningMethodRS256, k2, "k2", claims("todos", nil))
	if err := authorize(old); err != nil {
		t.Fatalf("token of k1: %v", err)
	}

	is.publish(t, jwkOf(t, "k2", &k2.PublicKey))
	// Within JWKSMinRefetch of the last fetch, an unknown kid costs no fetch.
	clk.Add(30 * time.Second)
	wantRefused(t, authorize(rotated), 401, "unknown signing key", rotated)
	if n := is.fetches.Load(); n != 1 {
		t.Fatalf("fetches = %d within the refetch interval, want 1", n)
	}
	// Once it has passed, the unknown kid triggers one fetch, which finds k2.
	clk.Add(31 * time.Second)
	if err := authorize(rotated); err != nil {
		t.Fatalf("token of rotated key k2: %v", err)
	}
	if n := is.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d after the rotation, want 2", n)
	}
	// k1 is gone from the set; its tokens fail and cause no fetch so soon.
	wantRefused(t, authorize(old), 401, "unknown signing key", old)
	if n := is.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}
	// A token claiming k2 but signed by k1 is a bad signature, not a new key.
	forged := sign(t, jwt.SigningMethodRS256, k1, "k2", claims("todos", nil))
	wantRefused(t, authorize(forged), 401, "token signature is invalid", forged)
}

func TestJWKSKeyTypesAndConfusion(t *testing.T) {
	ec := newECKey(t)
	rsaKey := jwkOf(t, "r", &rsaKeys()[0].PublicKey)
	rsaKey["alg"] = "RS256"
	is := newIssuer(t, rsaKey, jwkOf(t, "e", &ec.PublicKey),
		map[string]string{"kty": "oct", "kid": "s", "k": b64(secret)}, // symmetric: must be skipped
		map[string]string{"kty": "RSA", "kid": "enc", "use": "enc", "n": rsaKey["n"], "e": rsaKey["e"]})
	v := newVerifier(t, jwtauth.Config{JWKSURL: is.srv.URL, Now: func() time.Time { return epoch }})
	for _, tok := range []string{
		sign(t, jwt.SigningMethodRS256, rsaKeys()[0], "r", claims("todos", nil)),
		sign(t, jwt.SigningMethodES256, ec, "e", claims("todos", nil)),
		sign(t, jwt.SigningMethodES256, ec, "", claims("todos", nil)), // no kid: every ES256 key is tried
	} {
		if _, err := v.Authorize(context.Background(), "todos", payload(tok), nil); err != nil {
			t.Fatalf("valid token refused: %v", err)
		}
	}
	refused := map[string]struct{ tok, reason string }{
		// The JWK declares RS256; PS256 with the same key is not accepted.
		"alg other than the JWK's": {sign(t, jwt.SigningMethodPS256, rsaKeys()[0], "r", claims("todos", nil)), "unknown signing key"},
		"HS256 with the RSA key":   {sign(t, jwt.SigningMethodHS256, pemPublic(t, &rsaKeys()[0].PublicKey), "r", claims("todos", nil)), `token algorithm "HS256" is not accepted`},
		"HS256 with the oct key":   {sign(t, jwt.SigningMethodHS256, secret, "s", claims("todos", nil)), `token algorithm "HS256" is not accepted`},
		"none":                     {sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "r", claims("todos", nil)), `token algorithm "none" is not accepted`},
	}
	for name, c := range refused {
		t.Run(name, func(t *testing.T) {
			_, err := v.Authorize(context.Background(), "todos", payload(c.tok), nil)
			wantRefused(t, err, 401, c.reason, c.tok)
		})
	}
}

func TestJWKSPeriodicRefresh(t *testing.T) {
	is := newIssuer(t, jwkOf(t, "k1", &rsaKeys()[0].PublicKey))
	v, err := jwtauth.New(context.Background(), jwtauth.Config{JWKSURL: is.srv.URL, JWKSRefresh: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for is.fetches.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("fetches = %d after 10 s of 5 ms refreshes", is.fetches.Load())
		}
		time.Sleep(time.Millisecond)
	}
	v.Close() // goleak in TestMain checks the refresh goroutine is gone
}

func TestJWKSNewFails(t *testing.T) {
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/empty" {
			_, _ = w.Write([]byte(`{"keys":[]}`))
			return
		}
		http.Error(w, "nope", http.StatusNotFound)
	}))
	defer bad.Close()
	for path, want := range map[string]string{"/missing": "HTTP status 404", "/empty": "no usable signing key"} {
		_, err := jwtauth.New(context.Background(), jwtauth.Config{JWKSURL: bad.URL + path})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", path, err, want)
		}
	}
}
