package jwtauth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultTTL is the lifetime of a minted token when [MintOptions].TTL is zero.
const DefaultTTL = time.Hour

// MintOptions describe a token made by [Mint].
type MintOptions struct {
	// Stores are the store ids or "prefix*" patterns the token is for; at
	// least one.
	Stores []string
	// PullOnly makes the token pull-only (scope "livestore:pull").
	PullOnly bool
	// TTL is the token's lifetime; default [DefaultTTL].
	TTL time.Duration
	// Issuer, Audience and Subject become iss, aud and sub when set.
	Issuer, Audience, Subject string
	// StoresClaim names the stores claim; default "stores".
	StoresClaim string
	// Now is the issue time (iat, nbf); zero means the current time.
	Now time.Time
}

// Mint returns an HS256 token signed with secret, for development and
// tests; production tokens come from an identity provider.
func Mint(secret []byte, o MintOptions) (string, error) {
	if len(secret) < MinSecretBytes {
		return "", fmt.Errorf("jwtauth: secret is %d bytes; HS256 needs at least %d", len(secret), MinSecretBytes)
	}
	if len(o.Stores) == 0 {
		return "", errors.New("jwtauth: a token needs at least one store")
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	ttl := o.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < 0 {
		return "", errors.New("jwtauth: negative TTL")
	}
	claim := o.StoresClaim
	if claim == "" {
		claim = DefaultStoresClaim
	}
	c := jwt.MapClaims{
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(ttl).Unix(),
		claim: o.Stores,
	}
	if o.PullOnly {
		c["scope"] = ScopePull
	}
	if o.Issuer != "" {
		c["iss"] = o.Issuer
	}
	if o.Audience != "" {
		c["aud"] = o.Audience
	}
	if o.Subject != "" {
		c["sub"] = o.Subject
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("jwtauth: sign token: %w", err)
	}
	return tok, nil
}
