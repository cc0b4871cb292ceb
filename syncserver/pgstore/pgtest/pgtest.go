// Package pgtest helps tests that need PostgreSQL: it reads the server's URL
// from LIVESTORE_TEST_POSTGRES_URL and gives each test its own schema, which
// is dropped when the test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncserver/pgstore"
)

// EnvURL is the environment variable holding the test database's URL.
const EnvURL = "LIVESTORE_TEST_POSTGRES_URL"

// URL returns the test database's URL, failing the test with instructions
// when it is not set.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		t.Fatalf("%s is not set; these tests need PostgreSQL. Start one and run e.g.\n"+
			"  %s='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' go test ./...", EnvURL, EnvURL)
	}
	return u
}

// Schema returns a new schema name for the test and drops that schema when
// the test ends.
func Schema(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "lstest_" + hex.EncodeToString(b[:])
	url := URL(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := pgstore.Open(ctx, url, pgstore.Options{Schema: name})
		if err != nil {
			t.Errorf("drop test schema %s: %v", name, err)
			return
		}
		defer s.Close()
		if err := s.DropSchema(ctx); err != nil {
			t.Errorf("drop test schema %s: %v", name, err)
		}
	})
	return name
}

// Open opens a store on schema, closed when the test ends.
func Open(t testing.TB, schema string) *pgstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := pgstore.Open(ctx, URL(t), pgstore.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
