package livestore_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
)

// tapProxy forwards WebSocket connections to a sync server and keeps the
// requests the clients send, decoded.
type tapProxy struct {
	upstream string // ws:// base URL of the server
	url      string // ws:// URL of the proxy

	mu       sync.Mutex
	requests []*syncproto.Request
}

func startTapProxy(t *testing.T, upstream string) *tapProxy {
	t.Helper()
	p := &tapProxy{upstream: upstream}
	hs := httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
	})
	p.url = "ws" + strings.TrimPrefix(hs.URL, "http")
	return p
}

func (p *tapProxy) serve(w http.ResponseWriter, r *http.Request) {
	up, _, err := websocket.Dial(r.Context(), p.upstream+r.URL.RequestURI(), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer up.CloseNow()
	down, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer down.CloseNow()
	up.SetReadLimit(-1)
	down.SetReadLimit(-1)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		relay(ctx, up, down, nil)
	}()
	relay(ctx, down, up, p.record)
	cancel()
	wg.Wait()
}

// relay copies messages from src to dst, showing each to see (if set),
// until either side fails or ctx ends.
func relay(ctx context.Context, src, dst *websocket.Conn, see func([]byte)) {
	for {
		typ, data, err := src.Read(ctx)
		if err != nil {
			return
		}
		if see != nil {
			see(data)
		}
		if err := dst.Write(ctx, typ, data); err != nil {
			return
		}
	}
}

func (p *tapProxy) record(data []byte) {
	if msg, err := syncproto.DecodeClientMessage(data); err == nil {
		if req, ok := msg.(*syncproto.Request); ok {
			p.mu.Lock()
			p.requests = append(p.requests, req)
			p.mu.Unlock()
		}
	}
}

func (p *tapProxy) tagged(tag string) []*syncproto.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*syncproto.Request
	for _, r := range p.requests {
		if r.Tag == tag {
			out = append(out, r)
		}
	}
	return out
}

// TestTraceContextCrossesTheWebSocket pushes through the real WebSocket
// client to the real server: with tracing, the push request carries the
// push span's context, in the commit's trace; without, the request has no
// trace fields, as before.
func TestTraceContextCrossesTheWebSocket(t *testing.T) {
	url, _ := startSyncServer(t)
	a := newTodoApp(t)
	for _, traced := range []bool{true, false} {
		proxy := startTapProxy(t, url)
		r := newOtelRig(t)
		opts := livestore.Options{Dir: t.TempDir(), StoreID: "untraced", Sync: &livestore.SyncOptions{
			Backend:    syncclient.WebSocketBackend(proxy.url, syncclient.Options{}),
			MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}}
		if traced {
			opts.TracerProvider = r.tp
			opts.StoreID = "traced"
		}
		s, err := livestore.Open(context.Background(), a.schema, opts)
		if err != nil {
			t.Fatal(err)
		}
		mustCommit(t, s, a.created.New(todoCreated{ID: "w"}))
		waitSynced(t, s, 1)
		s.Close()

		pushes := proxy.tagged(syncproto.TagPush)
		pulls := proxy.tagged(syncproto.TagPull)
		if len(pushes) != 1 || len(pulls) == 0 {
			t.Fatalf("traced %v: %d pushes, %d pulls", traced, len(pushes), len(pulls))
		}
		for _, pull := range pulls {
			if pull.TraceID != "" || pull.SpanID != "" || pull.Sampled != nil {
				t.Errorf("traced %v: the pull carries a trace: %+v", traced, pull)
			}
		}
		push := pushes[0]
		if !traced {
			if push.TraceID != "" || push.SpanID != "" || push.Sampled != nil {
				t.Errorf("untraced push carries a trace: %+v", push)
			}
			continue
		}
		commit := r.one(t, "livestore.commit", "livestore.event.count", attribute.IntValue(1))
		span := r.one(t, "livestore.sync.push", "livestore.seq.first", attribute.Int64Value(1))
		sc := span.SpanContext
		if push.TraceID != sc.TraceID().String() || push.SpanID != sc.SpanID().String() || push.Sampled == nil || !*push.Sampled {
			t.Errorf("push request trace %q/%q/%v, want the push span %v", push.TraceID, push.SpanID, push.Sampled, sc)
		}
		if sc.TraceID() != commit.SpanContext.TraceID() || span.Parent.SpanID() != commit.SpanContext.SpanID() {
			t.Errorf("push span %v is not the child of commit %v", span.Parent, commit.SpanContext)
		}
		if span.SpanKind != trace.SpanKindClient {
			t.Errorf("push span kind %v", span.SpanKind)
		}
	}
}
