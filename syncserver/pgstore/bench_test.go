package pgstore_test

import (
	"testing"

	"github.com/livestore-go/livestore/syncserver/pgstore/pgtest"
	"github.com/livestore-go/livestore/syncserver/storagetest"
)

// BenchmarkAppend1 appends batches of 100 events to one store, each
// awaited.
func BenchmarkAppend1(b *testing.B) {
	storagetest.BenchAppend(b, pgtest.Open(b, pgtest.Schema(b)), 1, 100, 100)
}

// BenchmarkAppend8 appends batches of 100 events to 8 stores at once.
func BenchmarkAppend8(b *testing.B) {
	storagetest.BenchAppend(b, pgtest.Open(b, pgtest.Schema(b)), 8, 100, 100)
}
