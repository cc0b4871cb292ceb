package syncserver

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// MaxStoreIDLength is the longest store id [CheckStoreID] accepts.
const MaxStoreIDLength = 256

// ErrInvalidStoreID is matched (errors.Is) by the errors of [CheckStoreID].
var ErrInvalidStoreID = errors.New("invalid store id")

// CheckStoreID is the default store-id rule: 1 to 256 characters from
// A–Z, a–z, 0–9, "_", "-" and ".", except "." and ".." (which name
// directories, not files, where ids become paths). The reference accepts any string; this
// rule keeps ids safe to use in file names, URLs and log lines, and covers
// the ids LiveStore apps use in practice (names, UUIDs, nanoids). Servers
// that need other ids set [Options.CheckStoreID].
func CheckStoreID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalidStoreID)
	}
	if len(id) > MaxStoreIDLength {
		return fmt.Errorf("%w: %d characters, at most %d allowed", ErrInvalidStoreID, len(id), MaxStoreIDLength)
	}
	if id == "." || id == ".." {
		return fmt.Errorf("%w: %q names a directory", ErrInvalidStoreID, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("%w: character %q at offset %d (allowed: A-Z a-z 0-9 _ - .)", ErrInvalidStoreID, c, i)
		}
	}
	return nil
}

const nanoidAlphabet = "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict"

// NewBackendID returns a random 21-character id in the form the reference
// uses (nanoid).
func NewBackendID() string {
	var b [21]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return nanoid(b[:])
}

// BackendIDSecretSize is the size of the secret [DeriveBackendID] expects.
const BackendIDSecretSize = 32

// NewBackendIDSecret returns a new random secret for [DeriveBackendID]. A
// storage creates one with its tables and keeps it for its whole life.
func NewBackendIDSecret() []byte {
	b := make([]byte, BackendIDSecretSize)
	_, _ = rand.Read(b)
	return b
}

// DeriveBackendID returns the backend id a store gets when its first push
// is accepted: 21 nanoid characters of HMAC-SHA256(secret, storeID).
//
// Deriving the id, instead of drawing it when the store is created, lets a
// storage answer pulls of a store that does not exist yet without writing
// anything, and still give the id the store will have; every process sharing
// the storage (and so its secret) gives the same one, and a storage wiped
// and created again (with a new secret) gives new ones, which clients detect
// as a changed backend.
func DeriveBackendID(secret []byte, storeID string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(storeID))
	return nanoid(mac.Sum(nil)[:21])
}

// ErrNoBackendIDSecret is the error of [BackendIDFor] without a secret: a
// storage written before backend-id secrets were kept, opened read-only.
// Opening it read-write once creates the secret.
var ErrNoBackendIDSecret = errors.New("the storage has no backend id secret yet (opening it read-write once creates one)")

// BackendIDFor is [DeriveBackendID] for a storage whose secret may be
// missing (nil): then it fails with [ErrNoBackendIDSecret].
func BackendIDFor(secret []byte, storeID string) (string, error) {
	if secret == nil {
		return "", ErrNoBackendIDSecret
	}
	return DeriveBackendID(secret, storeID), nil
}

// nanoid renders 21 random bytes in the nanoid alphabet; 6 bits of each
// byte are used, as nanoid does.
func nanoid(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = nanoidAlphabet[c&63]
	}
	return string(out)
}
