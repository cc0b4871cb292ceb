package livestore_test

import (
	"context"
	"fmt"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/livestore-go/livestore"
)

// BenchmarkTracedCommitSingle is BenchmarkCommitSingle with tracing and
// metrics on: the SDK's tracer sampling every span, batching them to an
// in-memory exporter, and a meter provider. It shows what observing every
// commit costs; without providers the cost is nil (compare
// BenchmarkCommitSingle across a change).
func BenchmarkTracedCommitSingle(b *testing.B) {
	for _, d := range []struct {
		name string
		d    livestore.Durability
	}{{"full", livestore.DurabilityFull}, {"process", livestore.DurabilityProcess}} {
		b.Run(d.name, func(b *testing.B) {
			ctx := context.Background()
			spans := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(spans))
			defer tp.Shutdown(ctx)
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			defer mp.Shutdown(ctx)
			a := newTodoApp(b)
			s, err := livestore.Open(ctx, a.schema, livestore.Options{Dir: b.TempDir(), Durability: d.d,
				TracerProvider: tp, MeterProvider: mp})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := s.Commit(ctx, a.created.New(todoCreated{ID: fmt.Sprint(i), Text: "buy milk"})); err != nil {
					b.Fatal(err)
				}
				if i%10000 == 9999 {
					spans.Reset() // keep memory flat over long runs
				}
			}
		})
	}
}
