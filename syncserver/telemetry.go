package syncserver

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/livestore-go/livestore/internal/telemetry"
	"github.com/livestore-go/livestore/syncproto"
)

// TelemetryScope is the instrumentation scope of the server's
// OpenTelemetry spans and metrics ([Options].TracerProvider and
// MeterProvider).
//
// Spans: livestore.server.push (store id, event count, first and last
// sequence number, event names, result, transport ws or http) with a child
// livestore.server.append for the storage write; livestore.server.pull
// (store id, live, cursor, transport, events sent, result), which for a live
// pull ends once it has caught up; livestore.server.pull.page for each page
// of a live update, a child of the push that stored its events (a root for
// events another server process stored) linked to the pull's span, ending
// when the page is written.
//
// Metrics: livestore.server.append.duration (histogram, seconds),
// livestore.server.connections (up-down counter by livestore.transport),
// livestore.server.events.in and livestore.server.events.out (counters by
// livestore.store_id).
const TelemetryScope = "github.com/livestore-go/livestore/syncserver"

// Span names.
const (
	spanPush   = "livestore.server.push"
	spanAppend = "livestore.server.append"
	spanPull   = "livestore.server.pull"
	spanPage   = "livestore.server.pull.page"
)

// Transports, the livestore.transport attribute.
const (
	transportWS   = "ws"
	transportHTTP = "http"
)

// Attribute keys of the server's own.
const (
	// cursorSeq is the global sequence number a pull starts after (0 for
	// a pull from the start).
	cursorSeq = attribute.Key("livestore.pull.cursor")
	// pageCount is how many pages a live update to one pull took.
	pageCount = attribute.Key("livestore.pull.pages")
)

// Results of a pull, the livestore.result attribute of its span.
const (
	pullOK          = "ok"
	pullInterrupted = "interrupted" // interrupted, disconnected or shut down
	pullFailed      = "error"
)

// noSpan is the span of everything when tracing is off.
var noSpan trace.Span = tracenoop.Span{}

// serverTelemetry is the server's OpenTelemetry instrumentation. With no
// TracerProvider tracer is nil and no span is started; with no
// MeterProvider meters is nil and nothing is measured: a server without
// either pays a nil check per instrumented step.
type serverTelemetry struct {
	tracer trace.Tracer
	meters *serverMeters
}

// serverMeters are the server's instruments.
type serverMeters struct {
	appendDuration metric.Float64Histogram
	connections    metric.Int64UpDownCounter
	eventsIn       metric.Int64Counter
	eventsOut      metric.Int64Counter
	byTransport    map[string]metric.AddOption
}

func newServerTelemetry(tp trace.TracerProvider, mp metric.MeterProvider) (*serverTelemetry, error) {
	t := &serverTelemetry{}
	if tp != nil {
		t.tracer = telemetry.Tracer(tp, TelemetryScope)
	}
	if mp == nil {
		return t, nil
	}
	m := telemetry.Meter(mp, TelemetryScope)
	sm := &serverMeters{byTransport: map[string]metric.AddOption{
		transportWS:   metric.WithAttributeSet(attribute.NewSet(telemetry.Transport.String(transportWS))),
		transportHTTP: metric.WithAttributeSet(attribute.NewSet(telemetry.Transport.String(transportHTTP))),
	}}
	var err error
	if sm.appendDuration, err = m.Float64Histogram("livestore.server.append.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to store one pushed batch, from the storage call to its return."),
		metric.WithExplicitBucketBoundaries(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5)); err != nil {
		return nil, fmt.Errorf("instrument livestore.server.append.duration: %w", err)
	}
	if sm.connections, err = m.Int64UpDownCounter("livestore.server.connections", metric.WithUnit("{connection}"),
		metric.WithDescription("WebSocket connections open and HTTP transport requests being served, by transport.")); err != nil {
		return nil, fmt.Errorf("instrument livestore.server.connections: %w", err)
	}
	if sm.eventsIn, err = m.Int64Counter("livestore.server.events.in", metric.WithUnit("{event}"),
		metric.WithDescription("Events stored from pushes, by store.")); err != nil {
		return nil, fmt.Errorf("instrument livestore.server.events.in: %w", err)
	}
	if sm.eventsOut, err = m.Int64Counter("livestore.server.events.out", metric.WithUnit("{event}"),
		metric.WithDescription("Events sent to clients in pull pages and live updates, by store.")); err != nil {
		return nil, fmt.Errorf("instrument livestore.server.events.out: %w", err)
	}
	t.meters = sm
	return t, nil
}

// remote returns ctx with the span context a request's envelope carries as
// its remote parent, if it carries a sampled one.
func remote(ctx context.Context, req *syncproto.Request) context.Context {
	return telemetry.Extract(ctx, telemetry.WireContext{TraceID: req.TraceID, SpanID: req.SpanID, Sampled: req.Sampled})
}

// startPush starts the span of a push request, a child of the span context
// its envelope carries.
func (t *serverTelemetry) startPush(ctx context.Context, req *syncproto.Request, storeID, transport string) (context.Context, trace.Span) {
	if t.tracer == nil {
		return ctx, noSpan
	}
	ctx, span := t.tracer.Start(remote(ctx, req), spanPush, trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.SetAttributes(telemetry.StoreID.String(storeID), telemetry.Transport.String(transport))
	}
	return ctx, span
}

// describePush records what a push carries on its span.
func describePush(span trace.Span, batch []syncproto.Event) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(telemetry.EventCount.Int(len(batch)))
	if len(batch) == 0 {
		return
	}
	span.SetAttributes(
		telemetry.SeqFirst.Int64(batch[0].SeqNum),
		telemetry.SeqLast.Int64(batch[len(batch)-1].SeqNum),
		telemetry.EventNames.StringSlice(telemetry.DistinctNames(len(batch), func(i int) string { return batch[i].Name })),
	)
}

// endPush ends a push's span with its result (a pushes_total label).
// Results other than ok and server_ahead, which a client handles by
// pulling, mark the span as failed.
func endPush(span trace.Span, result string) {
	if span.IsRecording() {
		span.SetAttributes(telemetry.Result.String(result))
		if result != pushOK && result != pushServerAhead {
			span.SetStatus(codes.Error, result)
		}
	}
	span.End()
}

// appendSpan is the measurement of one storage append.
type appendSpan struct {
	meters *serverMeters
	span   trace.Span
	start  time.Time
}

// startAppend starts measuring the storage append of a push of n events:
// a span, a child of the push's, and the append duration.
func (t *serverTelemetry) startAppend(ctx context.Context, storeID string, n int) (context.Context, appendSpan) {
	a := appendSpan{meters: t.meters, span: noSpan}
	if t.meters != nil {
		a.start = time.Now()
	}
	if t.tracer == nil {
		return ctx, a
	}
	ctx, a.span = t.tracer.Start(ctx, spanAppend, trace.WithSpanKind(trace.SpanKindInternal))
	if a.span.IsRecording() {
		a.span.SetAttributes(telemetry.StoreID.String(storeID), telemetry.EventCount.Int(n))
	}
	return ctx, a
}

// end ends the append's measurement; err is the storage's answer.
func (a appendSpan) end(ctx context.Context, err error) {
	if a.meters != nil {
		a.meters.appendDuration.Record(ctx, time.Since(a.start).Seconds())
	}
	if err != nil && a.span.IsRecording() {
		a.span.RecordError(err)
		a.span.SetStatus(codes.Error, "append failed")
	}
	a.span.End()
}

// startPull starts the span of a pull request, a child of the span context
// its envelope carries. The span covers the pull's backlog: a live pull's
// ends when it has caught up, and each later live update has a span of its
// own (see sendLive).
func (t *serverTelemetry) startPull(ctx context.Context, req *syncproto.Request, storeID, transport string, live bool, cursor *syncproto.Cursor) (context.Context, trace.Span) {
	if t.tracer == nil {
		return ctx, noSpan
	}
	ctx, span := t.tracer.Start(remote(ctx, req), spanPull, trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		var after int64
		if cursor != nil {
			after = cursor.EventSequenceNumber
		}
		span.SetAttributes(telemetry.StoreID.String(storeID), telemetry.Transport.String(transport),
			telemetry.Live.Bool(live), cursorSeq.Int64(after))
	}
	return ctx, span
}

// endPull ends a pull's span: sent events were sent, err is how the pull
// ended (nil: it sent everything, or a live pull caught up).
func endPull(ctx context.Context, span trace.Span, sent int, err error) {
	if span.IsRecording() {
		result := pullOK
		switch {
		case err == nil:
		case ctx.Err() != nil:
			result = pullInterrupted
		default:
			result = pullFailed
			span.RecordError(err)
			span.SetStatus(codes.Error, "pull failed")
		}
		span.SetAttributes(telemetry.EventCount.Int(sent), telemetry.Result.String(result))
	}
	span.End()
}

// sendLive queues the pages of a live update to p: evs, encoded as pages.
// With tracing each page is a span, a child of ctx's span (the push that
// stored the events; none for events another process stored) linked to the
// pull's span, and ending when the page is written or dropped.
func (p *pull) sendLive(ctx context.Context, evs []StoredEvent, pages [][]byte) {
	t := p.conn.srv.tel
	if t.tracer == nil {
		if len(pages) == 1 {
			p.conn.sendLiveChunk(p.id, pages[0], len(evs))
			return
		}
		for _, page := range pages {
			p.conn.sendChunk(p.id, page)
		}
		return
	}
	counts := pageCounts(evs, p.conn.hub.backendID, len(pages))
	link := trace.Link{SpanContext: p.span.SpanContext()}
	first := 0
	for i, page := range pages {
		_, span := t.tracer.Start(ctx, spanPage, trace.WithSpanKind(trace.SpanKindProducer), trace.WithLinks(link))
		if !span.IsRecording() {
			p.conn.sendChunk(p.id, page)
			continue
		}
		span.SetAttributes(telemetry.StoreID.String(p.storeID), telemetry.Transport.String(transportWS), telemetry.Live.Bool(true))
		if counts != nil {
			n := counts[i]
			span.SetAttributes(telemetry.EventCount.Int(n),
				telemetry.SeqFirst.Int64(evs[first].SeqNum), telemetry.SeqLast.Int64(evs[first+n-1].SeqNum))
			first += n
		} else {
			span.SetAttributes(pageCount.Int(len(pages)))
		}
		p.conn.sendPullChunk(p.id, page, func() { span.End() })
	}
}

// pageCounts returns how many of evs each of their n pages holds: all of
// them for one page; for more, as the page encoder cut them. nil if that
// cannot be told.
func pageCounts(evs []StoredEvent, backendID string, n int) []int {
	if n == 1 {
		return []int{len(evs)}
	}
	enc, err := syncproto.NewPageEncoder(backendID)
	if err != nil {
		return nil
	}
	sizes := make([]int, len(evs))
	for i := range evs {
		item, err := enc.Item(&evs[i].Event, evs[i].CreatedAt)
		if err != nil {
			return nil
		}
		sizes[i] = len(item)
	}
	split, err := syncproto.Split(sizes, syncproto.MaxEventsPerMessage, syncproto.MaxPayloadBytes, enc.Overhead(), func(n int) (int, error) { return n, nil })
	if err != nil || len(split) != n {
		return nil
	}
	counts := make([]int, n)
	for i, s := range split {
		counts[i] = len(s)
	}
	return counts
}

// connected counts a connection (delta 1) or request of the HTTP transport
// opening or (delta -1) ending.
func (t *serverTelemetry) connected(ctx context.Context, transport string, delta int64) {
	if t.meters != nil {
		t.meters.connections.Add(ctx, delta, t.meters.byTransport[transport])
	}
}

// eventsIn counts n events of storeID stored from a push.
func (t *serverTelemetry) eventsIn(ctx context.Context, storeID string, n int) {
	if t.meters != nil {
		t.meters.eventsIn.Add(ctx, int64(n), metric.WithAttributes(telemetry.StoreID.String(storeID)))
	}
}

// eventsOut counts n events of storeID sent to a client.
func (t *serverTelemetry) eventsOut(ctx context.Context, storeID string, n int) {
	if t.meters != nil {
		t.meters.eventsOut.Add(ctx, int64(n), metric.WithAttributes(telemetry.StoreID.String(storeID)))
	}
}
