package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestWireContextRoundTrip(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	w := Inject(trace.ContextWithSpanContext(context.Background(), sc))
	if w.TraceID != "0af7651916cd43dd8448eb211c80319c" || w.SpanID != "b7ad6b7169203331" || w.Sampled == nil || !*w.Sampled {
		t.Fatalf("Inject = %+v", w)
	}
	got := trace.SpanContextFromContext(Extract(context.Background(), w))
	if got.TraceID() != tid || got.SpanID() != sid || !got.IsSampled() || !got.IsRemote() {
		t.Fatalf("Extract = %+v", got)
	}
}

func TestExtractRefusesWhatIsNotAParent(t *testing.T) {
	yes, no := true, false
	for name, w := range map[string]WireContext{
		"empty":          {},
		"unsampled":      {TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: "b7ad6b7169203331", Sampled: &no},
		"sampled absent": {TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: "b7ad6b7169203331"},
		"short trace":    {TraceID: "0af7", SpanID: "b7ad6b7169203331", Sampled: &yes},
		"upper case":     {TraceID: "0AF7651916CD43DD8448EB211C80319C", SpanID: "b7ad6b7169203331", Sampled: &yes},
		"not hex":        {TraceID: "zzf7651916cd43dd8448eb211c80319c", SpanID: "b7ad6b7169203331", Sampled: &yes},
		"zero ids":       {TraceID: "00000000000000000000000000000000", SpanID: "0000000000000000", Sampled: &yes},
	} {
		if sc := trace.SpanContextFromContext(Extract(context.Background(), w)); sc.IsValid() {
			t.Errorf("%s: Extract gave a parent %v", name, sc)
		}
	}
	if w := Inject(context.Background()); w != (WireContext{}) {
		t.Errorf("Inject without a span = %+v", w)
	}
}

func TestDistinctNames(t *testing.T) {
	names := []string{"a", "b", "a", "c", "b"}
	got := DistinctNames(len(names), func(i int) string { return names[i] })
	if len(got) != 3 || got[0] != "a" || got[1] != "b" || got[2] != "c" {
		t.Fatalf("DistinctNames = %v", got)
	}
	many := DistinctNames(100, func(i int) string { return string(rune('A' + i)) })
	if len(many) != MaxEventNames {
		t.Fatalf("DistinctNames kept %d names, want %d", len(many), MaxEventNames)
	}
}
