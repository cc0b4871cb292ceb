package syncserver_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// tracedServer is a server whose spans end in an in-memory recorder and
// whose metrics are read on demand.
type tracedServer struct {
	*testServer
	spans   *tracetest.SpanRecorder
	metrics *sdkmetric.ManualReader
}

func startTracedServer(t *testing.T) *tracedServer {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	ts := startServer(t, syncserver.Options{TracerProvider: tp, MeterProvider: mp})
	return &tracedServer{testServer: ts, spans: rec, metrics: reader}
}

// waitSpans waits until the ended spans called name satisfy ok, and returns
// them. Spans end after the answers the client sees (a push's after its
// acknowledgement, a live page's once written), hence the wait.
func (ts *tracedServer) waitSpans(t *testing.T, name string, ok func([]sdktrace.ReadOnlySpan) bool) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got []sdktrace.ReadOnlySpan
		for _, s := range ts.spans.Ended() {
			if s.Name() == name {
				got = append(got, s)
			}
		}
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("spans %s after 10 s: %d, %v", name, len(got), got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func atLeast(n int) func([]sdktrace.ReadOnlySpan) bool {
	return func(s []sdktrace.ReadOnlySpan) bool { return len(s) >= n }
}

// wireTrace is a client's span context as the envelope carries it.
type wireTrace struct {
	traceID trace.TraceID
	spanID  trace.SpanID
}

func newWireTrace(t *testing.T, n byte) wireTrace {
	t.Helper()
	var w wireTrace
	for i := range w.traceID {
		w.traceID[i] = n + byte(i)
	}
	for i := range w.spanID {
		w.spanID[i] = 0xa0 + n + byte(i)
	}
	return w
}

// traced returns msg, a Request, with the envelope's trace fields set to w
// and sampled (nil: the fields are left out).
func traced(t *testing.T, msg string, w wireTrace, sampled *bool) string {
	t.Helper()
	m, err := syncproto.DecodeClientMessage([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	req := m.(*syncproto.Request)
	if sampled != nil {
		req.TraceID = hex.EncodeToString(w.traceID[:])
		req.SpanID = hex.EncodeToString(w.spanID[:])
		req.Sampled = sampled
	}
	return mustJSON(t, req)
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

// checkAttrs asserts that span s has the attributes in want (values in
// their Emit form).
func checkAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[string]string) {
	t.Helper()
	got := attrs(s)
	for k, v := range want {
		if g, ok := got[attribute.Key(k)]; !ok || g.Emit() != v {
			t.Errorf("span %s: %s = %q, want %q (all: %v)", s.Name(), k, g.Emit(), v, s.Attributes())
		}
	}
}

func ptr[T any](v T) *T { return &v }

// A push whose envelope carries a sampled trace context is traced as that
// context's child, with what it pushed; its storage append is its child.
func TestTelemetryPushSpanParent(t *testing.T) {
	ts := startTracedServer(t)
	w := newWireTrace(t, 1)
	c := dialRaw(t, ts.testServer, "traced")
	c.send(traced(t, pushMsg(t, "0", "traced", chain(0, 3, "c1"), nil), w, ptr(true)))
	c.expect(fmt.Sprintf(pushOK, "0"))

	push := ts.waitSpans(t, "livestore.server.push", atLeast(1))[0]
	if push.Parent().TraceID() != w.traceID || push.Parent().SpanID() != w.spanID || !push.Parent().IsRemote() {
		t.Errorf("push span parent %v, want the client's %x/%x (remote)", push.Parent(), w.traceID, w.spanID)
	}
	if push.SpanContext().TraceID() != w.traceID {
		t.Errorf("push span in trace %s, want the client's", push.SpanContext().TraceID())
	}
	if push.SpanKind() != trace.SpanKindServer || push.InstrumentationScope().Name != syncserver.TelemetryScope {
		t.Errorf("push span kind %v scope %q", push.SpanKind(), push.InstrumentationScope().Name)
	}
	checkAttrs(t, push, map[string]string{
		"livestore.store_id":    "traced",
		"livestore.event.count": "3",
		"livestore.seq.first":   "1",
		"livestore.seq.last":    "3",
		"livestore.event.names": `["v1.TodoCreated"]`,
		"livestore.result":      "ok",
		"livestore.transport":   "ws",
	})
	appendSpan := ts.waitSpans(t, "livestore.server.append", atLeast(1))[0]
	if appendSpan.Parent().SpanID() != push.SpanContext().SpanID() || appendSpan.SpanContext().TraceID() != w.traceID {
		t.Errorf("append span parent %v, want the push span %v", appendSpan.Parent(), push.SpanContext())
	}
	checkAttrs(t, appendSpan, map[string]string{"livestore.store_id": "traced", "livestore.event.count": "3"})
}

// Without a trace context, or with an unsampled one (which every JavaScript
// client sends when it exports nothing), a push's span is a root.
func TestTelemetryPushSpanRoot(t *testing.T) {
	ts := startTracedServer(t)
	w := newWireTrace(t, 2)
	c := dialRaw(t, ts.testServer, "roots")
	c.send(traced(t, pushMsg(t, "0", "roots", chain(0, 1, "c1"), nil), w, ptr(false)))
	c.expect(fmt.Sprintf(pushOK, "0"))
	c.send(traced(t, pushMsg(t, "1", "roots", chain(1, 1, "c1"), nil), w, nil))
	c.expect(fmt.Sprintf(pushOK, "1"))
	// A push based on an old head is answered with ServerAheadError: not a
	// failure of the server's.
	c.send(traced(t, pushMsg(t, "2", "roots", chain(0, 1, "c1"), nil), w, nil))
	c.recv()

	pushes := ts.waitSpans(t, "livestore.server.push", atLeast(3))
	for i, s := range pushes {
		if s.Parent().IsValid() || s.SpanContext().TraceID() == w.traceID {
			t.Errorf("push %d: parent %v trace %s, want a root span of a new trace", i, s.Parent(), s.SpanContext().TraceID())
		}
	}
	checkAttrs(t, pushes[2], map[string]string{"livestore.result": "server_ahead", "livestore.event.count": "1"})
	if pushes[2].Status().Code != 0 {
		t.Errorf("server-ahead push span status %v, want unset", pushes[2].Status())
	}
}

// A live pull's update is traced as a span per page, a child of the push
// that stored its events and linked to the pull's own span; the pull's span
// is the child of the pull request's trace context.
func TestTelemetryLivePageSpans(t *testing.T) {
	ts := startTracedServer(t)
	pw, lw := newWireTrace(t, 3), newWireTrace(t, 4)
	follower := dialRaw(t, ts.testServer, "fan")
	follower.send(traced(t, pullMsg(t, "0", "fan", true, nil), lw, ptr(true)))
	follower.recv() // the empty first page
	pull := ts.waitSpans(t, "livestore.server.pull", atLeast(1))[0]
	if pull.Parent().SpanID() != lw.spanID || pull.SpanContext().TraceID() != lw.traceID {
		t.Errorf("pull span parent %v, want the client's %x", pull.Parent(), lw.spanID)
	}
	checkAttrs(t, pull, map[string]string{"livestore.store_id": "fan", "livestore.pull.live": "true",
		"livestore.pull.cursor": "0", "livestore.transport": "ws", "livestore.result": "ok", "livestore.event.count": "0"})

	// 150 events take two pages: 100, then 50.
	pusher := dialRaw(t, ts.testServer, "fan")
	pusher.send(traced(t, pushMsg(t, "0", "fan", chain(0, 150, "c1"), nil), pw, ptr(true)))
	pusher.expect(fmt.Sprintf(pushOK, "0"))
	if n := len(page(t, follower.recv(), "0").Batch) + len(page(t, follower.recv(), "0").Batch); n != 150 {
		t.Fatalf("follower got %d events, want 150", n)
	}

	push := ts.waitSpans(t, "livestore.server.push", atLeast(1))[0]
	pages := ts.waitSpans(t, "livestore.server.pull.page", atLeast(2))
	if len(pages) != 2 {
		t.Fatalf("%d page spans, want 2", len(pages))
	}
	want := []map[string]string{
		{"livestore.event.count": "100", "livestore.seq.first": "1", "livestore.seq.last": "100"},
		{"livestore.event.count": "50", "livestore.seq.first": "101", "livestore.seq.last": "150"},
	}
	slices.SortFunc(pages, func(a, b sdktrace.ReadOnlySpan) int {
		return int(attrs(a)["livestore.seq.first"].AsInt64() - attrs(b)["livestore.seq.first"].AsInt64())
	})
	for i, s := range pages {
		if s.Parent().SpanID() != push.SpanContext().SpanID() || s.SpanContext().TraceID() != pw.traceID {
			t.Errorf("page %d: parent %v, want the push span %v", i, s.Parent(), push.SpanContext())
		}
		if len(s.Links()) != 1 || s.Links()[0].SpanContext.SpanID() != pull.SpanContext().SpanID() {
			t.Errorf("page %d: links %v, want the pull span %v", i, s.Links(), pull.SpanContext())
		}
		want[i]["livestore.store_id"] = "fan"
		checkAttrs(t, s, want[i])
	}
}

// The HTTP transport reads the same envelope fields.
func TestTelemetryHTTPTransport(t *testing.T) {
	ts := startTracedServer(t)
	w := newWireTrace(t, 5)
	body := traced(t, mustJSON(t, &syncproto.Request{ID: "0", Tag: syncproto.TagHTTPPush,
		Payload: json.RawMessage(mustJSON(t, syncproto.PushRequest{StoreID: "h", Batch: chain(0, 2, "c1")}))}), w, ptr(true))
	post(t, ts.testServer, "h", body, nil).one(t, 200)
	body = traced(t, mustJSON(t, &syncproto.Request{ID: "1", Tag: syncproto.TagHTTPPull,
		Payload: json.RawMessage(mustJSON(t, syncproto.HTTPPullRequest{StoreID: "h"}))}), w, ptr(true))
	if a := post(t, ts.testServer, "h", body, nil); a.status != 200 || len(a.msgs) != 2 {
		t.Fatalf("pull: %d %v", a.status, a.msgs)
	}
	push := ts.waitSpans(t, "livestore.server.push", atLeast(1))[0]
	pull := ts.waitSpans(t, "livestore.server.pull", atLeast(1))[0]
	for _, s := range []sdktrace.ReadOnlySpan{push, pull} {
		if s.Parent().SpanID() != w.spanID {
			t.Errorf("%s parent %v, want the client's", s.Name(), s.Parent())
		}
		checkAttrs(t, s, map[string]string{"livestore.transport": "http", "livestore.store_id": "h", "livestore.event.count": "2"})
	}
	checkAttrs(t, pull, map[string]string{"livestore.pull.live": "false", "livestore.result": "ok"})
}

// The metrics count events in and out by store, connections by transport,
// and time appends.
func TestTelemetryMetrics(t *testing.T) {
	ts := startTracedServer(t)
	c := dialRaw(t, ts.testServer, "m")
	c.send(pushMsg(t, "0", "m", chain(0, 4, "c1"), nil))
	c.expect(fmt.Sprintf(pushOK, "0"))
	c.send(pullMsg(t, "1", "m", false, nil))
	if n := len(page(t, c.recv(), "1").Batch); n != 4 {
		t.Fatalf("pulled %d events", n)
	}
	c.send(mustJSON(t, &syncproto.Ack{RequestID: "1"}))
	c.expect(`{"_tag":"Exit","requestId":"1","exit":{"_tag":"Success"}}`)

	var rm metricdata.ResourceMetrics
	if err := ts.metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != syncserver.TelemetryScope {
			continue
		}
		for _, m := range sm.Metrics {
			got[m.Name] = m.Data
		}
	}
	storeSum := func(name string) int64 {
		sum, ok := got[name].(metricdata.Sum[int64])
		if !ok {
			t.Fatalf("%s: %T, want an int64 sum", name, got[name])
		}
		for _, dp := range sum.DataPoints {
			if v, ok := dp.Attributes.Value("livestore.store_id"); ok && v.AsString() == "m" {
				return dp.Value
			}
		}
		t.Fatalf("%s: no point for store m: %v", name, sum.DataPoints)
		return 0
	}
	if n := storeSum("livestore.server.events.in"); n != 4 {
		t.Errorf("events.in = %d, want 4", n)
	}
	if n := storeSum("livestore.server.events.out"); n != 4 {
		t.Errorf("events.out = %d, want 4", n)
	}
	conns, ok := got["livestore.server.connections"].(metricdata.Sum[int64])
	if !ok || len(conns.DataPoints) != 1 || conns.DataPoints[0].Value != 1 || conns.IsMonotonic {
		t.Errorf("connections: %+v, want one open ws connection", got["livestore.server.connections"])
	} else if v, _ := conns.DataPoints[0].Attributes.Value("livestore.transport"); v.AsString() != "ws" {
		t.Errorf("connections transport %q", v.AsString())
	}
	hist, ok := got["livestore.server.append.duration"].(metricdata.Histogram[float64])
	if !ok || len(hist.DataPoints) != 1 || hist.DataPoints[0].Count != 1 {
		t.Errorf("append.duration: %+v, want one append", got["livestore.server.append.duration"])
	}
}
