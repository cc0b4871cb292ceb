// Package jwtauth checks JSON Web Tokens for the sync server: a [Verifier]'s
// Authorize method is a [syncserver.AuthFunc].
//
// A LiveStore app passes its token in the sync payload, as the reference
// sync server's validatePayload examples do:
//
//	makeWsSync({ url }) ... createStorePromise({ ..., syncPayload: { authToken: token } })
//
// The client sends the payload as the payload query parameter of the
// WebSocket URL; Authorize reads payload.authToken, or else the upgrade
// request's "Authorization: Bearer <token>" header (for programs that can
// set headers).
//
// Keys: an HS256 shared secret, RSA, ECDSA or Ed25519 public keys from PEM,
// or a JWKS URL whose key set is cached, refreshed periodically and
// refetched (at most once per [Config].JWKSMinRefetch) when a token names a
// key id it does not hold, so that an issuer can rotate keys. Only the
// algorithms of the configured keys are accepted, and each key only for its
// own algorithms: "alg": "none" and a token that claims HS256 to be checked
// against an RSA public key are refused.
//
// Claims, by convention:
//   - exp is required; exp and nbf are checked with a leeway (default 30 s).
//     The connection's grant ends at exp plus the leeway.
//   - iss and aud are checked when [Config].Issuer and [Config].Audience are set.
//   - "stores" (the name is configurable) lists the store ids the token is
//     for: a string or an array of strings, each an exact id or a pattern
//     "prefix*" matching every id that starts with prefix ("*" matches all).
//   - "scope" (a space-separated string, or an array of strings) containing
//     "livestore:pull" but not "livestore:push" makes the token pull-only:
//     the connection may read the store but its pushes are refused. A token
//     without these scopes may pull and push.
//
// Refusals are [*syncserver.AuthError]s: status 401 for a missing, malformed,
// badly signed, expired or not-yet-valid token or a wrong issuer or
// audience; 403 for a valid token that does not name the store. Their
// reasons say what was wrong and never contain the token or a key.
//
// [Mint] makes HS256 tokens for development and tests (and the
// "livestore token" command).
//
// The package checks tokens and nothing else: it keeps no sessions, issues
// no tokens to users and talks to no identity provider beyond fetching a
// JWK Set. Where a token is taken from and what a refusal does to the
// connection are the sync server's concern.
package jwtauth
