package syncserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// The server's spans go to an OpenTelemetry TracerProvider, here the SDK's
// exporting to memory (a program would export with OTLP). A request whose
// envelope carries a sampled trace context is traced in the client's trace;
// this client sends none, so the push is a root span.
func ExampleOptions_tracing() {
	dir, _ := os.MkdirTemp("", "livestore-example")
	defer os.RemoveAll(dir)
	storage, err := sqlitestore.Open(filepath.Join(dir, "sync.db"), sqlitestore.Options{})
	if err != nil {
		panic(err)
	}
	defer storage.Close()

	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer tp.Shutdown(context.Background())
	srv, err := syncserver.New(syncserver.Options{Storage: storage, TracerProvider: tp})
	if err != nil {
		panic(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()

	ctx := context.Background()
	client, err := syncclient.Dial(ctx, hs.URL, syncclient.Options{StoreID: "todos"})
	if err != nil {
		panic(err)
	}
	err = client.Push(ctx, []syncproto.Event{
		{Name: "v1.TodoCreated", Args: json.RawMessage(`{"id":"a1","text":"Buy milk"}`), SeqNum: 1, ParentSeqNum: 0, ClientID: "Xk3f9a", SessionID: "s-2b7q"},
	}, nil)
	if err != nil {
		panic(err)
	}
	client.Close()
	// Shutdown waits for the requests being handled, so their spans have ended.
	if err := srv.Shutdown(ctx); err != nil {
		panic(err)
	}
	for _, s := range spans.GetSpans() {
		fmt.Println(s.Name, s.Parent.IsValid())
		for _, kv := range s.Attributes {
			fmt.Printf("  %s=%s\n", kv.Key, kv.Value.Emit())
		}
	}
	// Output:
	// livestore.server.append true
	//   livestore.store_id=todos
	//   livestore.event.count=1
	// livestore.server.push false
	//   livestore.store_id=todos
	//   livestore.transport=ws
	//   livestore.event.count=1
	//   livestore.seq.first=1
	//   livestore.seq.last=1
	//   livestore.event.names=["v1.TodoCreated"]
	//   livestore.result=ok
}
