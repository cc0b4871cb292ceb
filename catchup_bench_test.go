package livestore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/memsync"
	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
)

// BenchmarkCatchUp20kWith5kPending: a client that committed 5,000 events
// offline joins a store whose server (the real one, over loopback) holds
// 20,000 events. Timed: from Open until the client has applied the server's
// events and rebased its own on top of them.
func BenchmarkCatchUp20kWith5kPending(b *testing.B) {
	const upstream, pending = 20_000, 5_000
	a := newTodoApp(b)
	url, storage := startSyncServer(b)
	ctx := context.Background()
	offline := memsync.NewServer().NewLink()
	offline.SetOnline(false)
	for i := range b.N {
		b.StopTimer()
		storeID := fmt.Sprint("catchup", i)
		for from := 0; from < upstream; from += 100 {
			batch := make([]syncproto.Event, 100)
			for j := range batch {
				seq := int64(from + j + 1)
				batch[j] = syncproto.Event{Name: "v1.TodoCreated",
					Args:   json.RawMessage(fmt.Sprintf(`{"id":"up%d","text":"from the server"}`, seq)),
					SeqNum: seq, ParentSeqNum: seq - 1, ClientID: "other", SessionID: "other-s"}
			}
			if err := storage.Append(ctx, storeID, batch, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
		dir := b.TempDir()
		s, err := livestore.Open(ctx, a.schema, livestore.Options{Dir: dir, StoreID: storeID, Sync: &livestore.SyncOptions{Backend: offline}})
		if err != nil {
			b.Fatal(err)
		}
		for from := 0; from < pending; from += 500 {
			evs := make([]livestore.Event, 500)
			for j := range evs {
				evs[j] = a.created.New(todoCreated{ID: fmt.Sprint("mine", from+j), Text: "offline"})
			}
			mustCommit(b, s, evs...)
		}
		s.Close()

		b.StartTimer()
		s, err = livestore.Open(ctx, a.schema, livestore.Options{Dir: dir, StoreID: storeID,
			Sync: &livestore.SyncOptions{Backend: syncclient.WebSocketBackend(url, syncclient.Options{})}})
		if err != nil {
			b.Fatal(err)
		}
		var st livestore.SyncStatus
		for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(time.Millisecond) {
			if st, err = s.SyncStatus(ctx); err != nil {
				b.Fatal(err)
			}
			if st.UpstreamHead >= upstream && st.LocalHead.Global >= upstream+pending {
				break
			}
			if st.Stopped || time.Now().After(deadline) {
				b.Fatalf("not caught up: %+v", st)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(st.LocalHead.RebaseGeneration), "rebases")
		s.Close()
		b.StartTimer()
	}
}
