package storagetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// BenchAppend measures Append on s: stores writers, each appending batches
// of batch events (with about argBytes bytes of args each) to a store of
// its own, one batch after the other, as pushes of one client per store
// arrive. b.N is the number of batches in all; the events/s metric is the
// total rate.
func BenchAppend(b *testing.B, s syncserver.Storage, stores, batch, argBytes int) {
	ctx := context.Background()
	run := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	pad := strings.Repeat("x", argBytes)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, stores)
	cpu0 := processCPU()
	b.ResetTimer()
	for w := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			storeID := fmt.Sprintf("%s-%d", run, w)
			var head int64
			for next.Add(1) <= int64(b.N) {
				evs := make([]syncproto.Event, batch)
				for i := range evs {
					seq := head + int64(i) + 1
					evs[i] = syncproto.Event{Name: "v1.Bench", Args: json.RawMessage(`{"p":"` + pad + `"}`),
						SeqNum: seq, ParentSeqNum: seq - 1, ClientID: "bench", SessionID: "s"}
				}
				if err := s.Append(ctx, storeID, evs, time.Now()); err != nil {
					errs <- err
					return
				}
				head += int64(batch)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	cpu := processCPU() - cpu0
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*batch), "cpu-ns/event")
}

// processCPU is the CPU time the process has used (user and system): on a
// machine shared with other work it measures cost where wall time does not.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
