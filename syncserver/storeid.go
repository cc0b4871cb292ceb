package syncserver

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// MaxStoreIDLength is the longest store id [CheckStoreID] accepts.
const MaxStoreIDLength = 256

// ErrInvalidStoreID is matched (errors.Is) by the errors of [CheckStoreID].
var ErrInvalidStoreID = errors.New("invalid store id")

// CheckStoreID is the default store-id rule: 1 to 256 characters from
// A–Z, a–z, 0–9, "_", "-" and ".". The reference accepts any string; this
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
// uses (nanoid). Storage implementations call it when they create a store.
func NewBackendID() string {
	var b [21]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	for i := range b {
		b[i] = nanoidAlphabet[b[i]&63]
	}
	return string(b[:])
}
