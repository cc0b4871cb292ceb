package jwtauth_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/jwtauth"
)

func TestMint(t *testing.T) {
	v := newVerifier(t, jwtauth.Config{Secret: secret, Issuer: "dev", Audience: "sync", Leeway: -1})
	tok, err := jwtauth.Mint(secret, jwtauth.MintOptions{Stores: []string{"a", "b-*"}, TTL: time.Minute, Issuer: "dev", Audience: "sync", Now: epoch})
	if err != nil {
		t.Fatal(err)
	}
	for _, store := range []string{"a", "b-1"} {
		access, err := v.Authorize(context.Background(), store, payload(tok), nil)
		if err != nil {
			t.Fatalf("%s: %v", store, err)
		}
		if access.ReadOnly || !access.Expires.Equal(epoch.Add(time.Minute)) {
			t.Fatalf("access = %+v, want read-write until %v", access, epoch.Add(time.Minute))
		}
	}
	_, err = v.Authorize(context.Background(), "c", payload(tok), nil)
	wantRefused(t, err, 403, `token not valid for store "c"`)

	pull, err := jwtauth.Mint(secret, jwtauth.MintOptions{Stores: []string{"a"}, PullOnly: true, Issuer: "dev", Audience: "sync", Now: epoch})
	if err != nil {
		t.Fatal(err)
	}
	if access, err := v.Authorize(context.Background(), "a", payload(pull), nil); err != nil || !access.ReadOnly {
		t.Fatalf("pull-only token: access %+v, err %v", access, err)
	}

	stale, err := jwtauth.Mint(secret, jwtauth.MintOptions{Stores: []string{"a"}, Issuer: "dev", Audience: "sync", Now: epoch.Add(-2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Authorize(context.Background(), "a", payload(stale), nil)
	wantRefused(t, err, 401, "token expired at 2026-03-01T11:00:00Z")

	for name, c := range map[string]struct {
		secret []byte
		o      jwtauth.MintOptions
		want   string
	}{
		"short secret": {[]byte("short"), jwtauth.MintOptions{Stores: []string{"a"}}, "HS256 needs at least 32"},
		"no stores":    {secret, jwtauth.MintOptions{}, "at least one store"},
	} {
		if _, err := jwtauth.Mint(c.secret, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
	}
}
