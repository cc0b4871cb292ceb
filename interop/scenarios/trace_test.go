package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/livestore-go/livestore/internal/telemetry"
	"github.com/livestore-go/livestore/syncproto"
)

// testTraceFields: a push whose request envelope carries a sampled trace
// context (traceId, spanId, sampled, filled from an OpenTelemetry span as
// the Go client fills them) is accepted by the server at url, and its events
// are pulled back as pushed. The JavaScript clients always send these
// fields; this checks the values the Go side writes.
func testTraceFields(t *testing.T, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	storeID := newStoreID("traced")
	batch := make([]syncproto.Event, 3)
	for i := range batch {
		seq := int64(i + 1)
		batch[i] = syncproto.Event{Name: "v1.TodoCreated", Args: json.RawMessage(fmt.Sprintf(`{"id":"t%d","text":"traced %d"}`, seq, seq)),
			SeqNum: seq, ParentSeqNum: seq - 1, ClientID: "tracer", SessionID: "s-tracer"}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	defer tp.Shutdown(context.Background())
	spanCtx, span := tp.Tracer("interop").Start(ctx, "push")
	defer span.End()
	if err := pushTraced(ctx, url, storeID, batch, telemetry.Inject(spanCtx)); err != nil {
		t.Fatalf("push with a trace context: %v", err)
	}
	log, err := pullLog(ctx, url, storeID)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if len(log) != len(batch) {
		t.Fatalf("pulled %d events, want %d", len(log), len(batch))
	}
	for i, ev := range log {
		want := batch[i]
		if ev.SeqNum != want.SeqNum || ev.ParentSeqNum != want.ParentSeqNum || ev.Name != want.Name || string(ev.Args) != string(want.Args) || ev.ClientID != want.ClientID {
			t.Errorf("event %d: got %+v, want %+v", i, ev, want)
		}
	}
}

// pushTraced pushes batch over a WebSocket of its own in one request whose
// envelope has the trace fields of w, and waits for the answer.
func pushTraced(ctx context.Context, url, storeID string, batch []syncproto.Event, w telemetry.WireContext) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, strings.TrimRight(url, "/")+"/?storeId="+storeID+"&transport=ws", nil)
	if err != nil {
		return err
	}
	defer conn.CloseNow() // the reference never answers a close handshake
	payload, err := json.Marshal(syncproto.PushRequest{StoreID: storeID, Batch: batch})
	if err != nil {
		return err
	}
	req := &syncproto.Request{ID: "0", Tag: syncproto.TagPush, Payload: payload, TraceID: w.TraceID, SpanID: w.SpanID, Sampled: w.Sampled}
	data, err := syncproto.Marshal(req)
	if err != nil {
		return err
	}
	if !strings.Contains(string(data), `"traceId":"`+w.TraceID+`"`) || !strings.Contains(string(data), `"sampled":true`) {
		return fmt.Errorf("request carries no trace context: %s", data)
	}
	if err := conn.Write(ctx, websocket.MessageText, data); err != nil {
		return err
	}
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		msg, err := syncproto.DecodeServerMessage(data)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *syncproto.Exit:
			if m.RequestID == "0" {
				return m.Err()
			}
		case *syncproto.Defect:
			return fmt.Errorf("defect: %s", m.Defect)
		}
	}
}

// Our server accepts the trace fields as the reference does.
func TestTraceFieldsOnOurServer(t *testing.T) {
	t.Parallel()
	testTraceFields(t, startGoServer(t, onSQLite).URL())
}
