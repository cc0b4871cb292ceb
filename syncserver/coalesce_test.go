package syncserver

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

// livePages encodes n events after seq, with args, as one live page.
func livePages(t *testing.T, after int64, n int, args json.RawMessage) []byte {
	t.Helper()
	events := make([]StoredEvent, n)
	for i := range events {
		seq := after + int64(i) + 1
		events[i] = StoredEvent{
			Event:     syncproto.Event{Name: "v1.E", SeqNum: seq, ParentSeqNum: seq - 1, ClientID: "c", SessionID: "s", Args: args},
			CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		}
	}
	pages, err := encodePages(events, "b", noMore)
	if err != nil || len(pages) != 1 {
		t.Fatalf("encode: %d pages, %v", len(pages), err)
	}
	return pages[0]
}

// decodeChunk returns the request id and the events' seqNums of each page
// of a Chunk.
func decodeChunk(t *testing.T, chunk []byte) string {
	t.Helper()
	msg, err := syncproto.DecodeServerMessage(chunk)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := msg.(*syncproto.Chunk)
	if !ok {
		t.Fatalf("not a chunk: %s", chunk)
	}
	out := c.RequestID + ":"
	for _, v := range c.Values {
		pages, err := syncproto.DecodePullResponses([]byte("[" + string(v) + "]"))
		if err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf(" page %d-%d (%d)", pages[0].Batch[0].Event.SeqNum, pages[0].Batch[len(pages[0].Batch)-1].Event.SeqNum, len(pages[0].Batch))
	}
	return out
}

// Live pages queued one after the other for one pull go out as one page,
// within the page limits; other messages and other pulls' pages keep
// their place.
func TestLivePagesMerge(t *testing.T) {
	live := func(id string, after int64, n int) outMsg {
		return outMsg{requestID: id, page: livePages(t, after, n, nil), events: n}
	}
	big := json.RawMessage(`"` + strings.Repeat("x", syncproto.MaxPayloadBytes/2) + `"`)
	large := func(after int64) outMsg {
		return outMsg{requestID: "1", page: livePages(t, after, 1, big), events: 1}
	}
	catchUp := outMsg{requestID: "1", page: livePages(t, 0, 2, nil)}
	msgs := []outMsg{
		catchUp,
		live("1", 2, 10), live("1", 12, 40), live("1", 52, 50), // 100 events: one page
		live("1", 102, 1), // would make 101
		live("2", 102, 3), // another pull
		{data: []byte(`{"_tag":"Pong"}`)},
		live("1", 103, 5),
		large(108), large(109), // together over the byte cap
	}
	want := []string{
		"1: page 1-2 (2)",
		"1: page 3-102 (100)",
		"1: page 103-103 (1)",
		"2: page 103-105 (3)",
		"pong",
		"1: page 104-109 (6)",
		"1: page 110-110 (1)",
	}
	var got []string
	var buf []byte
	var pages [][]byte
	for i := 0; i < len(msgs); {
		if msgs[i].page == nil {
			got = append(got, "pong")
			i++
			continue
		}
		var n int
		buf, pages, n = appendChunk(buf[:0], pages, msgs[i:])
		got = append(got, decodeChunk(t, buf))
		i += n
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("chunks:\n%q\nwant\n%q", got, want)
	}
}
