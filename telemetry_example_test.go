package livestore_test

import (
	"context"
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/livestore-go/livestore"
)

// A store given a TracerProvider traces its work. Here the spans go to
// memory; a program would export them, e.g. over OTLP.
func ExampleOptions_tracing() {
	ctx := context.Background()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer tp.Shutdown(ctx)

	schema, _, created := exampleSchema()
	store, err := livestore.Open(ctx, schema, livestore.Options{TracerProvider: tp})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	if err := store.Commit(ctx, created.New(TodoCreated{ID: "1", Text: "Buy milk"})); err != nil {
		fmt.Println(err)
		return
	}
	// Spans are listed as they end: children first.
	for _, s := range spans.GetSpans() {
		fmt.Println(s.Name)
	}
	// Output:
	// livestore.boot
	// livestore.open
	// livestore.materialize
	// livestore.commit
}
