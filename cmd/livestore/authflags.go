package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/livestore-go/livestore/jwtauth"
	"github.com/livestore-go/livestore/syncserver"
)

// authFlags are the authentication flags of serve: JWTs checked by package
// jwtauth, taken from the client's sync payload ({authToken}) or an
// Authorization: Bearer header.
type authFlags struct {
	secretFile    string
	publicKeyFile string
	jwksURL       string
	jwksRefresh   time.Duration
	issuer        string
	audience      string
	storesClaim   string
	leeway        time.Duration
}

// register adds the flags to fs.
func (a *authFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.secretFile, "auth-secret-file", "", "require tokens signed (HS256) with the secret in this file (at least 32 bytes; a trailing newline is ignored)")
	fs.StringVar(&a.publicKeyFile, "auth-public-key-file", "", "require tokens signed by a PEM public key (RSA, ECDSA or Ed25519) in this file")
	fs.StringVar(&a.jwksURL, "auth-jwks-url", "", "require tokens signed by a key of this JWK Set (cached; refetched when a token names an unknown kid)")
	fs.DurationVar(&a.jwksRefresh, "auth-jwks-refresh", jwtauth.DefaultJWKSRefresh, "how often the JWK Set is fetched again")
	fs.StringVar(&a.issuer, "auth-issuer", "", "required token issuer (iss)")
	fs.StringVar(&a.audience, "auth-audience", "", "required token audience (aud)")
	fs.StringVar(&a.storesClaim, "auth-stores-claim", jwtauth.DefaultStoresClaim, "claim listing a token's store ids (string or array; \"prefix*\" patterns)")
	fs.DurationVar(&a.leeway, "auth-leeway", jwtauth.DefaultLeeway, "clock skew tolerated in exp and nbf (0 for none)")
}

// configured reports whether the flags ask for authentication.
func (a *authFlags) configured() bool {
	return a.secretFile != "" || a.publicKeyFile != "" || a.jwksURL != ""
}

// build returns the server's AuthFunc (nil when not configured) and a
// function that releases what it holds.
func (a *authFlags) build(ctx context.Context, logger *slog.Logger) (syncserver.AuthFunc, func(), error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if !a.configured() {
		if a.issuer != "" || a.audience != "" {
			return nil, func() {}, fmt.Errorf("%w: --auth-issuer and --auth-audience need --auth-secret-file, --auth-public-key-file or --auth-jwks-url", errUsage)
		}
		return nil, func() {}, nil
	}
	if a.leeway < 0 {
		return nil, func() {}, fmt.Errorf("%w: --auth-leeway must not be negative", errUsage)
	}
	if a.jwksRefresh <= 0 {
		return nil, func() {}, fmt.Errorf("%w: --auth-jwks-refresh must be positive", errUsage)
	}
	cfg := jwtauth.Config{
		JWKSURL:     a.jwksURL,
		JWKSRefresh: a.jwksRefresh,
		Issuer:      a.issuer,
		Audience:    a.audience,
		StoresClaim: a.storesClaim,
		Leeway:      a.leeway,
		Logger:      logger,
	}
	if a.leeway == 0 {
		cfg.Leeway = -1 // jwtauth reads 0 as its default
	}
	if a.secretFile != "" {
		secret, err := readSecretFile(a.secretFile, logger)
		if err != nil {
			return nil, func() {}, fmt.Errorf("--auth-secret-file: %w", err)
		}
		cfg.Secret = secret
	}
	if a.publicKeyFile != "" {
		pem, err := os.ReadFile(a.publicKeyFile)
		if err != nil {
			return nil, func() {}, fmt.Errorf("--auth-public-key-file: %w", err)
		}
		cfg.PublicKeysPEM = pem
	}
	v, err := jwtauth.New(ctx, cfg)
	if err != nil {
		return nil, func() {}, err
	}
	logger.Info("token auth enabled", "secret", a.secretFile != "", "public_keys", a.publicKeyFile, "jwks", a.jwksURL,
		"issuer", a.issuer, "audience", a.audience, "stores_claim", a.storesClaim)
	return v.Authorize, v.Close, nil
}

// readSecretFile reads an HS256 secret. Trailing line breaks are dropped,
// so that a file written by `openssl rand -base64 48 > F` or an editor
// holds the secret its other users read. A file others may read is
// reported, since anyone holding the secret can mint tokens.
func readSecretFile(path string, logger *slog.Logger) ([]byte, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		logger.Warn("secret file is readable by other users", "path", path, "mode", fi.Mode().Perm().String())
	}
	secret := bytes.TrimRight(b, "\r\n")
	if len(secret) < jwtauth.MinSecretBytes {
		return nil, fmt.Errorf("%s holds %d bytes; the secret must be at least %d", path, len(secret), jwtauth.MinSecretBytes)
	}
	return secret, nil
}
