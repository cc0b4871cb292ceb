package syncproto_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/livestore-go/livestore/syncproto"
)

// FuzzDecodeClientMessage checks that any input either decodes or fails with
// a *MessageError, never panics, that only valid UTF-8 decodes, and that a
// decoded message survives an encode/decode round trip. Seeds live in testdata/fuzz/FuzzDecodeClientMessage.
func FuzzDecodeClientMessage(f *testing.F) {
	f.Add([]byte(`{"_tag":"Ping"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := syncproto.DecodeClientMessage(data)
		if err != nil {
			var me *syncproto.MessageError
			if !errors.As(err, &me) {
				t.Fatalf("error %v is not a *MessageError", err)
			}
			return
		}
		if !utf8.Valid(data) {
			t.Fatalf("invalid UTF-8 %q decoded as %#v", data, msg)
		}
		enc, err := syncproto.Marshal(msg)
		if err != nil {
			t.Fatalf("encode %#v: %v", msg, err)
		}
		again, err := syncproto.DecodeClientMessage(enc)
		if err != nil {
			t.Fatalf("decode re-encoded %s: %v", enc, err)
		}
		if req, ok := msg.(*syncproto.Request); ok {
			// Payloads are compared as JSON values; encoding compacts them.
			req2 := again.(*syncproto.Request)
			if !jsonEqual(req.Payload, req2.Payload) {
				t.Fatalf("payload changed: %s -> %s", req.Payload, req2.Payload)
			}
			r1, r2 := *req, *req2
			r1.Payload, r2.Payload = nil, nil
			if r1.Headers == nil {
				r1.Headers = [][2]string{}
			}
			if !reflect.DeepEqual(r1, r2) {
				t.Fatalf("round trip changed request: %#v -> %#v", r1, r2)
			}
			if req.Tag == syncproto.TagPush {
				_, _ = syncproto.DecodePushRequest(req.Payload)
			}
			if req.Tag == syncproto.TagPull {
				_, _ = syncproto.DecodePullRequest(req.Payload)
			}
			return
		}
		if !reflect.DeepEqual(msg, again) {
			t.Fatalf("round trip changed message: %#v -> %#v", msg, again)
		}
	})
}

func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 {
		a = json.RawMessage("null")
	}
	if len(b) == 0 {
		b = json.RawMessage("null")
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}
