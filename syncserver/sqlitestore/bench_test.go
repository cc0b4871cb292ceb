package sqlitestore_test

import (
	"path/filepath"
	"testing"

	"github.com/livestore-go/livestore/syncserver/sqlitestore"
	"github.com/livestore-go/livestore/syncserver/storagetest"
)

func benchAppend(b *testing.B, stores int) {
	s, err := sqlitestore.Open(filepath.Join(b.TempDir(), "sync.db"), sqlitestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storagetest.BenchAppend(b, s, stores, 100, 100)
}

// BenchmarkAppend1 appends batches of 100 events to one store, each
// awaited: one transaction and fsync per batch.
func BenchmarkAppend1(b *testing.B) { benchAppend(b, 1) }

// BenchmarkAppend8 appends batches of 100 events to 8 stores at once: the
// writer commits what is queued together.
func BenchmarkAppend8(b *testing.B) { benchAppend(b, 8) }
