// Package telemetry holds what the store and the sync server share of their
// OpenTelemetry instrumentation: resolving optional providers to no-op ones,
// the attribute keys both sides use, and carrying a span context across the
// wire in the trace fields of the Effect RPC request envelope.
//
// The spans and instruments themselves live next to the code they measure
// (the root package and package syncserver); the SDK, exporters and
// environment configuration live in the programs that choose them
// (cmd/livestore). Nothing here starts a goroutine or keeps global state.
package telemetry

import (
	"context"
	"encoding/hex"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Attribute keys shared by the store's and the server's spans.
const (
	StoreID    = attribute.Key("livestore.store_id")
	EventName  = attribute.Key("livestore.event.name")
	EventNames = attribute.Key("livestore.event.names")
	EventCount = attribute.Key("livestore.event.count")
	SeqFirst   = attribute.Key("livestore.seq.first")
	SeqLast    = attribute.Key("livestore.seq.last")
	Live       = attribute.Key("livestore.pull.live")
	Remaining  = attribute.Key("livestore.pull.remaining")
	Result     = attribute.Key("livestore.result")
	Transport  = attribute.Key("livestore.transport")

	// Seq is one event's local sequence number in its text form ("e5",
	// "e5.1", "e6r1"); SeqFirst and SeqLast are global sequence numbers,
	// as the wire carries them.
	Seq = attribute.Key("livestore.seq")
	// Rebuilt tells whether opening a store rebuilt its state from the
	// eventlog; Replayed is how many events that replayed.
	Rebuilt  = attribute.Key("livestore.boot.rebuilt")
	Replayed = attribute.Key("livestore.boot.replayed")
	// RolledBack and Reapplied count the local events a rebase rolled back
	// and applied again on top of the server's.
	RolledBack = attribute.Key("livestore.rebase.rolled_back")
	Reapplied  = attribute.Key("livestore.rebase.reapplied")
	// QueryLabel, QueryKind ("db" or "computed") and QueryRows describe one
	// run of a reactive query.
	QueryLabel = attribute.Key("livestore.query.label")
	QueryKind  = attribute.Key("livestore.query.kind")
	QueryRows  = attribute.Key("livestore.query.rows")
)

// Tracer returns the tracer called name of tp, or a no-op tracer when tp is
// nil.
func Tracer(tp trace.TracerProvider, name string) trace.Tracer {
	if tp == nil {
		return tracenoop.NewTracerProvider().Tracer(name)
	}
	return tp.Tracer(name)
}

// Meter returns the meter called name of mp, or a no-op meter when mp is nil.
func Meter(mp metric.MeterProvider, name string) metric.Meter {
	if mp == nil {
		return metricnoop.NewMeterProvider().Meter(name)
	}
	return mp.Meter(name)
}

// MaxEventNames bounds the livestore.event.names attribute of a span.
const MaxEventNames = 16

// DistinctNames returns the distinct values of name(i) for i in [0, n), in
// first-seen order, at most MaxEventNames of them: a batch of a thousand
// events of one kind gives one name, not a thousand.
func DistinctNames(n int, name func(i int) string) []string {
	var out []string
	for i := 0; i < n && len(out) < MaxEventNames; i++ {
		if nm := name(i); !slices.Contains(out, nm) {
			out = append(out, nm)
		}
	}
	return out
}

// WireContext is a span context as the Effect RPC request envelope carries
// it: a 32-digit hex trace id, a 16-digit hex span id and whether the trace
// is sampled. The published JavaScript clients fill the same fields from
// their own tracer, and the reference server reads them; an empty
// WireContext means none.
type WireContext struct {
	TraceID string
	SpanID  string
	Sampled *bool
}

// Inject returns the wire form of the span context in ctx; the zero
// WireContext when ctx holds no valid span context.
func Inject(ctx context.Context) WireContext {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return WireContext{}
	}
	tid, sid := sc.TraceID(), sc.SpanID()
	sampled := sc.IsSampled()
	return WireContext{
		TraceID: hex.EncodeToString(tid[:]),
		SpanID:  hex.EncodeToString(sid[:]),
		Sampled: &sampled,
	}
}

// Extract returns ctx carrying w as its remote parent span context. ctx is
// returned unchanged when w is empty, malformed or not sampled, so that a
// client sending something else in these fields only loses the link, never
// the request. Unsampled contexts are dropped on purpose: every published
// JavaScript client fills these fields from its own tracer even when it
// exports nothing ("sampled": false), and taking that as the parent would
// make a parent-based sampler on the server drop the server's own spans.
func Extract(ctx context.Context, w WireContext) context.Context {
	var tid trace.TraceID
	var sid trace.SpanID
	if w.Sampled == nil || !*w.Sampled || !decodeHex(tid[:], w.TraceID) || !decodeHex(sid[:], w.SpanID) {
		return ctx
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	if !sc.IsValid() {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

func decodeHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) || strings.ToLower(s) != s {
		return false
	}
	_, err := hex.Decode(dst, []byte(s))
	return err == nil
}
