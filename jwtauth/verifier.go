package jwtauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/livestore-go/livestore/syncserver"
)

// Defaults of [Config] fields left zero.
const (
	DefaultLeeway         = 30 * time.Second
	DefaultStoresClaim    = "stores"
	DefaultJWKSRefresh    = 15 * time.Minute
	DefaultJWKSMinRefetch = 30 * time.Second
)

// Scopes of the "scope" claim. A token whose scope holds ScopePull but not
// ScopePush is pull-only.
const (
	ScopePull = "livestore:pull"
	ScopePush = "livestore:push"
)

// Config configures a [Verifier]. At least one of Secret, PublicKeysPEM and
// JWKSURL is required; when several are set, a token may be signed by any
// of their keys.
type Config struct {
	// Secret is the HS256 shared secret, at least [MinSecretBytes] long.
	Secret []byte
	// PublicKeysPEM holds one or more PEM public keys ("PUBLIC KEY",
	// "RSA PUBLIC KEY") or certificates: RSA keys verify RS256/384/512 and
	// PS256/384/512, ECDSA keys ES256/384/512 by curve, Ed25519 keys EdDSA.
	PublicKeysPEM []byte
	// JWKSURL is an issuer's JSON Web Key Set. It is fetched by New,
	// refreshed every JWKSRefresh, and fetched again when a token names a
	// key id the set does not hold, at most once per JWKSMinRefetch.
	JWKSURL string
	// JWKSRefresh is the period of the key set's refresh; default 15 min.
	JWKSRefresh time.Duration
	// JWKSMinRefetch is the shortest time between two fetches caused by
	// unknown key ids, which bounds what a stream of forged kids can cost;
	// default 30 s.
	JWKSMinRefetch time.Duration
	// HTTPClient fetches the key set; nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// Issuer, if set, must equal the token's iss.
	Issuer string
	// Audience, if set, must be one of the token's aud.
	Audience string
	// Leeway tolerates clock skew in exp and nbf; 0 means [DefaultLeeway]
	// and a negative value none.
	Leeway time.Duration
	// StoresClaim names the claim listing the token's stores; default "stores".
	StoresClaim string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives key-set fetch failures; nil discards them.
	Logger *slog.Logger
}

// Verifier checks tokens against a [Config]. Its methods are safe for
// concurrent use.
type Verifier struct {
	static      []key
	jwks        *jwksCache // nil without a JWKS URL
	algs        []string   // every algorithm some key may verify
	parser      *jwt.Parser
	leeway      time.Duration
	storesClaim string
}

// New returns a Verifier for cfg. With a JWKS URL it fetches the key set
// (within ctx) and starts a goroutine refreshing it, stopped by Close.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	v := &Verifier{leeway: cfg.Leeway, storesClaim: cfg.StoresClaim}
	if v.leeway == 0 {
		v.leeway = DefaultLeeway
	} else if v.leeway < 0 {
		v.leeway = 0
	}
	if v.storesClaim == "" {
		v.storesClaim = DefaultStoresClaim
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Secret == nil && cfg.PublicKeysPEM == nil && cfg.JWKSURL == "" {
		return nil, errors.New("jwtauth: no key configured: set a secret, public keys or a JWKS URL")
	}
	if cfg.Secret != nil {
		k, err := newKey("", cfg.Secret, "")
		if err != nil {
			return nil, fmt.Errorf("jwtauth: %w", err)
		}
		v.static = append(v.static, k)
	}
	if cfg.PublicKeysPEM != nil {
		keys, err := parsePEM(cfg.PublicKeysPEM)
		if err != nil {
			return nil, fmt.Errorf("jwtauth: public keys: %w", err)
		}
		v.static = append(v.static, keys...)
	}
	for _, k := range v.static {
		v.algs = append(v.algs, k.algs...)
	}
	if cfg.JWKSURL != "" {
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: 30 * time.Second}
		}
		c := &jwksCache{url: cfg.JWKSURL, client: client, now: now, minRefetch: cfg.JWKSMinRefetch, log: log}
		if c.minRefetch == 0 {
			c.minRefetch = DefaultJWKSMinRefetch
		}
		refresh := cfg.JWKSRefresh
		if refresh <= 0 {
			refresh = DefaultJWKSRefresh
		}
		var err error
		if v.jwks, err = newJWKSCache(ctx, c, refresh); err != nil {
			return nil, fmt.Errorf("jwtauth: %w", err)
		}
		// Keys of a later fetch may use any algorithm a JWK can declare;
		// each is still tied to its own key type.
		v.algs = append(v.algs, "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
	}
	opts := []jwt.ParserOption{jwt.WithLeeway(v.leeway), jwt.WithTimeFunc(now), jwt.WithExpirationRequired()}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Close stops the key set's refresh and waits for it. The Verifier must
// not be used afterwards.
func (v *Verifier) Close() {
	if v.jwks != nil {
		v.jwks.close()
	}
}

// errUnknownKey is returned by the keyfunc when no configured key may
// verify the token.
var errUnknownKey = errors.New("unknown signing key")

// algError is returned by the keyfunc for an algorithm no key verifies.
type algError struct{ alg string }

func (e *algError) Error() string {
	return fmt.Sprintf("token algorithm %q is not accepted", e.alg)
}

// Authorize is a [syncserver.AuthFunc]: it checks the token of a connection
// to storeID, taken from payload.authToken or else from an
// "Authorization: Bearer" header, and returns what the token grants.
// Refusals are [*syncserver.AuthError]s (401 or 403).
func (v *Verifier) Authorize(ctx context.Context, storeID string, payload json.RawMessage, header http.Header) (syncserver.Access, error) {
	raw, err := tokenFrom(payload, header)
	if err != nil {
		return syncserver.Access{}, &syncserver.AuthError{Status: http.StatusUnauthorized, Reason: err.Error()}
	}
	claims, err := v.verify(ctx, raw)
	if err != nil {
		return syncserver.Access{}, &syncserver.AuthError{Status: http.StatusUnauthorized, Reason: err.Error()}
	}
	patterns, err := stringList(claims[v.storesClaim])
	if err != nil || len(patterns) == 0 {
		return syncserver.Access{}, &syncserver.AuthError{Status: http.StatusForbidden,
			Reason: fmt.Sprintf("token names no stores (claim %q, a string or an array of strings)", v.storesClaim)}
	}
	if !slices.ContainsFunc(patterns, func(p string) bool { return storeMatches(p, storeID) }) {
		return syncserver.Access{}, &syncserver.AuthError{Status: http.StatusForbidden,
			Reason: fmt.Sprintf("token not valid for store %q", storeID)}
	}
	access := syncserver.Access{ReadOnly: pullOnly(claims["scope"])}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		access.Expires = exp.Add(v.leeway)
	}
	return access, nil
}

// verify checks raw's signature and registered claims and returns its
// claims, or an error whose text may be shown to the client.
func (v *Verifier) verify(ctx context.Context, raw string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		alg := t.Method.Alg()
		if !slices.Contains(v.algs, alg) {
			return nil, &algError{alg}
		}
		kid, _ := t.Header["kid"].(string)
		keys := matching(v.static, alg, kid)
		if v.jwks != nil {
			keys = append(keys, v.jwks.lookup(ctx, alg, kid)...)
		}
		switch len(keys) {
		case 0:
			return nil, errUnknownKey
		case 1:
			return keys[0], nil
		}
		set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(keys))}
		for i, k := range keys {
			set.Keys[i] = k
		}
		return set, nil
	})
	if err == nil {
		return claims, nil
	}
	var ae *algError
	switch {
	case errors.As(err, &ae):
		return nil, ae
	case errors.Is(err, errUnknownKey):
		return nil, errUnknownKey
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, errors.New("malformed token")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// An algorithm the library does not know ends here.
		return nil, errors.New("token algorithm is not supported")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, errors.New("token signature is invalid")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		for _, name := range []string{"exp", "iss", "aud"} {
			if _, ok := claims[name]; !ok {
				return nil, fmt.Errorf("token has no %q claim", name)
			}
		}
		return nil, errors.New("token lacks a required claim")
	case errors.Is(err, jwt.ErrTokenExpired):
		if exp, _ := claims.GetExpirationTime(); exp != nil {
			return nil, fmt.Errorf("token expired at %s", exp.UTC().Format(time.RFC3339))
		}
		return nil, errors.New("token expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		if nbf, _ := claims.GetNotBefore(); nbf != nil {
			return nil, fmt.Errorf("token not valid before %s", nbf.UTC().Format(time.RFC3339))
		}
		return nil, errors.New("token not valid yet")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return nil, errors.New("token issuer is not accepted")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return nil, errors.New("token audience is not accepted")
	case errors.Is(err, jwt.ErrInvalidType):
		return nil, errors.New("token has a claim of the wrong type")
	}
	return nil, errors.New("invalid token")
}

// tokenFrom returns the token of payload.authToken, or else of an
// "Authorization: Bearer" header.
func tokenFrom(payload json.RawMessage, header http.Header) (string, error) {
	if len(payload) > 0 {
		var p struct {
			AuthToken json.RawMessage `json:"authToken"`
		}
		// A payload that is not an object carries no token; the header may.
		if json.Unmarshal(payload, &p) == nil && p.AuthToken != nil {
			var s string
			if err := json.Unmarshal(p.AuthToken, &s); err != nil || s == "" {
				return "", errors.New("authToken in the sync payload is not a non-empty string")
			}
			return s, nil
		}
	}
	if h := header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", errors.New("authorization header is not \"Bearer <token>\"")
		}
		return strings.TrimSpace(tok), nil
	}
	return "", errors.New("no token: pass authToken in the sync payload or an Authorization: Bearer header")
}

// stringList reads a claim that is a string or an array of strings.
func stringList(v any) ([]string, error) {
	switch v := v.(type) {
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, errors.New("not a string")
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, errors.New("not a string or an array")
}

// storeMatches reports whether pattern, an exact store id or "prefix*",
// covers storeID.
func storeMatches(pattern, storeID string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(storeID, prefix)
	}
	return pattern == storeID
}

// pullOnly reports whether a scope claim (space-separated string or array)
// grants pulls but not pushes.
func pullOnly(scope any) bool {
	var scopes []string
	if s, ok := scope.(string); ok {
		scopes = strings.Fields(s)
	} else if l, err := stringList(scope); err == nil {
		scopes = l
	}
	return slices.Contains(scopes, ScopePull) && !slices.Contains(scopes, ScopePush)
}
