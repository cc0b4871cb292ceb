package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/jwtauth"
	"github.com/livestore-go/livestore/syncserver"
)

func writeSecret(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// buildAuth parses serve's auth flags from args and builds the AuthFunc.
func buildAuth(t *testing.T, args ...string) (syncserver.AuthFunc, error) {
	t.Helper()
	var a authFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	auth, release, err := a.build(context.Background(), nil)
	t.Cleanup(release)
	return auth, err
}

func authPayload(token string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"authToken": token})
	return b
}

// A token printed by "livestore token" is accepted by a server configured
// with serve's auth flags and the same secret file.
func TestTokenCommandAndAuthFlags(t *testing.T) {
	secretFile := writeSecret(t, "a-secret-for-the-command-line-tests-0123456789\n")
	code, out, errOut := runCLI(t, "token", "--secret-file", secretFile, "--store", "todos", "--store", "team-*",
		"--pull-only", "--ttl", "10m", "--issuer", "dev", "--audience", "sync")
	if code != 0 {
		t.Fatalf("token: exit %d: %s", code, errOut)
	}
	token := strings.TrimSpace(out)
	if strings.Count(token, ".") != 2 {
		t.Fatalf("token output %q is not a JWT", out)
	}

	auth, err := buildAuth(t, "--auth-secret-file", secretFile, "--auth-issuer", "dev", "--auth-audience", "sync")
	if err != nil || auth == nil {
		t.Fatalf("build: %v (auth %v)", err, auth != nil)
	}
	for _, store := range []string{"todos", "team-9"} {
		access, err := auth(context.Background(), store, authPayload(token), nil)
		if err != nil {
			t.Fatalf("%s: %v", store, err)
		}
		if !access.ReadOnly || access.Expires.IsZero() {
			t.Fatalf("%s: access = %+v, want read-only with an expiry", store, access)
		}
	}
	var ae *syncserver.AuthError
	if _, err := auth(context.Background(), "notes", authPayload(token), nil); !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Fatalf("notes: err = %v, want 403", err)
	}

	other, err := buildAuth(t, "--auth-secret-file", secretFile, "--auth-issuer", "someone-else")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other(context.Background(), "todos", authPayload(token), nil); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("wrong issuer: err = %v, want 401", err)
	}
}

// --auth-leeway 0 means no leeway (jwtauth.Config reads 0 as its default).
func TestAuthFlagsLeeway(t *testing.T) {
	secretFile := writeSecret(t, "a-secret-for-the-command-line-tests-0123456789")
	secret, err := readSecretFile(secretFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwtauth.Mint(secret, jwtauth.MintOptions{Stores: []string{"s"}, Now: time.Now().Add(-time.Hour - 5*time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	loose, err := buildAuth(t, "--auth-secret-file", secretFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loose(context.Background(), "s", authPayload(tok), nil); err != nil {
		t.Fatalf("default leeway: %v", err)
	}
	strict, err := buildAuth(t, "--auth-secret-file", secretFile, "--auth-leeway", "0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strict(context.Background(), "s", authPayload(tok), nil); err == nil || !strings.Contains(err.Error(), "token expired at") {
		t.Fatalf("--auth-leeway 0: err = %v, want expired", err)
	}
}

func TestAuthFlagsNotConfigured(t *testing.T) {
	auth, err := buildAuth(t)
	if err != nil || auth != nil {
		t.Fatalf("no flags: auth set %v, err %v; want neither", auth != nil, err)
	}
	if _, err := buildAuth(t, "--auth-issuer", "x"); !errors.Is(err, errUsage) {
		t.Fatalf("--auth-issuer alone: err = %v, want a usage error", err)
	}
	short := writeSecret(t, "short\n")
	if _, err := buildAuth(t, "--auth-secret-file", short); err == nil || !strings.Contains(err.Error(), "at least 32") || strings.Contains(err.Error(), "short\n") {
		t.Fatalf("short secret: err = %v", err)
	}
}

func TestTokenCommandErrors(t *testing.T) {
	secretFile := writeSecret(t, "a-secret-for-the-command-line-tests-0123456789")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"token", "--store", "a"}, 2, "--secret-file is required"},
		{[]string{"token", "--secret-file", secretFile}, 2, "at least one --store"},
		{[]string{"token", "--secret-file", secretFile, "--store", "a", "--ttl", "-1h"}, 2, "--ttl must be positive"},
		{[]string{"token", "--secret-file", filepath.Join(t.TempDir(), "none"), "--store", "a"}, 1, "no such file"},
	} {
		code, out, errOut := runCLI(t, c.args...)
		if code != c.code || out != "" || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d and %q", c.args, code, out, errOut, c.code, c.want)
		}
	}
}
