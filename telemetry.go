package livestore

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/telemetry"
	"github.com/livestore-go/livestore/syncproto"
)

// This file holds the store's OpenTelemetry instrumentation: the spans of
// opening, committing, querying and syncing, and the store's metrics. The
// hooks are called from the code they measure; without
// Options.TracerProvider and Options.MeterProvider each returns at its first
// test, allocating nothing.

// instrumentationName is the instrumentation scope of the store's spans and
// metrics.
const instrumentationName = "github.com/livestore-go/livestore"

// Names of the store's spans.
const (
	spanOpen          = "livestore.open"
	spanBoot          = "livestore.boot"
	spanRematerialize = "livestore.rematerialize"
	spanCommit        = "livestore.commit"
	spanMaterialize   = "livestore.materialize"
	spanQuery         = "livestore.query"
	spanPush          = "livestore.sync.push"
	spanPull          = "livestore.sync.pull"
	spanRebase        = "livestore.sync.rebase"
)

// commitBuckets are the bucket boundaries, in seconds, of the commit
// duration histogram: from a tenth of a millisecond (an in-memory commit)
// to seconds (a slow disk under load).
var commitBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// instruments are one store's tracer and metrics. Set by Open and not
// changed after, except pending and parents, which guard themselves.
type instruments struct {
	store attribute.KeyValue
	// tracer is nil when tracing is off.
	tracer trace.Tracer

	// The metrics, nil when metrics are off, and the measurement options
	// carrying the store id (and, for queries, the node kind), built once.
	commitDur metric.Float64Histogram
	rebases   metric.Int64Counter
	queryRuns metric.Int64Counter
	reg       metric.Registration // the pending gauge's callback; nil if none
	storeRec  []metric.RecordOption
	storeAdd  []metric.AddOption
	queryAdd  [signalNode + 1][]metric.AddOption

	// pending is the pending event count the sync processor last saw,
	// observed by the livestore.sync.pending gauge.
	pending atomic.Int64
	// parents are the commit spans of the pending events, for their push.
	parents pushParents
}

// newInstruments sets up the instrumentation opts asks for.
func newInstruments(opts Options, storeID string) (*instruments, error) {
	t := &instruments{store: telemetry.StoreID.String(storeID)}
	if opts.TracerProvider != nil {
		t.tracer = opts.TracerProvider.Tracer(instrumentationName)
	}
	if opts.MeterProvider != nil {
		if err := t.initMetrics(opts.MeterProvider.Meter(instrumentationName), opts.Sync != nil); err != nil {
			return nil, fmt.Errorf("livestore: open: metrics: %w", err)
		}
	}
	return t, nil
}

func (t *instruments) initMetrics(m metric.Meter, synced bool) (err error) {
	if t.commitDur, err = m.Float64Histogram("livestore.commit.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of successful commits, from the call of Commit to its return."),
		metric.WithExplicitBucketBoundaries(commitBuckets...)); err != nil {
		return err
	}
	if t.rebases, err = m.Int64Counter("livestore.sync.rebases", metric.WithUnit("{rebase}"),
		metric.WithDescription("Rebases of pending local events onto events pulled from the sync server.")); err != nil {
		return err
	}
	if t.queryRuns, err = m.Int64Counter("livestore.query.runs", metric.WithUnit("{run}"),
		metric.WithDescription("Runs of reactive queries and computed values.")); err != nil {
		return err
	}
	set := attribute.NewSet(t.store)
	t.storeRec = []metric.RecordOption{metric.WithAttributeSet(set)}
	t.storeAdd = []metric.AddOption{metric.WithAttributeSet(set)}
	for _, k := range []nodeKind{dbNode, computedNode} {
		ks := attribute.NewSet(t.store, telemetry.QueryKind.String(k.String()))
		t.queryAdd[k] = []metric.AddOption{metric.WithAttributeSet(ks)}
	}
	if !synced {
		return nil
	}
	gauge, err := m.Int64ObservableGauge("livestore.sync.pending", metric.WithUnit("{event}"),
		metric.WithDescription("Synced events committed locally that the sync server has not confirmed yet."))
	if err != nil {
		return err
	}
	obs := []metric.ObserveOption{metric.WithAttributeSet(set)}
	t.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(gauge, t.pending.Load(), obs...)
		return nil
	}, gauge)
	return err
}

// close unregisters the gauge callback: the meter provider outlives the
// store.
func (t *instruments) close() error {
	if t.reg == nil {
		return nil
	}
	if err := t.reg.Unregister(); err != nil {
		return fmt.Errorf("livestore: close: metrics: %w", err)
	}
	return nil
}

// noSpan is the span of an untraced operation: it records nothing.
func noSpan() trace.Span { return trace.SpanFromContext(context.Background()) }

// start starts the span name as a child of the span in ctx, carrying the
// store id. Without tracing it returns ctx and a span that records nothing.
func (t *instruments) start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if t.tracer == nil {
		return ctx, noSpan()
	}
	ctx, span := t.tracer.Start(ctx, name, opts...)
	if span.IsRecording() {
		span.SetAttributes(t.store)
	}
	return ctx, span
}

// endSpan ends span, recording err (if any) as its error.
func endSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// traced is true when ctx carries a span of this store's tracer that
// records: only then do the steps below it get spans of their own.
func (t *instruments) traced(ctx context.Context) bool {
	return t.tracer != nil && trace.SpanFromContext(ctx).IsRecording()
}

// untraced returns ctx without its span, for work that should not get a
// span per step (replaying the whole log).
func (t *instruments) untraced(ctx context.Context) context.Context {
	if !t.traced(ctx) {
		return ctx
	}
	return trace.ContextWithSpanContext(ctx, trace.SpanContext{})
}

// booted describes the boot span: whether state was rebuilt and, if so,
// how many events that replayed. The caller holds the write connection.
func (s *Store) booted(span trace.Span, rebuilt bool) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(telemetry.Rebuilt.Bool(rebuilt))
	if rebuilt {
		if n, err := s.db.Count(); err == nil {
			span.SetAttributes(telemetry.Replayed.Int64(n))
		}
	}
}

// commitRun is one Commit being traced and timed.
type commitRun struct {
	span  trace.Span
	start time.Time
}

func (t *instruments) startCommit(ctx context.Context) (context.Context, commitRun) {
	var run commitRun
	if t.commitDur != nil {
		run.start = time.Now()
	}
	ctx, run.span = t.start(ctx, spanCommit)
	return ctx, run
}

func (t *instruments) endCommit(ctx context.Context, run commitRun, err error) {
	if t.commitDur != nil && err == nil {
		t.commitDur.Record(ctx, time.Since(run.start).Seconds(), t.storeRec...)
	}
	endSpan(run.span, err)
}

// committed describes the numbered events of a commit on its span (in ctx)
// and, in a synced store, remembers the span as the parent of their push.
// The caller holds the write lock, so the push cannot read the events
// before they are remembered.
func (t *instruments) committed(ctx context.Context, evs []eventlog.Event, synced bool) {
	if t.tracer == nil {
		return
	}
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() {
		names := telemetry.DistinctNames(len(evs), func(i int) string { return evs[i].Name })
		span.SetAttributes(telemetry.EventNames.StringSlice(names), telemetry.EventCount.Int(len(evs)),
			telemetry.SeqFirst.Int64(evs[0].SeqNum.Global), telemetry.SeqLast.Int64(evs[len(evs)-1].SeqNum.Global))
	}
	if sc := span.SpanContext(); synced && sc.IsValid() {
		first, last := int64(-1), int64(-1)
		for i := range evs {
			if evs[i].SeqNum.IsClientOnly() {
				continue
			}
			if first < 0 {
				first = evs[i].SeqNum.Global
			}
			last = evs[i].SeqNum.Global
		}
		if first >= 0 {
			t.parents.add(first, last, sc)
		}
	}
}

// startMaterialize starts the span of materializing ev, when the operation
// in ctx is traced.
func (t *instruments) startMaterialize(ctx context.Context, ev *eventlog.Event) trace.Span {
	if !t.traced(ctx) {
		return noSpan()
	}
	_, span := t.tracer.Start(ctx, spanMaterialize)
	if span.IsRecording() {
		span.SetAttributes(telemetry.EventName.String(ev.Name), telemetry.Seq.String(ev.SeqNum.String()))
	}
	return span
}

// endQuery counts a run of node n and ends its span, describing it; rows is
// the count of rows it read, nil when not counted.
func (t *instruments) endQuery(ctx context.Context, span trace.Span, n *node, rows *int, err error) {
	if t.queryRuns != nil {
		t.queryRuns.Add(ctx, 1, t.queryAdd[n.kind]...)
	}
	if span.IsRecording() {
		span.SetAttributes(telemetry.QueryLabel.String(n.label), telemetry.QueryKind.String(n.kind.String()))
		if rows != nil && n.kind == dbNode {
			span.SetAttributes(telemetry.QueryRows.Int(*rows))
		}
	}
	endSpan(span, err)
}

// startPush starts the span of pushing part: a child of the commit span of
// its first event, linked to the commit spans of the others.
func (t *instruments) startPush(ctx context.Context, part []syncproto.Event) (context.Context, trace.Span) {
	if t.tracer == nil || len(part) == 0 {
		return ctx, noSpan()
	}
	first, last := part[0].SeqNum, part[len(part)-1].SeqNum
	parent, links := t.parents.lookup(first, last)
	if parent.IsValid() {
		ctx = trace.ContextWithSpanContext(ctx, parent)
	}
	ctx, span := t.start(ctx, spanPush, trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...))
	if span.IsRecording() {
		names := telemetry.DistinctNames(len(part), func(i int) string { return part[i].Name })
		span.SetAttributes(telemetry.EventNames.StringSlice(names), telemetry.EventCount.Int(len(part)),
			telemetry.SeqFirst.Int64(first), telemetry.SeqLast.Int64(last))
	}
	return ctx, span
}

// settled forgets the commit spans of the events up to seq, which the
// server has stored.
func (t *instruments) settled(seq int64) {
	if t.tracer != nil {
		t.parents.forgetThrough(seq)
	}
}

// startPull starts the span of applying a pulled page.
func (t *instruments) startPull(ctx context.Context, page syncproto.PullResponse) (context.Context, trace.Span) {
	ctx, span := t.start(ctx, spanPull)
	if span.IsRecording() {
		span.SetAttributes(telemetry.EventCount.Int(len(page.Batch)), telemetry.Remaining.Int64(page.PageInfo.Remaining))
		if n := len(page.Batch); n > 0 {
			span.SetAttributes(telemetry.SeqFirst.Int64(page.Batch[0].Event.SeqNum),
				telemetry.SeqLast.Int64(page.Batch[n-1].Event.SeqNum))
		}
	}
	return ctx, span
}

// startRebase starts the span of a rebase that rolls back rolled local
// events and applies upstream server events under them.
func (t *instruments) startRebase(ctx context.Context, rolled, upstream int) (context.Context, trace.Span) {
	ctx, span := t.start(ctx, spanRebase)
	if span.IsRecording() {
		span.SetAttributes(telemetry.RolledBack.Int(rolled), telemetry.EventCount.Int(upstream))
	}
	return ctx, span
}

// rebased follows a rebase that applied rolled again as re: the count on
// its span, and the commit spans of the renumbered pending events.
func (t *instruments) rebased(span trace.Span, rolled, re []eventlog.Event) {
	if t.tracer == nil {
		return
	}
	if span.IsRecording() {
		span.SetAttributes(telemetry.Reapplied.Int(len(re)))
	}
	for i := range rolled {
		if !rolled[i].SeqNum.IsClientOnly() {
			from := rolled[i].SeqNum.Global
			t.parents.shift(from, re[i].SeqNum.Global-from)
			return
		}
	}
}

// countRebase counts a rebase that was committed.
func (t *instruments) countRebase(ctx context.Context) {
	if t.rebases != nil {
		t.rebases.Add(ctx, 1, t.storeAdd...)
	}
}
