package jwtauth_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/livestore-go/livestore/syncserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// epoch is the fixed time of the tests' clocks.
var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var secret = []byte("0123456789abcdef0123456789abcdef-test-secret")

// rsaKeys are generated once: 2048-bit generation costs a noticeable part
// of a second under the race detector.
var rsaKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
	var ks [2]*rsa.PrivateKey
	for i := range ks {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		ks[i] = k
	}
	return ks
})

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// sign returns a token of claims signed by method with key; kid, if not
// empty, goes into the header.
func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// claims returns valid claims for stores at epoch, with extra merged in
// (a nil value deletes a claim).
func claims(stores any, extra jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{"iat": epoch.Unix(), "exp": epoch.Add(time.Hour).Unix(), "stores": stores}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// payload is the sync payload a LiveStore app sends.
func payload(token string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"authToken": token})
	return b
}

// wantRefused checks that err is an AuthError with status whose reason
// contains want and none of the secret material.
func wantRefused(t *testing.T, err error, status int, want string, secrets ...string) {
	t.Helper()
	var ae *syncserver.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v (%T), want *syncserver.AuthError", err, err)
	}
	if ae.Status != status || !strings.Contains(ae.Reason, want) {
		t.Fatalf("refused with %d %q, want %d containing %q", ae.Status, ae.Reason, status, want)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(ae.Reason, s) {
			t.Fatalf("reason %q contains secret material", ae.Reason)
		}
	}
}

func pemPublic(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwkOf returns the JWK of a public key.
func jwkOf(t *testing.T, kid string, pub any) map[string]string {
	t.Helper()
	switch p := pub.(type) {
	case *rsa.PublicKey:
		e := big(p.E)
		return map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "n": b64(p.N.Bytes()), "e": b64(e)}
	case *ecdsa.PublicKey:
		raw, err := p.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		size := (len(raw) - 1) / 2
		return map[string]string{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(raw[1 : 1+size]), "y": b64(raw[1+size:])}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(p)}
	}
	t.Fatalf("no JWK for %T", pub)
	return nil
}

func big(e int) []byte {
	var b []byte
	for ; e > 0; e >>= 8 {
		b = append([]byte{byte(e)}, b...)
	}
	return b
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// header returns an http.Header with one Authorization value.
func header(v string) http.Header {
	h := http.Header{}
	h.Set("Authorization", v)
	return h
}

// jwtauthMarshalPKCS8 returns the PEM of a private key.
func jwtauthMarshalPKCS8(t *testing.T, k any) ([]byte, error) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
