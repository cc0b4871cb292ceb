package syncproto

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// fastSeeds are messages of the shapes the fast paths take, and near misses
// they must leave to the general decoder.
var fastSeeds = []string{
	`{"_tag":"Request","id":"3","tag":"SyncWsRpc.Push","payload":{"storeId":"s","batch":[{"name":"v1.A","args":{"id":"x","n":[1,2.5e3,-0,true,null,"\u00e9\n"]},"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"}],"backendId":{"_tag":"None"}},"headers":[]}`,
	`{"_tag":"Request","id":"0","tag":"SyncWsRpc.Pull","payload":{"storeId":"s","live":true,"cursor":{"_tag":"None"}},"headers":[],"traceId":"t","spanId":"p","sampled":true}`,
	` { "headers" : [ ] , "payload" : null , "tag" : "x" , "id" : "1" , "_tag" : "Request" } `,
	`{"_tag":"Request","id":"1","tag":"x","headers":[["a","b"]]}`,
	`{"_tag":"Request","id":1,"tag":"x"}`,
	`{"_tag":"Request","id":"1"}`,
	`{"_tag":"Request","id":"1","tag":"x","tag":"y"}`,
	`{"_tag":"Request","Id":"1","tag":"x"}`,
	`{"_tag":"Request","id":"1\"","tag":"x"}`,
	`{"_tag":"Request","id":"1","tag":"x","sampled":null}`,
	`{"_tag":"Request","id":"1","tag":"x","payload":{"a":}}`,
	`{"_tag":"Request","id":"1","tag":"x"} x`,
	`{"storeId":"s","batch":[],"backendId":{"_tag":"Some","value":"b"}}`,
	`{"storeId":"s","payload":{"k":1},"batch":[{"sessionId":"s","clientId":"c","parentSeqNum":4,"seqNum":5,"args":null,"name":"n"}],"backendId":{"_tag":"None"}}`,
	`{"storeId":"s","batch":[{"name":"n","seqNum":5,"parentSeqNum":4,"clientId":"c","sessionId":"s"}],"backendId":{"_tag":"None"}}`,
	`{"storeId":"s","batch":[{"name":"n","seqNum":5.0,"parentSeqNum":4,"clientId":"c","sessionId":"s"}],"backendId":{"_tag":"None"}}`,
	`{"storeId":"s","batch":[{"name":"n","seqNum":99999999999999999999,"parentSeqNum":4,"clientId":"c","sessionId":"s"}],"backendId":{"_tag":"None"}}`,
	`{"storeId":"s","batch":[{"name":"n","seqNum":-7,"parentSeqNum":4,"clientId":"c","sessionId":"s","extra":1}],"backendId":{"_tag":"None"}}`,
	`{"storeId":"s","batch":[{"name":"n","seqNum":1,"parentSeqNum":0,"clientId":"c"}],"backendId":{"_tag":"None"}}`,
	`{"storeId":"s","batch":[{"name":"n","args":[1,],"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"}],"backendId":{"_tag":"None"}}`,
	`{"storeId":"s","batch":[],"backendId":{"_tag":"Some","value":null}}`,
	`{"storeId":"s","batch":[],"backendId":{"_tag":"None","value":"x"}}`,
	`{"storeId":"s","batch":[]}`,
	`{"storeId":"s","batch":null,"backendId":{"_tag":"None"}}`,
}

// FuzzFastDecode checks that whatever the fast paths decode, the general
// decoders decode to the same values: the fast paths change speed, not
// results. Seeds: fastSeeds and the corpora of FuzzDecodeClientMessage and
// FuzzDecodePushRequest.
func FuzzFastDecode(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	for _, dir := range []string{"FuzzDecodeClientMessage", "FuzzDecodePushRequest"} {
		for _, v := range corpus(f, dir) {
			f.Add(v)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if req, ok := fastRequest(data); ok {
			msg, err := decodeClientMessage(data)
			if err != nil || !reflect.DeepEqual(msg, ClientMessage(req)) {
				t.Fatalf("fast request %#v; general decoder %#v, %v", req, msg, err)
			}
		}
		if p, ok := fastPushRequest(data); ok {
			want, err := decodePushRequest(data)
			if err != nil || !reflect.DeepEqual(p, want) {
				t.Fatalf("fast push %#v; general decoder %#v, %v", p, want, err)
			}
		}
	})
}

// corpus reads the []byte values of a fuzz corpus directory.
func corpus(f *testing.F, name string) [][]byte {
	paths, err := filepath.Glob(filepath.Join("testdata", "fuzz", name, "*"))
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "[]byte("); ok {
				if s, err := strconv.Unquote(strings.TrimSuffix(v, ")")); err == nil {
					out = append(out, []byte(s))
				}
			}
		}
	}
	return out
}

// The fast paths take the usual messages: they are what the server's
// speed depends on.
func TestFastPathsTakeUsualMessages(t *testing.T) {
	for _, s := range fastSeeds[:3] {
		if _, ok := fastRequest([]byte(s)); !ok {
			t.Errorf("fast path refused %s", s)
		}
	}
	push := `{"storeId":"s","batch":[{"name":"v1.A","args":{"id":"x"},"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"}],"backendId":{"_tag":"Some","value":"b"}}`
	if _, ok := fastPushRequest([]byte(push)); !ok {
		t.Errorf("fast path refused %s", push)
	}
}

// pushMessage is a push request of n events with args of about 100 bytes.
func pushMessage(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"_tag":"Request","id":"7","tag":"SyncWsRpc.Push","payload":{"storeId":"store","batch":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"name":"v1.TodoCreated","args":{"id":"t` + strconv.Itoa(i) + `","text":"` + strings.Repeat("x", 80) + `"},"seqNum":` + strconv.Itoa(i+1) + `,"parentSeqNum":` + strconv.Itoa(i) + `,"clientId":"client","sessionId":"session"}`)
	}
	b.WriteString(`],"backendId":{"_tag":"Some","value":"backend"}},"headers":[]}`)
	return []byte(b.String())
}

func benchmarkPushDecode(b *testing.B, decodeMsg func([]byte) (ClientMessage, error), decodePush func(json.RawMessage) (PushRequest, error)) {
	data := pushMessage(100)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		msg, err := decodeMsg(data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := decodePush(msg.(*Request).Payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPushDecode decodes a push of 100 events as the server does.
func BenchmarkPushDecode(b *testing.B) {
	benchmarkPushDecode(b, DecodeClientMessage, DecodePushRequest)
}

// BenchmarkPushDecodeGeneral is BenchmarkPushDecode without the fast paths.
func BenchmarkPushDecodeGeneral(b *testing.B) {
	benchmarkPushDecode(b, decodeClientMessage, decodePushRequest)
}
