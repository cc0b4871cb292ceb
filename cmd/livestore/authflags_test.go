package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Public keys from a PEM file and from a JWKS URL, as serve's flags give them.
func TestAuthFlagsPublicKeys(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	point, err := key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks := fmt.Sprintf(`{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":%q,"y":%q}]}`, b64(point[1:33]), b64(point[33:]))
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(jwks))
	}))
	defer issuer.Close()

	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"exp": time.Now().Add(time.Hour).Unix(), "stores": "s", "iss": "idp", "aud": "sync",
	})
	tok.Header["kid"] = "k1"
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"--auth-public-key-file": {"--auth-public-key-file", pemFile},
		"--auth-jwks-url":        {"--auth-jwks-url", issuer.URL, "--auth-jwks-refresh", "1h"},
	} {
		t.Run(name, func(t *testing.T) {
			auth, err := buildAuth(t, append(args, "--auth-issuer", "idp", "--auth-audience", "sync")...)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := auth(context.Background(), "s", authPayload(signed), nil); err != nil {
				t.Fatalf("ES256 token refused: %v", err)
			}
		})
	}
	if _, err := buildAuth(t, "--auth-jwks-url", issuer.URL+"/", "--auth-jwks-refresh", "0s"); err == nil {
		t.Fatal("--auth-jwks-refresh 0s accepted")
	}
}
