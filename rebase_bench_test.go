package livestore

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/livestore-go/livestore/syncproto"
)

// idleBackend never connects, so the sync processor stays out of the way
// of a benchmark that drives applyPage itself.
type idleBackend struct{}

func (idleBackend) Connect(ctx context.Context, _ string, _ json.RawMessage) (SyncConn, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

type benchArgs struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// BenchmarkRebase1000over1000 rolls back 1,000 pending events, applies 1,000
// upstream events and re-applies the 1,000 rebased ones, in one transaction.
func BenchmarkRebase1000over1000(b *testing.B) {
	items := NewTable("items", Text("id").PrimaryKey(), Text("text"))
	created := Synced[benchArgs]("v1.ItemCreated")
	schema, err := NewSchema(SchemaDef{
		Tables: []*Table{items},
		Events: []Definition{created},
		Materializers: []Materializer{Materialize(created, func(_ *MaterializeContext, a benchArgs) ([]Statement, error) {
			return []Statement{items.Insert(Values{"id": a.ID, "text": a.Text})}, nil
		})},
	})
	if err != nil {
		b.Fatal(err)
	}
	upstream := syncproto.PullResponse{BackendID: "bench"}
	for i := 1; i <= 1000; i++ {
		upstream.Batch = append(upstream.Batch, syncproto.PullItem{Event: syncproto.Event{
			Name: "v1.ItemCreated", Args: json.RawMessage(fmt.Sprintf(`{"id":"up%d","text":"remote"}`, i)),
			SeqNum: int64(i), ParentSeqNum: int64(i - 1), ClientID: "other", SessionID: "s"}})
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, err := Open(ctx, schema, Options{Dir: b.TempDir(), Sync: &SyncOptions{Backend: idleBackend{}}})
		if err != nil {
			b.Fatal(err)
		}
		batch := make([]Event, 1000)
		for j := range batch {
			batch[j] = created.New(benchArgs{ID: fmt.Sprint("mine", j), Text: "local"})
		}
		if err := s.Commit(ctx, batch...); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := s.syncer.applyPage(ctx, upstream); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if s.head.Global != 2000 || s.sync.Head != 1000 || s.head.RebaseGeneration != 1 {
			b.Fatalf("after rebase: head %s, upstream %d", s.head, s.sync.Head)
		}
		s.Close()
		b.StartTimer()
	}
}
