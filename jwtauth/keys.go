package jwtauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
)

// MinSecretBytes is the shortest HS256 secret accepted: RFC 7518 §3.2
// requires a key at least as long as the hash output.
const MinSecretBytes = 32

// minRSABits is the smallest RSA modulus accepted.
const minRSABits = 2048

// key is one verification key and the algorithms it may verify. Tying the
// algorithms to the key, rather than trusting the token's header, is what
// refuses algorithm confusion: an RSA key never verifies an HS256 token.
type key struct {
	kid  string   // "" matches any kid (PEM keys have none)
	algs []string // the algorithms this key verifies
	pub  any      // []byte (HMAC), *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// newKey returns the key for pub, restricted to alg if alg is not empty
// (the "alg" member of a JWK).
func newKey(kid string, pub any, alg string) (key, error) {
	var algs []string
	switch p := pub.(type) {
	case []byte:
		if len(p) < MinSecretBytes {
			return key{}, fmt.Errorf("secret is %d bytes; HS256 needs at least %d", len(p), MinSecretBytes)
		}
		algs = []string{"HS256"}
	case *rsa.PublicKey:
		if p.N.BitLen() < minRSABits {
			return key{}, fmt.Errorf("RSA key of %d bits; at least %d are needed", p.N.BitLen(), minRSABits)
		}
		algs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			algs = []string{"ES256"}
		case elliptic.P384():
			algs = []string{"ES384"}
		case elliptic.P521():
			algs = []string{"ES512"}
		default:
			return key{}, errors.New("ECDSA key on an unsupported curve")
		}
	case ed25519.PublicKey:
		algs = []string{"EdDSA"}
	default:
		return key{}, fmt.Errorf("unsupported key type %T", pub)
	}
	if alg != "" {
		if !slices.Contains(algs, alg) {
			return key{}, fmt.Errorf("key declares algorithm %q, which does not fit its type", alg)
		}
		algs = []string{alg}
	}
	return key{kid: kid, algs: algs, pub: pub}, nil
}

// parsePEM returns the public keys of PEM data: "PUBLIC KEY" (PKIX),
// "RSA PUBLIC KEY" (PKCS #1) and "CERTIFICATE" blocks. Any other block,
// a private key in particular, is an error: the server needs only public
// keys and should not be handed a signing key by mistake.
func parsePEM(data []byte) ([]key, error) {
	var keys []key
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var pub any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				pub = cert.PublicKey
			}
		default:
			return nil, fmt.Errorf("PEM block %d is a %q, not a public key or certificate", n, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", n, block.Type, err)
		}
		k, err := newKey("", pub, "")
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM public key found")
	}
	return keys, nil
}

// matching returns the keys that may verify a token with alg and kid. A key
// with a kid matches only that kid, a key without one any kid, and a token
// without a kid is tried against every key of its algorithm.
func matching(keys []key, alg, kid string) []any {
	var out []any
	for _, k := range keys {
		if slices.Contains(k.algs, alg) && (kid == "" || k.kid == "" || k.kid == kid) {
			out = append(out, k.pub)
		}
	}
	return out
}
