package livestore

import (
	"context"
	"testing"

	"github.com/livestore-go/livestore/eventlog"
)

// BenchmarkTelemetryHooksOff runs the telemetry hooks a one-event commit
// passes through, in a store without providers: what instrumentation adds
// to a commit when it is off.
func BenchmarkTelemetryHooksOff(b *testing.B) {
	tel, err := newInstruments(Options{}, "default")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	evs := []eventlog.Event{{SeqNum: eventlog.SeqNum{Global: 1}, Name: "v1.TodoCreated"}}
	b.ReportAllocs()
	for b.Loop() {
		cctx, run := tel.startCommit(ctx)
		span := tel.startMaterialize(cctx, &evs[0])
		endSpan(span, nil)
		tel.committed(cctx, evs, true)
		tel.endCommit(cctx, run, nil)
	}
}
