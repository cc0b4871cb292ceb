package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// otelEnvSwitches are the variables that turn OpenTelemetry export on for
// `livestore serve`. Without any of them the server uses no-op providers and
// pays nothing; with one, the exporters follow the standard OTEL_*
// variables (OTEL_EXPORTER_OTLP_PROTOCOL=grpc or http/protobuf, endpoints,
// headers, OTEL_TRACES_SAMPLER, OTEL_BSP_*, OTEL_METRIC_EXPORT_INTERVAL, …).
var otelEnvSwitches = []string{
	"OTEL_EXPORTER_OTLP_ENDPOINT",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
	"OTEL_TRACES_EXPORTER",
	"OTEL_METRICS_EXPORTER",
}

// telemetry is the OpenTelemetry of one `livestore serve` run: nil providers
// when it is off.
type telemetry struct {
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	shutdown       []func(context.Context) error
}

// telemetryEnabled reports whether the environment asks for export.
func telemetryEnabled(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	for _, k := range otelEnvSwitches {
		if getenv(k) != "" {
			return true
		}
	}
	return false
}

// newTelemetry builds the providers the environment asks for. The caller
// calls Shutdown, which flushes what is buffered.
func newTelemetry(ctx context.Context, getenv func(string) string) (*telemetry, error) {
	t := &telemetry{}
	if !telemetryEnabled(getenv) {
		return t, nil
	}
	// service.name defaults to "livestore"; OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES, read after it, win.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "livestore")),
		resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil {
		return nil, fmt.Errorf("opentelemetry resource: %w", err)
	}
	spans, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("opentelemetry span exporter (OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_*): %w", err)
	}
	if !autoexport.IsNoneSpanExporter(spans) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(spans), sdktrace.WithResource(res))
		t.tracerProvider = tp
		t.shutdown = append(t.shutdown, tp.Shutdown)
	}
	reader, err := autoexport.NewMetricReader(ctx)
	if err != nil {
		_ = t.Shutdown(ctx)
		return nil, fmt.Errorf("opentelemetry metric reader (OTEL_METRICS_EXPORTER / OTEL_EXPORTER_OTLP_*): %w", err)
	}
	if !autoexport.IsNoneMetricReader(reader) {
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res))
		t.meterProvider = mp
		t.shutdown = append(t.shutdown, mp.Shutdown)
	}
	return t, nil
}

// Shutdown flushes and stops the exporters.
func (t *telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	t.shutdown = nil
	return errors.Join(errs...)
}
