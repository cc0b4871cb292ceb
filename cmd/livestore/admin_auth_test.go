package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livestore-go/livestore/jwtauth"
)

// TestServeSyncTokenOpensNoAdmin runs serve with token auth: a valid sync
// token, for every store, opens sync connections but never the admin
// surface, neither on the sync listener nor as the admin token.
func TestServeSyncTokenOpensNoAdmin(t *testing.T) {
	dir := t.TempDir()
	secret := []byte("0123456789abcdef0123456789abcdef")
	secretFile := filepath.Join(dir, "jwt.key")
	adminFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(adminFile, []byte("admin-token-0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	syncToken, err := jwtauth.Mint(secret, jwtauth.MintOptions{Stores: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	bearer := []string{"Authorization", "Bearer " + syncToken}

	// Auth on, no admin token: the admin surface has its own listener.
	s := launchServe(t, "--data", filepath.Join(dir, "a"), "--log-level", "warn",
		"--auth-secret-file", secretFile, "--admin-addr", "127.0.0.1:0")
	base := "http://" + hostPort(s.addr)
	for _, path := range []string{"/_devtools/api/stores", "/_devtools/", "/metrics"} {
		code, body := get(t, base+path, "", bearer...)
		if code == http.StatusOK || strings.Contains(body, "livestore_sync") || strings.Contains(body, "storeId") {
			t.Errorf("sync listener %s with a sync token: %d %.200s", path, code, body)
		}
	}

	// Auth and an admin token on one listener: the sync token is not it.
	s2 := launchServe(t, "--data", filepath.Join(dir, "b"), "--log-level", "warn",
		"--auth-secret-file", secretFile, "--admin-token-file", adminFile)
	base2 := "http://" + hostPort(s2.addr)
	for _, path := range []string{"/_devtools/api/stores", "/metrics"} {
		if code, body := get(t, base2+path, "", bearer...); code != http.StatusUnauthorized {
			t.Errorf("%s with a sync token as admin token: %d %.200s, want 401", path, code, body)
		}
		if code, _ := get(t, base2+path, "", "Authorization", "Bearer admin-token-0123456789"); code != http.StatusOK {
			t.Errorf("%s with the admin token: %d, want 200", path, code)
		}
	}
}
