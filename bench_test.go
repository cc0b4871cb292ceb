package livestore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/memsync"
)

// durabilities are the settings the commit benchmarks run with.
var durabilities = []struct {
	name string
	d    livestore.Durability
}{{"full", livestore.DurabilityFull}, {"process", livestore.DurabilityProcess}}

// openBenchStore opens a directory store of the todo app with durability d.
func openBenchStore(b *testing.B, d livestore.Durability) (*todoApp, *livestore.Store) {
	b.Helper()
	a := newTodoApp(b)
	s, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: b.TempDir(), Durability: d})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return a, s
}

func BenchmarkCommitSingle(b *testing.B) {
	for _, d := range durabilities {
		b.Run(d.name, func(b *testing.B) {
			a, s := openBenchStore(b, d.d)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := s.Commit(ctx, a.created.New(todoCreated{ID: fmt.Sprint(i), Text: "buy milk"})); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCommitConcurrent64 is BenchmarkCommitSingle with 64 goroutines
// committing single events at once: concurrent commits share transactions
// (group commit), so one flush makes many of them durable. ns/op is per
// commit.
func BenchmarkCommitConcurrent64(b *testing.B) {
	for _, d := range durabilities {
		b.Run(d.name, func(b *testing.B) {
			a, s := openBenchStore(b, d.d)
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			groups0, calls0 := livestore.GroupStats(s)
			b.ResetTimer()
			for g := 0; g < 64; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						if err := s.Commit(ctx, a.created.New(todoCreated{ID: fmt.Sprint(i), Text: "buy milk"})); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
			groups, calls := livestore.GroupStats(s)
			b.ReportMetric(float64(calls-calls0)/float64(groups-groups0), "commits/group")
		})
	}
}

// BenchmarkCommitBatch1000 commits batches of 1,000 events, in a local-only
// store and in a store with sync configured (offline), which also records
// the changesets a rebase needs.
func BenchmarkCommitBatch1000(b *testing.B) {
	b.Run("local", func(b *testing.B) { benchBatch(b, nil) })
	b.Run("sync", func(b *testing.B) {
		link := memsync.NewServer().NewLink()
		link.SetOnline(false)
		benchBatch(b, &livestore.SyncOptions{Backend: link, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	})
}

func benchBatch(b *testing.B, sync *livestore.SyncOptions) {
	a := newTodoApp(b)
	s, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: b.TempDir(), Sync: sync})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	batch := make([]livestore.Event, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range batch {
			batch[j] = a.created.New(todoCreated{ID: fmt.Sprintf("%d-%d", i, j), Text: "buy milk"})
		}
		if err := s.Commit(ctx, batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}

func seedTodos(b *testing.B, s *livestore.Store, a *todoApp, n int) {
	b.Helper()
	batch := make([]livestore.Event, 0, 1000)
	for i := 0; i < n; i++ {
		batch = append(batch, a.created.New(todoCreated{ID: fmt.Sprintf("t%06d", i), Text: "some todo text"}))
		if len(batch) == cap(batch) || i == n-1 {
			mustCommit(b, s, batch...)
			batch = batch[:0]
		}
	}
}

func BenchmarkQueryPoint(b *testing.B) {
	a := newTodoApp(b)
	s := openStore(b, a.schema, b.TempDir())
	seedTodos(b, s, a, 10000)
	ctx := context.Background()
	q := a.todos.Where(livestore.Eq("id", "t005000"))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rows, err := livestore.Query[todo](ctx, s, q)
		if err != nil || len(rows) != 1 {
			b.Fatal(err, len(rows))
		}
	}
}

func BenchmarkQuery10kRows(b *testing.B) {
	a := newTodoApp(b)
	s := openStore(b, a.schema, b.TempDir())
	seedTodos(b, s, a, 10000)
	ctx := context.Background()
	q := a.todos.Select()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rows, err := livestore.Query[todo](ctx, s, q)
		if err != nil || len(rows) != 10000 {
			b.Fatal(err, len(rows))
		}
	}
}

func benchOpen(b *testing.B, rebuild bool) {
	a := newTodoApp(b)
	dir := b.TempDir()
	s, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	seedTodos(b, s, a, 100000)
	s.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		schema := a.schema
		if rebuild {
			// Alternate table definitions so every Open rebuilds state.
			schema = newTodoApp(b, livestore.Integer(fmt.Sprintf("extra%d", i%2)).Default(0)).schema
		}
		s, err := livestore.Open(context.Background(), schema, livestore.Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

func BenchmarkOpen100k(b *testing.B)        { benchOpen(b, false) }
func BenchmarkOpen100kRebuild(b *testing.B) { benchOpen(b, true) }
