package livestore_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
)

type bump struct {
	N int `json:"n"`
}

// BenchmarkReactiveFanout measures, with 1,000 live point queries of which
// 10 read the written table, the time from Commit returning until all 10
// subscribers have run. The store is in memory so that the number is about
// reactivity, not fsync.
func BenchmarkReactiveFanout(b *testing.B) {
	for _, live := range []bool{false, true} {
		b.Run(fmt.Sprintf("unaffected990=%v", live), func(b *testing.B) { benchFanout(b, live) })
	}
}

func benchFanout(b *testing.B, withUnaffected bool) {
	var tables []*livestore.Table
	for i := 0; i < 100; i++ {
		tables = append(tables, livestore.NewTable(fmt.Sprintf("t%d", i), livestore.Text("k").PrimaryKey(), livestore.Integer("v")))
	}
	hot := tables[0]
	ev := livestore.Synced[bump]("v1.Bump")
	seed := livestore.Synced[bump]("v1.Seed")
	schema, err := livestore.NewSchema(livestore.SchemaDef{
		Tables: tables,
		Events: []livestore.Definition{ev, seed},
		Materializers: []livestore.Materializer{
			livestore.Materialize(ev, func(_ *livestore.MaterializeContext, a bump) ([]livestore.Statement, error) {
				return []livestore.Statement{hot.Update(livestore.Values{"v": a.N})}, nil
			}),
			livestore.Materialize(seed, func(_ *livestore.MaterializeContext, a bump) ([]livestore.Statement, error) {
				var out []livestore.Statement
				for _, t := range tables {
					for k := 0; k < 10; k++ {
						out = append(out, t.Insert(livestore.Values{"k": fmt.Sprint(k), "v": 0}))
					}
				}
				return out, nil
			}),
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	s := openStore(b, schema, "")
	ctx := context.Background()
	mustCommit(b, s, seed.New(bump{}))

	var wg sync.WaitGroup
	var target int
	var mu sync.Mutex
	var unsubs []func()
	for k := 0; k < 10; k++ {
		q := livestore.QueryDBFirst[kv](hot.Where(livestore.Eq("k", fmt.Sprint(k))), kv{})
		first := true
		un, err := livestore.Subscribe(ctx, s, q, func(r kv) {
			if first {
				first = false
				return
			}
			mu.Lock()
			hit := r.V == target
			mu.Unlock()
			if hit {
				wg.Done()
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		unsubs = append(unsubs, un)
	}
	if withUnaffected {
		for i := 1; i < 100; i++ {
			for k := 0; k < 10; k++ {
				q := livestore.QueryDBFirst[kv](tables[i].Where(livestore.Eq("k", fmt.Sprint(k))), kv{})
				un, err := livestore.Subscribe(ctx, s, q, func(kv) {})
				if err != nil {
					b.Fatal(err)
				}
				unsubs = append(unsubs, un)
			}
		}
	}
	defer func() {
		for _, u := range unsubs {
			u()
		}
	}()
	time.Sleep(50 * time.Millisecond) // let initial deliveries finish
	lat := make([]time.Duration, 0, b.N)
	var commitTotal time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mu.Lock()
		target = i + 1
		mu.Unlock()
		wg.Add(10)
		t0 := time.Now()
		if err := s.Commit(ctx, ev.New(bump{N: i + 1})); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		wg.Wait()
		commitTotal += t1.Sub(t0)
		lat = append(lat, time.Since(t1))
	}
	b.StopTimer()
	reportLatencies(b, lat, commitTotal)
}

// BenchmarkReactivePointFanout is workload 5 of bench/compare: 1,000 live
// point queries (Eq on the primary key) on one table; each commit changes
// one row, and an iteration lasts until that row's subscriber has run. Rows
// are invalidated by key, so each commit re-runs one query. "memory" is
// about reactivity alone; "dir" includes the durable commit.
func BenchmarkReactivePointFanout(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchPointFanout(b, "") })
	b.Run("dir", func(b *testing.B) { benchPointFanout(b, b.TempDir()) })
}

func benchPointFanout(b *testing.B, dir string) {
	const n = 1000
	items := livestore.NewTable("items", livestore.Text("k").PrimaryKey(), livestore.Integer("v"))
	set := livestore.Synced[kv]("v1.ItemSet")
	seed := livestore.Synced[bump]("v1.Seed")
	schema, err := livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{items},
		Events: []livestore.Definition{set, seed},
		Materializers: []livestore.Materializer{
			livestore.Materialize(set, func(_ *livestore.MaterializeContext, a kv) ([]livestore.Statement, error) {
				return []livestore.Statement{items.Update(livestore.Values{"v": a.V}).Where(livestore.Eq("k", a.K))}, nil
			}),
			livestore.Materialize(seed, func(_ *livestore.MaterializeContext, a bump) ([]livestore.Statement, error) {
				out := make([]livestore.Statement, a.N)
				for k := range out {
					out[k] = items.Insert(livestore.Values{"k": fmt.Sprint("item", k), "v": 0})
				}
				return out, nil
			}),
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	s := openStore(b, schema, dir)
	ctx := context.Background()
	mustCommit(b, s, seed.New(bump{N: n}))
	seen := make(chan int, 1)
	var initial sync.WaitGroup
	initial.Add(n)
	for k := 0; k < n; k++ {
		q := livestore.QueryDBFirst(items.Where(livestore.Eq("k", fmt.Sprint("item", k))), kv{})
		first := true
		un, err := livestore.Subscribe(ctx, s, q, func(r kv) {
			if first {
				first = false
				initial.Done()
				return
			}
			seen <- r.V
		})
		if err != nil {
			b.Fatal(err)
		}
		defer un()
	}
	initial.Wait()
	lat := make([]time.Duration, 0, b.N)
	var commitTotal time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := s.Commit(ctx, set.New(kv{K: fmt.Sprint("item", i%n), V: i + 1})); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if v := <-seen; v != i+1 {
			b.Fatalf("subscriber saw %d, want %d", v, i+1)
		}
		commitTotal += t1.Sub(t0)
		lat = append(lat, time.Since(t1))
	}
	b.StopTimer()
	reportLatencies(b, lat, commitTotal)
}

// reportLatencies reports the median and 99th percentile of lat (from
// Commit returning until the subscribers ran) and the mean commit time.
func reportLatencies(b *testing.B, lat []time.Duration, commitTotal time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(commitTotal.Microseconds())/float64(b.N), "commit-µs")
}
