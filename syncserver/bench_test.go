package syncserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

func benchDial(b *testing.B, url, storeID string) *websocket.Conn {
	b.Helper()
	ws, _, err := websocket.Dial(context.Background(), url+"/?storeId="+storeID+"&transport=ws", nil)
	if err != nil {
		b.Fatal(err)
	}
	ws.SetReadLimit(16 << 20)
	b.Cleanup(func() { _ = ws.CloseNow() })
	return ws
}

func benchWrite(b *testing.B, ws *websocket.Conn, v any) {
	b.Helper()
	data, err := syncproto.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	if err := ws.Write(context.Background(), websocket.MessageText, data); err != nil {
		b.Fatal(err)
	}
}

func benchRequest(b *testing.B, id, tag string, payload any) *syncproto.Request {
	b.Helper()
	p, err := syncproto.Marshal(payload)
	if err != nil {
		b.Fatal(err)
	}
	return &syncproto.Request{ID: id, Tag: tag, Payload: json.RawMessage(p)}
}

// benchRead reads messages until one of tag for requestID arrives.
func benchRead(b *testing.B, ws *websocket.Conn, tag, requestID string) []byte {
	b.Helper()
	for {
		_, data, err := ws.Read(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		m, err := syncproto.DecodeServerMessage(data)
		if err != nil {
			b.Fatal(err)
		}
		switch m := m.(type) {
		case *syncproto.Chunk:
			if tag == "Chunk" && m.RequestID == requestID {
				return data
			}
		case *syncproto.Exit:
			if m.RequestID == requestID {
				if err := m.Err(); err != nil {
					b.Fatal(err)
				}
				if tag == "Exit" {
					return data
				}
			}
		}
	}
}

func benchEvents(after int64, n, argBytes int) []syncproto.Event {
	text := strings.Repeat("x", argBytes)
	out := make([]syncproto.Event, n)
	for i := range out {
		seq := after + int64(i) + 1
		out[i] = syncproto.Event{Name: "v1.TodoCreated", Args: json.RawMessage(fmt.Sprintf(`{"id":"t%d","text":%q}`, seq, text)),
			SeqNum: seq, ParentSeqNum: seq - 1, ClientID: "bench", SessionID: "s-bench"}
	}
	return out
}

// BenchmarkLiveFanout pushes batches of 100 events to one store followed by
// 50 live pulls; an iteration ends when every pull has received the batch.
func BenchmarkLiveFanout(b *testing.B) {
	const followers, batch = 50, 100
	url := startServer(b, syncserver.Options{}).url
	pusher := benchDial(b, url, "fan")
	live := make([]*websocket.Conn, followers)
	for i := range live {
		live[i] = benchDial(b, url, "fan")
		benchWrite(b, live[i], benchRequest(b, "0", syncproto.TagPull, syncproto.PullRequest{StoreID: "fan", Live: true}))
		benchRead(b, live[i], "Chunk", "0") // the empty first page
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		id := fmt.Sprint(n)
		evs := benchEvents(int64(n*batch), batch, 100)
		benchWrite(b, pusher, benchRequest(b, id, syncproto.TagPush, syncproto.PushRequest{StoreID: "fan", Batch: evs}))
		benchRead(b, pusher, "Exit", id)
		for _, ws := range live {
			benchRead(b, ws, "Chunk", "0")
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch*followers)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkPullBacklog pulls a store of 5,000 events from the start, one
// acknowledged page at a time.
func BenchmarkPullBacklog(b *testing.B) {
	const events, batch = 5000, 100
	url := startServer(b, syncserver.Options{}).url
	ws := benchDial(b, url, "backlog")
	for i := 0; i < events/batch; i++ {
		id := fmt.Sprint(i)
		benchWrite(b, ws, benchRequest(b, id, syncproto.TagPush, syncproto.PushRequest{StoreID: "backlog", Batch: benchEvents(int64(i*batch), batch, 100)}))
		benchRead(b, ws, "Exit", id)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		id := fmt.Sprint(events + n)
		benchWrite(b, ws, benchRequest(b, id, syncproto.TagPull, syncproto.PullRequest{StoreID: "backlog"}))
		for got := 0; got < events; {
			data := benchRead(b, ws, "Chunk", id)
			_, values, _ := syncproto.CutChunk(data)
			pages, err := syncproto.DecodePullResponses(values)
			if err != nil {
				b.Fatal(err)
			}
			got += len(pages[0].Batch)
			benchWrite(b, ws, &syncproto.Ack{RequestID: id})
		}
		benchRead(b, ws, "Exit", id)
	}
}
