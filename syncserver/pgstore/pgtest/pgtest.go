// Package pgtest helps tests that need PostgreSQL: it reads the server's URL
// from LIVESTORE_TEST_POSTGRES_URL and gives each test its own schema, which
// is dropped when the test ends. Without the URL such tests are skipped,
// saying what to set, except under CI (the environment variable CI set),
// where they fail: CI must run them. It is for tests only: the storage
// itself is package pgstore, its conformance suite package storagetest.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncserver/pgstore"
)

// EnvURL is the environment variable holding the test database's URL.
const EnvURL = "LIVESTORE_TEST_POSTGRES_URL"

// CIEnv is the environment variable that, when set (as CI services set it),
// turns a missing URL from a skip into a failure.
const CIEnv = "CI"

// Missing returns "" when the test database's URL is set. Otherwise it
// returns the reason to skip what needs PostgreSQL, saying what to set, or
// fails t when [CIEnv] is set. It lets a test that also runs without
// PostgreSQL skip only the parts that need it.
func Missing(t testing.TB) string {
	t.Helper()
	if os.Getenv(EnvURL) != "" {
		return ""
	}
	how := fmt.Sprintf("set %s=… to run (the URL of a PostgreSQL database, e.g. %s='postgres://postgres@127.0.0.1:5432/test?sslmode=disable')", EnvURL, EnvURL)
	if os.Getenv(CIEnv) != "" {
		t.Fatalf("%s is not set, and %s is: CI must run the PostgreSQL tests; %s", EnvURL, CIEnv, how)
	}
	return how
}

// URL returns the test database's URL. Without it the test is skipped (see
// [Missing]).
func URL(t testing.TB) string {
	t.Helper()
	if why := Missing(t); why != "" {
		t.Skip(why)
	}
	return os.Getenv(EnvURL)
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
