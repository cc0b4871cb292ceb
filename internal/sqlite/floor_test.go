package sqlite

import (
	"path/filepath"
	"testing"
)

// BenchmarkFloorInsertCommit is the physical floor of a durable commit: one
// row inserted and committed with synchronous=FULL in WAL mode.
func BenchmarkFloorInsertCommit(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		b.Run(sync, func(b *testing.B) {
			c, err := Open(filepath.Join(b.TempDir(), "f.db"), OpenOptions{Synchronous: sync})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if err := c.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := c.Begin(); err != nil {
					b.Fatal(err)
				}
				if err := c.Exec("INSERT INTO t (v) VALUES (?)", "buy milk"); err != nil {
					b.Fatal(err)
				}
				if err := c.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
