package syncserver

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

// BenchmarkEncodeLivePages encodes a pushed batch of 100 events as the pages
// delivered to live pulls.
func BenchmarkEncodeLivePages(b *testing.B) {
	createdAt := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	text := strings.Repeat("x", 100)
	events := make([]StoredEvent, 100)
	for i := range events {
		seq := int64(i + 1)
		events[i] = StoredEvent{Event: syncproto.Event{Name: "v1.TodoCreated", Args: json.RawMessage(fmt.Sprintf(`{"id":"t%d","text":%q}`, seq, text)),
			SeqNum: seq, ParentSeqNum: seq - 1, ClientID: "bench", SessionID: "s-bench"}, CreatedAt: createdAt}
	}
	b.ReportAllocs()
	for n := 0; n < b.N; n++ {
		if _, err := encodePages(events, "backend-0123456789", noMore); err != nil {
			b.Fatal(err)
		}
	}
}
