package syncserver_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/livestore-go/livestore/syncserver"
)

func TestCheckStoreID(t *testing.T) {
	for _, ok := range []string{"todos", "a", "my.store", "..a", "a..", "...", "550e8400-e29b-41d4-a716-446655440000", "V1StGXR8_Z5jdHi6B-myT", strings.Repeat("x", syncserver.MaxStoreIDLength)} {
		if err := syncserver.CheckStoreID(ok); err != nil {
			t.Errorf("CheckStoreID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "../x", "a b", "é", strings.Repeat("x", syncserver.MaxStoreIDLength+1)} {
		if err := syncserver.CheckStoreID(bad); !errors.Is(err, syncserver.ErrInvalidStoreID) {
			t.Errorf("CheckStoreID(%q) = %v, want ErrInvalidStoreID", bad, err)
		}
	}
}

func TestDeriveBackendID(t *testing.T) {
	secret := syncserver.NewBackendIDSecret()
	a := syncserver.DeriveBackendID(secret, "todos")
	if len(a) != 21 || strings.Trim(a, "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict") != "" {
		t.Fatalf("id %q is not 21 nanoid characters", a)
	}
	if b := syncserver.DeriveBackendID(secret, "todos"); b != a {
		t.Fatalf("same secret and store gave %q and %q", a, b)
	}
	if b := syncserver.DeriveBackendID(secret, "todos2"); b == a {
		t.Fatal("two stores share an id")
	}
	if b := syncserver.DeriveBackendID(syncserver.NewBackendIDSecret(), "todos"); b == a {
		t.Fatal("two secrets give one id")
	}
}

func TestBackendIDFor(t *testing.T) {
	secret := syncserver.NewBackendIDSecret()
	if id, err := syncserver.BackendIDFor(secret, "todos"); err != nil || id != syncserver.DeriveBackendID(secret, "todos") {
		t.Fatalf("with a secret: %q, %v", id, err)
	}
	if id, err := syncserver.BackendIDFor(nil, "todos"); !errors.Is(err, syncserver.ErrNoBackendIDSecret) || id != "" {
		t.Fatalf("without a secret: %q, %v", id, err)
	}
}
