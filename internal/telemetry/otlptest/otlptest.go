// Package otlptest is an OTLP/HTTP receiver for tests: a loopback HTTP
// server that decodes the protobuf export requests of traces and metrics
// that an OTLP exporter posts, and keeps the spans and metric names it got.
// It is what a collector is to a real deployment, reduced to what tests
// assert on; it is not a collector (no gRPC, no JSON encoding, no retries).
package otlptest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"

	collmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, flattened.
type Span struct {
	Service      string // the resource's service.name
	Scope        string // the instrumentation scope's name
	Name         string
	TraceID      []byte
	SpanID       []byte
	ParentSpanID []byte
	Attributes   map[string]string // values rendered with fmt
}

// Receiver is a running OTLP/HTTP endpoint. Close it when done.
type Receiver struct {
	srv *httptest.Server

	mu      sync.Mutex
	spans   []Span
	metrics []string
	arrived chan struct{} // closed and replaced on every export
}

// Start starts a receiver on a loopback port.
func Start() *Receiver {
	r := &Receiver{arrived: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.traces)
	mux.HandleFunc("POST /v1/metrics", r.metricsHandler)
	r.srv = httptest.NewServer(mux)
	return r
}

// URL is the endpoint's base URL, for OTEL_EXPORTER_OTLP_ENDPOINT.
func (r *Receiver) URL() string { return r.srv.URL }

// Close stops the server.
func (r *Receiver) Close() { r.srv.Close() }

// Spans returns the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// MetricNames returns the names of the metrics received so far, one entry
// per data point set received.
func (r *Receiver) MetricNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.metrics...)
}

// Arrived returns a channel closed at the next export received.
func (r *Receiver) Arrived() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.arrived
}

func (r *Receiver) signal() {
	close(r.arrived)
	r.arrived = make(chan struct{})
}

func readProto(w http.ResponseWriter, req *http.Request, m proto.Message) bool {
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, fmt.Sprintf("content type %q, want application/x-protobuf", ct), http.StatusUnsupportedMediaType)
		return false
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<20))
	if err == nil {
		err = proto.Unmarshal(body, m)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func (r *Receiver) traces(w http.ResponseWriter, req *http.Request) {
	var in colltrace.ExportTraceServiceRequest
	if !readProto(w, req, &in) {
		return
	}
	var got []Span
	for _, rs := range in.GetResourceSpans() {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				got = append(got, Span{
					Service: service, Scope: ss.GetScope().GetName(), Name: sp.GetName(),
					TraceID: sp.GetTraceId(), SpanID: sp.GetSpanId(), ParentSpanID: sp.GetParentSpanId(),
					Attributes: attrs(sp.GetAttributes()),
				})
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.signal()
	r.mu.Unlock()
	reply(w, &colltrace.ExportTraceServiceResponse{})
}

func (r *Receiver) metricsHandler(w http.ResponseWriter, req *http.Request) {
	var in collmetrics.ExportMetricsServiceRequest
	if !readProto(w, req, &in) {
		return
	}
	var names []string
	for _, rm := range in.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				names = append(names, m.GetName())
			}
		}
	}
	r.mu.Lock()
	r.metrics = append(r.metrics, names...)
	r.signal()
	r.mu.Unlock()
	reply(w, &collmetrics.ExportMetricsServiceResponse{})
}

func reply(w http.ResponseWriter, m proto.Message) {
	b, err := proto.Marshal(m)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(b)
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			out[kv.GetKey()] = x.StringValue
		case *commonpb.AnyValue_IntValue:
			out[kv.GetKey()] = fmt.Sprint(x.IntValue)
		case *commonpb.AnyValue_BoolValue:
			out[kv.GetKey()] = fmt.Sprint(x.BoolValue)
		case *commonpb.AnyValue_DoubleValue:
			out[kv.GetKey()] = fmt.Sprint(x.DoubleValue)
		case *commonpb.AnyValue_ArrayValue:
			var parts []string
			for _, e := range x.ArrayValue.GetValues() {
				parts = append(parts, e.GetStringValue())
			}
			out[kv.GetKey()] = fmt.Sprint(parts)
		default:
			out[kv.GetKey()] = v.String()
		}
	}
	return out
}
