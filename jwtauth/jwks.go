package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"sync"
	"time"
)

// maxJWKSBytes bounds a fetched key set; real ones are a few kilobytes.
const maxJWKSBytes = 1 << 20

// refreshTimeout bounds one periodic fetch of the key set.
const refreshTimeout = 30 * time.Second

// jwksCache holds the keys of a JWKS URL. Its refresh goroutine is owned by
// the Verifier and stopped by close.
//
// Lock order: fetchMu before mu. fetchMu serialises fetches (one at a time,
// so a burst of tokens with a new kid causes one request); mu guards the
// fields below it and is never held during a request.
type jwksCache struct {
	url        string
	client     *http.Client
	now        func() time.Time
	minRefetch time.Duration
	log        *slog.Logger

	fetchMu sync.Mutex

	mu        sync.Mutex
	keys      []key
	lastFetch time.Time // when the last fetch was attempted, successful or not

	cancel context.CancelFunc // ends the refresh goroutine and its fetch
	done   chan struct{}      // closed when the refresh goroutine has returned
}

// newJWKSCache fetches the key set once (a URL that does not serve one is a
// configuration error) and starts refreshing it every refresh.
func newJWKSCache(ctx context.Context, c *jwksCache, refresh time.Duration) (*jwksCache, error) {
	if err := c.fetch(ctx); err != nil {
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.done = make(chan struct{})
	go c.refreshLoop(loopCtx, refresh)
	return c, nil
}

func (c *jwksCache) refreshLoop(ctx context.Context, every time.Duration) {
	defer close(c.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fetchCtx, cancel := context.WithTimeout(ctx, refreshTimeout)
		err := c.fetch(fetchCtx)
		cancel()
		if err != nil && ctx.Err() == nil {
			c.log.Warn("JWKS refresh failed; keeping the previous keys", "url", c.url, "err", err)
		}
	}
}

func (c *jwksCache) close() {
	c.cancel()
	<-c.done
}

// lookup returns the keys for alg and kid. When none matches and the token
// names a kid, the set is fetched again (at most once per minRefetch) in
// case the issuer has rotated its keys.
func (c *jwksCache) lookup(ctx context.Context, alg, kid string) []any {
	c.mu.Lock()
	found := matching(c.keys, alg, kid)
	c.mu.Unlock()
	if len(found) > 0 || kid == "" {
		return found
	}
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	c.mu.Lock()
	found = matching(c.keys, alg, kid)
	due := c.now().Sub(c.lastFetch) >= c.minRefetch
	c.mu.Unlock()
	if len(found) > 0 || !due {
		return found
	}
	if err := c.fetchLocked(ctx); err != nil {
		c.log.Warn("JWKS refetch for an unknown key id failed", "url", c.url, "kid", kid, "err", err)
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return matching(c.keys, alg, kid)
}

func (c *jwksCache) fetch(ctx context.Context) error {
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	return c.fetchLocked(ctx)
}

// fetchLocked fetches and replaces the key set; fetchMu must be held.
func (c *jwksCache) fetchLocked(ctx context.Context) error {
	c.mu.Lock()
	c.lastFetch = c.now()
	c.mu.Unlock()
	keys, err := c.get(ctx)
	if err != nil {
		return fmt.Errorf("fetch JWKS %s: %w", c.url, err)
	}
	c.mu.Lock()
	c.keys = keys
	c.mu.Unlock()
	c.log.Debug("JWKS fetched", "url", c.url, "keys", len(keys))
	return nil
}

func (c *jwksCache) get(ctx context.Context) ([]key, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("key set larger than %d bytes", maxJWKSBytes)
	}
	return parseJWKS(body, c.log)
}

// jwk holds the members of a JSON Web Key (RFC 7517) used for verification.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS returns the verification keys of a JWK Set. Keys it cannot use
// (encryption keys, unknown types or curves, symmetric keys, which a public
// JWKS must not hold) are skipped with a log line, so that one odd key does
// not disable the others; a set with no usable key is an error.
func parseJWKS(data []byte, log *slog.Logger) ([]key, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("not a JWK Set: %w", err)
	}
	var keys []key
	for i, raw := range set.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		pub, err := j.public()
		if err == nil {
			var k key
			if k, err = newKey(j.Kid, pub, j.Alg); err == nil {
				keys = append(keys, k)
				continue
			}
		}
		log.Warn("JWKS key skipped", "kid", j.Kid, "kty", j.Kty, "err", err)
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable signing key in the JWK Set")
	}
	return keys, nil
}

func (j *jwk) public() (any, error) {
	switch j.Kty {
	case "RSA":
		n, err := b64Int(j.N)
		if err != nil {
			return nil, fmt.Errorf("n: %w", err)
		}
		e, err := b64Int(j.E)
		if err != nil {
			return nil, fmt.Errorf("e: %w", err)
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
			return nil, errors.New("unusable RSA exponent")
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("unsupported curve %q", j.Crv)
		}
		x, err := base64.RawURLEncoding.DecodeString(j.X)
		if err != nil {
			return nil, fmt.Errorf("x: %w", err)
		}
		y, err := base64.RawURLEncoding.DecodeString(j.Y)
		if err != nil {
			return nil, fmt.Errorf("y: %w", err)
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(x) != size || len(y) != size {
			return nil, errors.New("EC coordinates of the wrong length")
		}
		// ParseUncompressedPublicKey checks that the point is on the curve.
		return ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
	case "OKP":
		if j.Crv != "Ed25519" {
			return nil, fmt.Errorf("unsupported curve %q", j.Crv)
		}
		x, err := base64.RawURLEncoding.DecodeString(j.X)
		if err != nil {
			return nil, fmt.Errorf("x: %w", err)
		}
		if len(x) != ed25519.PublicKeySize {
			return nil, errors.New("Ed25519 key of the wrong length")
		}
		return ed25519.PublicKey(x), nil
	default:
		return nil, fmt.Errorf("unsupported key type %q", j.Kty)
	}
}

func b64Int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, errors.New("empty")
	}
	return new(big.Int).SetBytes(b), nil
}
