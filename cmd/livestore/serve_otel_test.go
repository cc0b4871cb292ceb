package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/livestore-go/livestore/internal/telemetry/otlptest"
	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// serve configured by the standard OTEL_* variables exports its spans and
// metrics over OTLP/HTTP, and flushes them when it stops.
func TestServeOpenTelemetry(t *testing.T) {
	rec := otlptest.Start()
	defer rec.Close()
	cmd, addr := startServeProcessEnv(t, []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + rec.URL(),
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_BSP_SCHEDULE_DELAY=100",
		"OTEL_METRIC_EXPORT_INTERVAL=200",
		"OTEL_SERVICE_NAME=livestore-serve-test",
	}, "--data", filepath.Join(t.TempDir(), "data"))

	c, err := syncclient.Dial(t.Context(), addr, syncclient.Options{StoreID: "traced"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	batch := []syncproto.Event{
		{Name: "v1.A", Args: []byte(`{}`), SeqNum: 1, ParentSeqNum: 0, ClientID: "c", SessionID: "s"},
		{Name: "v1.B", Args: []byte(`{}`), SeqNum: 2, ParentSeqNum: 1, ClientID: "c", SessionID: "s"},
	}
	if err := c.Push(t.Context(), batch, nil); err != nil {
		t.Fatal(err)
	}
	s, err := c.Pull(t.Context(), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := s.Next(t.Context()); err != nil || len(p.Batch) != 2 {
		t.Fatalf("pull: %d events, %v", len(p.Batch), err)
	}
	s.Close()
	c.Close()

	// Stopped as SIGINT stops it, serve flushes what its exporters hold.
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGINT: %v", err)
	}

	var pushes, appends int
	for _, sp := range rec.Spans() {
		if sp.Scope != syncserver.TelemetryScope || sp.Attributes["livestore.store_id"] != "traced" {
			continue
		}
		if sp.Service != "livestore-serve-test" {
			t.Errorf("span %s from service %q", sp.Name, sp.Service)
		}
		switch sp.Name {
		case "livestore.server.push":
			pushes++
			if a := sp.Attributes; a["livestore.event.count"] != "2" || a["livestore.seq.last"] != "2" || a["livestore.result"] != "ok" || a["livestore.event.names"] != "[v1.A v1.B]" {
				t.Errorf("push span attributes %v", a)
			}
		case "livestore.server.append":
			appends++
		}
	}
	if pushes != 1 || appends != 1 {
		t.Errorf("received %d push and %d append spans of store traced, want 1 each; all: %v", pushes, appends, rec.Spans())
	}
	metrics := rec.MetricNames()
	for _, name := range []string{"livestore.server.append.duration", "livestore.server.connections", "livestore.server.events.in", "livestore.server.events.out"} {
		if !slices.Contains(metrics, name) {
			t.Errorf("metric %s not received; got %v", name, metrics)
		}
	}
}
