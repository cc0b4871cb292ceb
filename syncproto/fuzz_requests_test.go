package syncproto_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/livestore-go/livestore/syncproto"
)

// FuzzDecodePushRequest checks that any push payload either fails to decode
// or survives an encode/decode round trip unchanged (args compared as JSON
// values), and never panics. Seeds: testdata/fuzz/FuzzDecodePushRequest.
func FuzzDecodePushRequest(f *testing.F) {
	f.Add([]byte(`{"storeId":"s","batch":[{"name":"v1.A","args":{"id":"x"},"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"}],"backendId":{"_tag":"None"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := syncproto.DecodePushRequest(data)
		if err != nil {
			return
		}
		enc, err := syncproto.Marshal(p)
		if err != nil {
			t.Fatalf("encode %#v: %v", p, err)
		}
		again, err := syncproto.DecodePushRequest(enc)
		if err != nil {
			t.Fatalf("decode re-encoded %s: %v", enc, err)
		}
		if !jsonEqual(p.Payload, again.Payload) || len(p.Batch) != len(again.Batch) || p.StoreID != again.StoreID ||
			!reflect.DeepEqual(p.BackendID, again.BackendID) {
			t.Fatalf("round trip changed %s -> %s", data, enc)
		}
		for i := range p.Batch {
			a, b := p.Batch[i], again.Batch[i]
			if !jsonEqual(a.Args, b.Args) {
				t.Fatalf("args changed: %s -> %s", a.Args, b.Args)
			}
			a.Args, b.Args = nil, nil
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("event changed: %#v -> %#v", a, b)
			}
		}
		// The checks must not panic on whatever decoded.
		_ = syncproto.CheckChain(p.Batch)
		_ = syncproto.CheckBatch(p.Batch, syncproto.DefaultMaxArgsDepth)
		for i := range p.Batch {
			_ = syncproto.CheckEventSize(i, &p.Batch[i], 200)
		}
	})
}

// FuzzDecodePullRequest: any pull payload fails to decode or round-trips.
// Seeds: testdata/fuzz/FuzzDecodePullRequest.
func FuzzDecodePullRequest(f *testing.F) {
	f.Add([]byte(`{"storeId":"s","live":true,"cursor":{"_tag":"Some","value":{"backendId":"b","eventSequenceNumber":3}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := syncproto.DecodePullRequest(data)
		if err != nil {
			return
		}
		enc, err := syncproto.Marshal(p)
		if err != nil {
			t.Fatalf("encode %#v: %v", p, err)
		}
		again, err := syncproto.DecodePullRequest(enc)
		if err != nil {
			t.Fatalf("decode re-encoded %s: %v", enc, err)
		}
		if !jsonEqual(p.Payload, again.Payload) {
			t.Fatalf("payload changed: %s -> %s", p.Payload, again.Payload)
		}
		p.Payload, again.Payload = nil, nil
		if !reflect.DeepEqual(p, again) {
			t.Fatalf("round trip changed %#v -> %#v", p, again)
		}
	})
}

// FuzzDecodePullResponses covers what a client does with a hostile server's
// chunk: decode the values array into pages, or fail; never panic. Pages
// that decode survive a round trip. Seeds:
// testdata/fuzz/FuzzDecodePullResponses.
func FuzzDecodePullResponses(f *testing.F) {
	f.Add([]byte(`[{"batch":[{"eventEncoded":{"name":"v1.A","args":{},"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"},"metadata":{"_tag":"Some","value":{"_tag":"SyncMessage.SyncMetadata","createdAt":"2026-01-01T00:00:00.000Z"}}}],"pageInfo":{"_tag":"NoMore"},"backendId":"b"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		pages, err := syncproto.DecodePullResponses(data)
		if err != nil {
			return
		}
		enc, err := json.Marshal(pages)
		if err != nil {
			t.Fatalf("encode %#v: %v", pages, err)
		}
		again, err := syncproto.DecodePullResponses(enc)
		if err != nil {
			t.Fatalf("decode re-encoded %s: %v", enc, err)
		}
		if len(again) != len(pages) {
			t.Fatalf("%d pages became %d", len(pages), len(again))
		}
		for i := range pages {
			if pages[i].PageInfo != again[i].PageInfo || pages[i].BackendID != again[i].BackendID || len(pages[i].Batch) != len(again[i].Batch) {
				t.Fatalf("page %d changed: %s -> %s", i, data, enc)
			}
		}
	})
}
