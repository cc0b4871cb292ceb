package sqlitestore_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
	"github.com/livestore-go/livestore/syncserver/storagetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T) syncserver.Storage {
	t.Helper()
	s, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
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

	s, err = sqlitestore.Open(path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	again, err := s.BackendID(ctx, "keep")
	if err != nil || again != id {
		t.Fatalf("backend id after reopen = %q, %v; want %q", again, err, id)
	}
	if head, err := s.Head(ctx, "keep"); err != nil || head != 10 {
		t.Fatalf("head after reopen = %d, %v", head, err)
	}
}
