package livestore_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/memsync"
)

// otelRig is a tracer provider exporting to memory and a meter provider
// read by hand, as a store's Options take them.
type otelRig struct {
	spans  *tracetest.InMemoryExporter
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

func newOtelRig(t testing.TB) *otelRig {
	t.Helper()
	r := &otelRig{spans: tracetest.NewInMemoryExporter(), reader: sdkmetric.NewManualReader()}
	r.tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(r.spans))
	r.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader))
	t.Cleanup(func() {
		r.tp.Shutdown(context.Background())
		r.mp.Shutdown(context.Background())
	})
	return r
}

// named returns the ended spans called name.
func (r *otelRig) named(name string) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range r.spans.GetSpans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// one returns the only span called name whose attribute key has value v.
func (r *otelRig) one(t *testing.T, name string, key attribute.Key, v attribute.Value) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range r.named(name) {
		if got, ok := attr(s, key); ok && got == v {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans %s with %s=%s, want 1; all spans: %s", len(found), name, key, v.Emit(), spanNames(r))
	}
	return found[0]
}

// childrenOf returns the ended spans called name whose parent is p.
func (r *otelRig) childrenOf(p tracetest.SpanStub, name string) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range r.named(name) {
		if s.Parent.SpanID() == p.SpanContext.SpanID() && s.Parent.TraceID() == p.SpanContext.TraceID() {
			out = append(out, s)
		}
	}
	return out
}

func spanNames(r *otelRig) []string {
	var out []string
	for _, s := range r.spans.GetSpans() {
		out = append(out, s.Name)
	}
	return out
}

func attr(s tracetest.SpanStub, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// wantAttrs fails unless s carries every attribute of want.
func wantAttrs(t *testing.T, s tracetest.SpanStub, want ...attribute.KeyValue) {
	t.Helper()
	for _, kv := range want {
		got, ok := attr(s, kv.Key)
		if !ok || got.Type() != kv.Value.Type() || got.Emit() != kv.Value.Emit() {
			t.Errorf("span %s: %s = %s (present %v), want %s", s.Name, kv.Key, got.Emit(), ok, kv.Value.Emit())
		}
	}
}

// collect reads the metrics of r: the data of each metric by name.
func (r *otelRig) collect(t *testing.T) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/livestore-go/livestore" {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// waitSynced waits until s is connected, caught up at upstream head, with
// nothing pending, as its status signal reports.
func waitSynced(t *testing.T, s *livestore.Store, head int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for st, err := range livestore.Watch(ctx, s, s.SyncStatusSignal()) {
		if err != nil {
			t.Fatal(err)
		}
		if st.IsSynced && st.UpstreamHead == head {
			return
		}
	}
	t.Fatalf("store never synced up to %d", head)
}

func openObserved(t *testing.T, a *todoApp, link *memsync.Link, r *otelRig) *livestore.Store {
	t.Helper()
	s, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: t.TempDir(), StoreID: "shared",
		Sync: syncOpts(link), TracerProvider: r.tp, MeterProvider: r.mp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestTelemetryOfSyncBetweenTwoStores follows a commit of store A through
// its push to the server and the pull of store B, where it lands under a
// local commit of B's (a rebase), whose push then follows B's commit.
func TestTelemetryOfSyncBetweenTwoStores(t *testing.T) {
	a := newTodoApp(t)
	srv := memsync.NewServer()
	linkA, linkB := srv.NewLink(), srv.NewLink()
	linkB.SetOnline(false)
	ra, rb := newOtelRig(t), newOtelRig(t)
	sa, sb := openObserved(t, a, linkA, ra), openObserved(t, a, linkB, rb)

	mustCommit(t, sb, a.created.New(todoCreated{ID: "b1", Text: "from b"}))
	mustCommit(t, sa, a.created.New(todoCreated{ID: "a1"}), a.completed.New(todoID{ID: "a1"}))
	waitSynced(t, sa, 2)
	offline := rb.collect(t)
	linkB.SetOnline(true)
	waitSynced(t, sb, 3)
	waitSynced(t, sa, 3)
	todos, err := livestore.Get(context.Background(), sb, livestore.QueryDB[todo](livestore.SQL("SELECT * FROM todos ORDER BY id"), "all todos"))
	if err != nil || len(todos) != 2 {
		t.Fatalf("todos of B = %v, %v", todos, err)
	}

	store := attribute.String("livestore.store_id", "shared")
	open := ra.named("livestore.open")
	if len(open) != 1 || len(ra.childrenOf(open[0], "livestore.boot")) != 1 {
		t.Fatalf("open and boot spans: %v", spanNames(ra))
	}
	// A new store creates its tables: a rebuild of nothing.
	wantAttrs(t, ra.childrenOf(open[0], "livestore.boot")[0], store,
		attribute.Bool("livestore.boot.rebuilt", true), attribute.Int64("livestore.boot.replayed", 0))

	// A: commit → materialize ×2, and the push as the commit's child.
	commitA := ra.one(t, "livestore.commit", "livestore.event.count", attribute.IntValue(2))
	wantAttrs(t, commitA, store, attribute.Int64("livestore.seq.first", 1), attribute.Int64("livestore.seq.last", 2),
		attribute.StringSlice("livestore.event.names", []string{"v1.TodoCreated", "v1.TodoCompleted"}))
	mats := ra.childrenOf(commitA, "livestore.materialize")
	if len(mats) != 2 {
		t.Fatalf("commit of A has %d materialize spans, want 2", len(mats))
	}
	wantAttrs(t, mats[0], attribute.String("livestore.event.name", "v1.TodoCreated"), attribute.String("livestore.seq", "e1"))
	wantAttrs(t, mats[1], attribute.String("livestore.event.name", "v1.TodoCompleted"), attribute.String("livestore.seq", "e2"))
	pushA := ra.one(t, "livestore.sync.push", "livestore.seq.first", attribute.Int64Value(1))
	if pushA.Parent.SpanID() != commitA.SpanContext.SpanID() || pushA.SpanContext.TraceID() != commitA.SpanContext.TraceID() {
		t.Fatalf("push of A is not the child of its commit: parent %v, commit %v", pushA.Parent, commitA.SpanContext)
	}
	if pushA.SpanKind != trace.SpanKindClient {
		t.Errorf("push span kind %v", pushA.SpanKind)
	}
	wantAttrs(t, pushA, store, attribute.Int("livestore.event.count", 2), attribute.Int64("livestore.seq.last", 2))

	// B: the pull of A's events, rebasing B's pending event.
	pullB := rb.one(t, "livestore.sync.pull", "livestore.seq.last", attribute.Int64Value(2))
	wantAttrs(t, pullB, store, attribute.Int("livestore.event.count", 2), attribute.Int64("livestore.seq.first", 1),
		attribute.Int64("livestore.pull.remaining", 0))
	rebase := rb.childrenOf(pullB, "livestore.sync.rebase")
	if len(rebase) != 1 {
		t.Fatalf("pull of B has %d rebase spans: %v", len(rebase), spanNames(rb))
	}
	wantAttrs(t, rebase[0], attribute.Int("livestore.rebase.rolled_back", 1), attribute.Int("livestore.rebase.reapplied", 1),
		attribute.Int("livestore.event.count", 2))
	if n := len(rb.childrenOf(rebase[0], "livestore.materialize")); n != 3 {
		t.Errorf("rebase materialized %d events, want A's two and B's one", n)
	}
	// B's event was renumbered e1 → e3; its push still follows its commit.
	commitB := rb.one(t, "livestore.commit", "livestore.event.count", attribute.IntValue(1))
	pushB := rb.one(t, "livestore.sync.push", "livestore.seq.first", attribute.Int64Value(3))
	if pushB.Parent.SpanID() != commitB.SpanContext.SpanID() || pushB.SpanContext.TraceID() != commitB.SpanContext.TraceID() {
		t.Fatalf("push of B is not the child of its commit: parent %v, commit %v", pushB.Parent, commitB.SpanContext)
	}
	query := rb.one(t, "livestore.query", "livestore.query.label", attribute.StringValue("all todos"))
	wantAttrs(t, query, store, attribute.String("livestore.query.kind", "db"), attribute.Int("livestore.query.rows", 2))

	checkMetrics(t, offline, rb.collect(t))
}

// checkMetrics checks the metrics of store B, offline with one pending
// event and after it synced through a rebase.
func checkMetrics(t *testing.T, offline, synced map[string]metricdata.Aggregation) {
	t.Helper()
	gauge := func(m map[string]metricdata.Aggregation) int64 {
		g, ok := m["livestore.sync.pending"].(metricdata.Gauge[int64])
		if !ok || len(g.DataPoints) != 1 {
			t.Fatalf("livestore.sync.pending = %#v", m["livestore.sync.pending"])
		}
		if v, _ := g.DataPoints[0].Attributes.Value("livestore.store_id"); v.AsString() != "shared" {
			t.Errorf("pending gauge attributes %v", g.DataPoints[0].Attributes)
		}
		return g.DataPoints[0].Value
	}
	if p := gauge(offline); p != 1 {
		t.Errorf("pending offline = %d, want 1", p)
	}
	if p := gauge(synced); p != 0 {
		t.Errorf("pending synced = %d, want 0", p)
	}
	if _, ok := offline["livestore.sync.rebases"]; ok {
		t.Errorf("a rebase counted before any pull")
	}
	rebases, ok := synced["livestore.sync.rebases"].(metricdata.Sum[int64])
	if !ok || len(rebases.DataPoints) != 1 || rebases.DataPoints[0].Value != 1 {
		t.Errorf("livestore.sync.rebases = %#v", synced["livestore.sync.rebases"])
	}
	dur, ok := synced["livestore.commit.duration"].(metricdata.Histogram[float64])
	if !ok || len(dur.DataPoints) != 1 || dur.DataPoints[0].Count != 1 || dur.DataPoints[0].Sum <= 0 {
		t.Errorf("livestore.commit.duration = %#v", synced["livestore.commit.duration"])
	}
	runs, ok := synced["livestore.query.runs"].(metricdata.Sum[int64])
	if !ok || len(runs.DataPoints) != 1 || runs.DataPoints[0].Value < 1 {
		t.Fatalf("livestore.query.runs = %#v", synced["livestore.query.runs"])
	}
	if v, _ := runs.DataPoints[0].Attributes.Value("livestore.query.kind"); v.AsString() != "db" {
		t.Errorf("query runs attributes %v", runs.DataPoints[0].Attributes)
	}
}

// TestTelemetryOfBoot opens a store whose table definitions changed (a
// rebuild replaying its events, without a span per event), then again
// unchanged.
func TestTelemetryOfBoot(t *testing.T) {
	dir := t.TempDir()
	old := newTodoApp(t)
	s := openStore(t, old.schema, dir)
	mustCommit(t, s, old.created.New(todoCreated{ID: "a"}), old.created.New(todoCreated{ID: "b"}))
	s.Close()
	a := newTodoApp(t, livestore.Text("note").Default(""))
	for _, rebuilt := range []bool{true, false} {
		r := newOtelRig(t)
		s, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: dir, TracerProvider: r.tp})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		open := r.named("livestore.open")
		if len(open) != 1 {
			t.Fatalf("spans %v", spanNames(r))
		}
		boot := r.childrenOf(open[0], "livestore.boot")
		if len(boot) != 1 || len(r.named("livestore.materialize")) != 0 {
			t.Fatalf("spans %v", spanNames(r))
		}
		wantAttrs(t, boot[0], attribute.String("livestore.store_id", "default"), attribute.Bool("livestore.boot.rebuilt", rebuilt))
		if n, ok := attr(boot[0], "livestore.boot.replayed"); rebuilt != ok || ok && n.AsInt64() != 2 {
			t.Errorf("rebuilt %v: replayed %v (present %v), want 2 if rebuilt", rebuilt, n.Emit(), ok)
		}
	}
}

// TestTelemetryOffLeavesCallersSpanAlone checks that a store without providers records nothing
// into spans of the caller's: its hooks leave the caller's span alone.
func TestTelemetryOffLeavesCallersSpanAlone(t *testing.T) {
	a := newTodoApp(t)
	r := newOtelRig(t)
	s := openStore(t, a.schema, t.TempDir())
	ctx, span := r.tp.Tracer("caller").Start(context.Background(), "caller")
	if err := s.Commit(ctx, a.created.New(todoCreated{ID: "x"})); err != nil {
		t.Fatal(err)
	}
	if _, err := livestore.Get(ctx, s, livestore.QueryDB[todo](livestore.SQL("SELECT * FROM todos"))); err != nil {
		t.Fatal(err)
	}
	span.End()
	got := r.spans.GetSpans()
	if len(got) != 1 || got[0].Name != "caller" || len(got[0].Attributes) != 0 {
		t.Fatalf("spans = %v", spanNames(r))
	}
}
