package jwtauth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/livestore-go/livestore/jwtauth"
	"github.com/livestore-go/livestore/syncserver"
)

func newVerifier(t *testing.T, cfg jwtauth.Config) *jwtauth.Verifier {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return epoch }
	}
	v, err := jwtauth.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

func TestAuthorizeHS256(t *testing.T) {
	v := newVerifier(t, jwtauth.Config{Secret: secret, Issuer: "https://issuer.test", Audience: "livestore"})
	good := jwt.MapClaims{"iss": "https://issuer.test", "aud": []string{"other", "livestore"}}
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, secret, "", c) }
	with := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{}
		for k, v := range good {
			c[k] = v
		}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims("todos", good))

	refused := []struct {
		name   string
		store  string
		token  string
		status int
		reason string
	}{
		{"expired", "todos", hs(claims("todos", with(jwt.MapClaims{"exp": epoch.Add(-time.Minute).Unix()}))),
			401, "token expired at 2026-03-01T11:59:00Z"},
		{"not yet valid", "todos", hs(claims("todos", with(jwt.MapClaims{"nbf": epoch.Add(time.Minute).Unix()}))),
			401, "token not valid before 2026-03-01T12:01:00Z"},
		{"no exp", "todos", hs(claims("todos", with(jwt.MapClaims{"exp": nil}))), 401, `token has no "exp" claim`},
		{"wrong signature", "todos", sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-thirty-two-bytes!!"), "", claims("todos", good)),
			401, "token signature is invalid"},
		{"alg none", "todos", none, 401, `token algorithm "none" is not accepted`},
		{"RS256 without RSA keys", "todos", sign(t, jwt.SigningMethodRS256, rsaKeys()[0], "", claims("todos", good)),
			401, `token algorithm "RS256" is not accepted`},
		{"wrong issuer", "todos", hs(claims("todos", with(jwt.MapClaims{"iss": "https://evil.test"}))), 401, "token issuer is not accepted"},
		{"no issuer", "todos", hs(claims("todos", with(jwt.MapClaims{"iss": nil}))), 401, `token has no "iss" claim`},
		{"no audience", "todos", hs(claims("todos", with(jwt.MapClaims{"aud": nil}))), 401, `token has no "aud" claim`},
		{"wrong audience", "todos", hs(claims("todos", with(jwt.MapClaims{"aud": "other"}))), 401, "token audience is not accepted"},
		{"malformed", "todos", "not.a.token", 401, "malformed token"},
		{"another store", "chat", hs(claims("todos", good)), 403, `token not valid for store "chat"`},
		{"another store in a list", "chat", hs(claims([]string{"todos", "notes"}, good)), 403, `token not valid for store "chat"`},
		{"prefix does not match", "teamx", hs(claims("team-*", good)), 403, `token not valid for store "teamx"`},
		{"no stores claim", "todos", hs(claims(nil, good)), 403, `token names no stores (claim "stores"`},
		{"stores claim not strings", "todos", hs(claims([]any{"todos", 7}, good)), 403, "token names no stores"},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Authorize(context.Background(), c.store, payload(c.token), nil)
			wantRefused(t, err, c.status, c.reason, c.token, string(secret))
		})
	}

	accepted := []struct {
		name     string
		store    string
		claims   jwt.MapClaims
		readOnly bool
	}{
		{"exact", "todos", claims("todos", good), false},
		{"one of a list", "notes", claims([]string{"todos", "notes"}, good), false},
		{"prefix", "team-42", claims("team-*", good), false},
		{"prefix in a list", "team-", claims([]string{"x", "team-*"}, good), false},
		{"everything", "anything", claims("*", good), false},
		{"expired within the leeway", "todos", claims("todos", with(jwt.MapClaims{"exp": epoch.Add(-20 * time.Second).Unix()})), false},
		{"pull-only scope", "todos", claims("todos", with(jwt.MapClaims{"scope": "openid livestore:pull"})), true},
		{"pull-only scope array", "todos", claims("todos", with(jwt.MapClaims{"scope": []string{"livestore:pull"}})), true},
		{"pull and push", "todos", claims("todos", with(jwt.MapClaims{"scope": "livestore:pull livestore:push"})), false},
	}
	for _, c := range accepted {
		t.Run(c.name, func(t *testing.T) {
			access, err := v.Authorize(context.Background(), c.store, payload(hs(c.claims)), nil)
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			exp := time.Unix(c.claims["exp"].(int64), 0)
			want := syncserver.Access{ReadOnly: c.readOnly, Expires: exp.Add(jwtauth.DefaultLeeway)}
			if access.ReadOnly != want.ReadOnly || !access.Expires.Equal(want.Expires) {
				t.Fatalf("access = %+v, want %+v", access, want)
			}
		})
	}
}

func TestAuthorizeTokenSources(t *testing.T) {
	v := newVerifier(t, jwtauth.Config{Secret: secret})
	tok := sign(t, jwt.SigningMethodHS256, secret, "", claims("todos", nil))
	other := sign(t, jwt.SigningMethodHS256, secret, "", claims("other", nil))
	ok := []struct {
		name    string
		payload json.RawMessage
		header  http.Header
	}{
		{"payload", payload(tok), nil},
		{"bearer header", nil, header("Bearer " + tok)},
		{"bearer header, lower case", nil, header("bearer " + tok)},
		{"payload without a token, then the header", json.RawMessage(`{"user":"me"}`), header("Bearer " + tok)},
		{"payload before the header", payload(tok), header("Bearer " + other)},
	}
	for _, c := range ok {
		t.Run(c.name, func(t *testing.T) {
			if _, err := v.Authorize(context.Background(), "todos", c.payload, c.header); err != nil {
				t.Fatalf("Authorize: %v", err)
			}
		})
	}
	bad := []struct {
		name    string
		payload json.RawMessage
		header  http.Header
		reason  string
	}{
		{"nothing", nil, nil, "no token"},
		{"empty payload object", json.RawMessage(`{}`), nil, "no token"},
		{"authToken not a string", json.RawMessage(`{"authToken":12}`), nil, "authToken in the sync payload is not a non-empty string"},
		{"basic auth", nil, header("Basic dXNlcjpwYXNz"), `authorization header is not "Bearer <token>"`},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Authorize(context.Background(), "todos", c.payload, c.header)
			wantRefused(t, err, 401, c.reason)
		})
	}
}

// An HS256 token whose "secret" is the RSA public key's PEM must not pass
// when RSA keys are configured, whether or not a secret is configured too.
func TestAlgorithmConfusion(t *testing.T) {
	pub := pemPublic(t, &rsaKeys()[0].PublicKey)
	forged := sign(t, jwt.SigningMethodHS256, pub, "", claims("todos", nil))
	rs := sign(t, jwt.SigningMethodRS256, rsaKeys()[0], "", claims("todos", nil))

	onlyRSA := newVerifier(t, jwtauth.Config{PublicKeysPEM: pub})
	_, err := onlyRSA.Authorize(context.Background(), "todos", payload(forged), nil)
	wantRefused(t, err, 401, `token algorithm "HS256" is not accepted`, forged)
	if _, err := onlyRSA.Authorize(context.Background(), "todos", payload(rs), nil); err != nil {
		t.Fatalf("RS256 token refused: %v", err)
	}

	both := newVerifier(t, jwtauth.Config{PublicKeysPEM: pub, Secret: secret})
	_, err = both.Authorize(context.Background(), "todos", payload(forged), nil)
	wantRefused(t, err, 401, "token signature is invalid", forged)
	for _, tok := range []string{rs, sign(t, jwt.SigningMethodHS256, secret, "", claims("todos", nil))} {
		if _, err := both.Authorize(context.Background(), "todos", payload(tok), nil); err != nil {
			t.Fatalf("valid token refused: %v", err)
		}
	}
}

func TestPublicKeyTypes(t *testing.T) {
	ec := newECKey(t)
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pems := string(pemPublic(t, &ec.PublicKey)) + string(pemPublic(t, edPub)) + string(pemPublic(t, &rsaKeys()[1].PublicKey))
	v := newVerifier(t, jwtauth.Config{PublicKeysPEM: []byte(pems)})
	for name, tok := range map[string]string{
		"ES256": sign(t, jwt.SigningMethodES256, ec, "", claims("todos", nil)),
		"EdDSA": sign(t, jwt.SigningMethodEdDSA, edPriv, "", claims("todos", nil)),
		"RS256": sign(t, jwt.SigningMethodRS256, rsaKeys()[1], "", claims("todos", nil)),
		"PS256": sign(t, jwt.SigningMethodPS256, rsaKeys()[1], "", claims("todos", nil)),
	} {
		if _, err := v.Authorize(context.Background(), "todos", payload(tok), nil); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A key not in the file.
	tok := sign(t, jwt.SigningMethodES256, newECKey(t), "", claims("todos", nil))
	_, err = v.Authorize(context.Background(), "todos", payload(tok), nil)
	wantRefused(t, err, 401, "token signature is invalid")
}

func TestNewRefusesBadConfig(t *testing.T) {
	priv := newECKey(t)
	der, _ := jwtauthMarshalPKCS8(t, priv)
	cases := []struct {
		name string
		cfg  jwtauth.Config
		want string
	}{
		{"nothing", jwtauth.Config{}, "no key configured"},
		{"short secret", jwtauth.Config{Secret: []byte("short")}, "secret is 5 bytes; HS256 needs at least 32"},
		{"private key PEM", jwtauth.Config{PublicKeysPEM: der}, `PEM block 1 is a "PRIVATE KEY", not a public key`},
		{"no PEM", jwtauth.Config{PublicKeysPEM: []byte("hello")}, "no PEM public key found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := jwtauth.New(context.Background(), c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if len(c.cfg.Secret) > 0 && strings.Contains(err.Error(), string(c.cfg.Secret)) {
				t.Fatalf("error %q contains the secret", err)
			}
		})
	}
}

func TestLeeway(t *testing.T) {
	tok := sign(t, jwt.SigningMethodHS256, secret, "", claims("todos", jwt.MapClaims{"exp": epoch.Add(-5 * time.Second).Unix()}))
	strict := newVerifier(t, jwtauth.Config{Secret: secret, Leeway: -1})
	_, err := strict.Authorize(context.Background(), "todos", payload(tok), nil)
	wantRefused(t, err, 401, "token expired at")
	loose := newVerifier(t, jwtauth.Config{Secret: secret, Leeway: 10 * time.Second})
	access, err := loose.Authorize(context.Background(), "todos", payload(tok), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := epoch.Add(5 * time.Second); !access.Expires.Equal(want) {
		t.Fatalf("Expires = %v, want %v (exp + leeway)", access.Expires, want)
	}
}

func TestStoresClaimName(t *testing.T) {
	v := newVerifier(t, jwtauth.Config{Secret: secret, StoresClaim: "https://example.com/stores"})
	ok := sign(t, jwt.SigningMethodHS256, secret, "", claims(nil, jwt.MapClaims{"https://example.com/stores": []string{"todos"}}))
	if _, err := v.Authorize(context.Background(), "todos", payload(ok), nil); err != nil {
		t.Fatal(err)
	}
	plain := sign(t, jwt.SigningMethodHS256, secret, "", claims("todos", nil))
	_, err := v.Authorize(context.Background(), "todos", payload(plain), nil)
	wantRefused(t, err, 403, `claim "https://example.com/stores"`)
}
