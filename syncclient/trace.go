package syncclient

import (
	"context"

	"github.com/livestore-go/livestore/internal/telemetry"
	"github.com/livestore-go/livestore/syncproto"
)

// traceRequest puts the span context of ctx into the trace fields of req,
// where the reference server and the JavaScript clients carry it. Without
// a span in ctx the fields stay empty and are not sent.
func traceRequest(ctx context.Context, req *syncproto.Request) {
	w := telemetry.Inject(ctx)
	req.TraceID, req.SpanID, req.Sampled = w.TraceID, w.SpanID, w.Sampled
}
