package syncproto_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

// A server encodes a pushed batch once, as pull pages, and sends the same
// page bytes to every live pull under that pull's request id.
func ExamplePageEncoder() {
	enc, err := syncproto.NewPageEncoder("backend-1")
	if err != nil {
		panic(err)
	}
	stored := time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)
	batch := []syncproto.Event{
		{Name: "v1.TodoCreated", Args: json.RawMessage(`{"id":"a"}`), SeqNum: 1, ParentSeqNum: 0, ClientID: "c1", SessionID: "s1"},
		{Name: "v1.TodoCompleted", Args: json.RawMessage(`{"id":"a"}`), SeqNum: 2, ParentSeqNum: 1, ClientID: "c1", SessionID: "s1"},
	}
	items := make([][]byte, len(batch))
	for i := range batch {
		if items[i], err = enc.Item(&batch[i], stored); err != nil {
			panic(err)
		}
	}
	pages, err := enc.Pages(items, func(sent, total int) syncproto.PageInfo { return syncproto.PageInfo{Kind: syncproto.NoMore} })
	if err != nil {
		panic(err)
	}
	for _, requestID := range []string{"0", "7"} {
		fmt.Printf("%s\n", syncproto.AppendChunk(nil, requestID, pages[0]))
	}
	// Output:
	// {"_tag":"Chunk","requestId":"0","values":[{"batch":[{"eventEncoded":{"name":"v1.TodoCreated","args":{"id":"a"},"seqNum":1,"parentSeqNum":0,"clientId":"c1","sessionId":"s1"},"metadata":{"_tag":"Some","value":{"_tag":"SyncMessage.SyncMetadata","createdAt":"2026-01-02T03:04:05.678Z"}}},{"eventEncoded":{"name":"v1.TodoCompleted","args":{"id":"a"},"seqNum":2,"parentSeqNum":1,"clientId":"c1","sessionId":"s1"},"metadata":{"_tag":"Some","value":{"_tag":"SyncMessage.SyncMetadata","createdAt":"2026-01-02T03:04:05.678Z"}}}],"pageInfo":{"_tag":"NoMore"},"backendId":"backend-1"}]}
	// {"_tag":"Chunk","requestId":"7","values":[{"batch":[{"eventEncoded":{"name":"v1.TodoCreated","args":{"id":"a"},"seqNum":1,"parentSeqNum":0,"clientId":"c1","sessionId":"s1"},"metadata":{"_tag":"Some","value":{"_tag":"SyncMessage.SyncMetadata","createdAt":"2026-01-02T03:04:05.678Z"}}},{"eventEncoded":{"name":"v1.TodoCompleted","args":{"id":"a"},"seqNum":2,"parentSeqNum":1,"clientId":"c1","sessionId":"s1"},"metadata":{"_tag":"Some","value":{"_tag":"SyncMessage.SyncMetadata","createdAt":"2026-01-02T03:04:05.678Z"}}}],"pageInfo":{"_tag":"NoMore"},"backendId":"backend-1"}]}
}

// The answers of a push: stored, or refused with a tagged error.
func ExampleExitPushed() {
	ok, _ := syncproto.Marshal(syncproto.ExitPushed("3"))
	ahead, _ := syncproto.Marshal(syncproto.ExitFail("4", &syncproto.ServerAheadError{MinimumExpectedNum: 7, ProvidedNum: 5}))
	fmt.Printf("%s\n%s\n", ok, ahead)
	// Output:
	// {"_tag":"Exit","requestId":"3","exit":{"_tag":"Success","value":{}}}
	// {"_tag":"Exit","requestId":"4","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"ServerAheadError","minimumExpectedNum":7,"providedNum":5}}}}
}

// A message the server cannot route to a request is answered with a Defect.
func ExampleStringDefect() {
	b, _ := syncproto.Marshal(syncproto.StringDefect("Unknown request tag: SyncWsRpc.Nope"))
	fmt.Printf("%s\n", b)
	// Output:
	// {"_tag":"Defect","defect":"Unknown request tag: SyncWsRpc.Nope"}
}

func ExampleFormatCreatedAt() {
	fmt.Println(syncproto.FormatCreatedAt(time.Date(2026, 1, 2, 4, 4, 5, 678_900_000, time.FixedZone("CET", 3600))))
	// Output:
	// 2026-01-02T03:04:05.678Z
}
