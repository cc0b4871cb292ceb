package sqlitestore_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
	"github.com/livestore-go/livestore/syncserver/storagetest"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(holdEnv); path != "" {
		holdLock(path)
		return
	}
	if path := os.Getenv(crashEnv); path != "" {
		appendUntilKilled(path)
		return
	}
	goleak.VerifyTestMain(m)
}

func open(t *testing.T) syncserver.Storage {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
}

func openAt(t *testing.T, path string, opts sqlitestore.Options) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestConformance(t *testing.T) { storagetest.Run(t, open) }

// A server and a read-only tool on one file agree on the backend ids of
// stores that do not exist yet: the secret they derive from is in the file.
func TestSharedWithReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sync.db")
	w := openAt(t, path, sqlitestore.Options{})
	r, err := sqlitestore.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	storagetest.Shared(t, w, r)
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sync.db")
	s, err := sqlitestore.Open(path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	id, err := s.BackendID(ctx, "keep")
	if err != nil {
		t.Fatal(err)
	}
	missing, err := s.BackendID(ctx, "not-yet")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "keep", storagetest.Chain(0, 10, "c"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Head(ctx, "keep"); !errors.Is(err, sqlitestore.ErrClosed) {
		t.Errorf("Head after Close: %v", err)
	}
	if err := s.Append(ctx, "keep", storagetest.Chain(10, 1, "c"), time.Now()); !errors.Is(err, sqlitestore.ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}

	s = openAt(t, path, sqlitestore.Options{})
	again, err := s.BackendID(ctx, "keep")
	if err != nil || again != id {
		t.Fatalf("backend id after reopen = %q, %v; want %q", again, err, id)
	}
	if again, err := s.BackendID(ctx, "not-yet"); err != nil || again != missing {
		t.Fatalf("backend id of a missing store after reopen = %q, %v; want %q", again, err, missing)
	}
	if head, err := s.Head(ctx, "keep"); err != nil || head != 10 {
		t.Fatalf("head after reopen = %d, %v", head, err)
	}
}

// Pulls of thousands of new store ids (what a client cycling ids does)
// create no store.
func TestPullsOfMissingStoresWriteNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sync.db")
	s := openAt(t, path, sqlitestore.Options{})
	ctx := t.Context()
	for i := range 2000 {
		store := fmt.Sprintf("ghost-%d", i)
		if _, err := s.BackendID(ctx, store); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Head(ctx, store); err != nil {
			t.Fatal(err)
		}
	}
	stores, err := s.Stores(ctx)
	if err != nil || len(stores) != 0 {
		t.Fatalf("stores = %v, %v; want none", stores, err)
	}
}

func storageKind(t *testing.T, err error, want syncserver.StorageErrorKind) {
	t.Helper()
	var se *syncserver.StorageError
	if !errors.As(err, &se) || se.Kind != want {
		t.Fatalf("err = %v; want a *syncserver.StorageError of kind %s", err, want)
	}
}
