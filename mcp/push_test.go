package mcp

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPushEvents(t *testing.T) {
	st := newStorage(t)
	cs := connect(t, Options{Storage: st, Appender: StorageAppender(st)})
	ev := func(text string) map[string]any {
		return map[string]any{"name": "v1.TodoCreated", "args": map[string]any{"id": text, "text": text}}
	}
	var out pushOutput
	call(t, cs, "push_events", map[string]any{"storeId": "beta", "head": 2, "events": []any{ev("x"), ev("y")}}, &out)
	if out.First != 3 || out.Head != 4 {
		t.Fatalf("push %+v, want first 3, head 4", out)
	}
	var read readEventsOutput
	call(t, cs, "read_events", map[string]any{"storeId": "beta", "after": 2}, &read)
	if len(read.Events) != 2 || read.Events[1].SeqNum != 4 || read.Events[1].ClientID != DefaultPushClientID || read.Head != 4 {
		t.Fatalf("read after push %+v", read)
	}

	// A second push at the head read before the first is refused.
	msg := callFail(t, cs, "push_events", map[string]any{"storeId": "beta", "head": 2, "events": []any{ev("z")}})
	if !strings.Contains(msg, "the store's head is 4, not 2: another writer appended since") {
		t.Errorf("stale push: %q", msg)
	}
	deep := strings.Repeat("[", 70) + strings.Repeat("]", 70)
	for _, tc := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"storeId": "beta", "head": 4, "events": []any{map[string]any{"name": "v1.TodoDeleted", "args": map[string]any{}}}},
			`name "v1.TodoDeleted" does not occur in the log of "beta"; names used there include "v1.TodoCreated"`},
		{map[string]any{"storeId": "beta", "head": 4, "events": []any{map[string]any{"name": "v1.TodoCreated", "args": rawJSON(deep)}}}, "nest"},
		{map[string]any{"storeId": "beta", "head": 4, "events": []any{map[string]any{"name": "v1.TodoCreated"}}}, "args is required"},
		{map[string]any{"storeId": "beta", "head": 4, "events": []any{map[string]any{"name": "v1.Todo\x01", "args": map[string]any{}}}}, "control"},
		{map[string]any{"storeId": "nope", "head": 0, "events": []any{ev("a")}}, `unknown store "nope"`},
		{map[string]any{"storeId": "beta", "head": 4, "events": "v1.TodoCreated"}, "events must be null or a list"},
		{map[string]any{"storeId": "beta", "head": 4, "events": []any{}}, "nothing to push"},
		{map[string]any{"storeId": "beta", "head": -1, "events": []any{ev("a")}}, "head -1"},
		{map[string]any{"storeId": "beta", "head": 4, "events": slices.Repeat([]any{ev("a")}, 101)}, "101 events: push at most 100 per call"},
		{map[string]any{"storeId": "beta", "head": 4, "events": slices.Repeat([]any{ev(strings.Repeat("x", 60_000))}, 10)}, "push at most 900000 bytes per call"},
	} {
		if got := callFail(t, cs, "push_events", tc.args); !strings.Contains(got, tc.want) {
			t.Errorf("%v: %q, want it to contain %q", tc.args, got, tc.want)
		}
	}
	if h, err := st.Head(t.Context(), "beta"); err != nil || h != 4 {
		t.Fatalf("head %d, %v after refused pushes; want 4", h, err)
	}
}

func TestPushEventsNeedsStorage(t *testing.T) {
	st := newStorage(t)
	if _, err := NewServer(Options{StoreDirs: []string{"x"}, Appender: StorageAppender(st)}); err == nil {
		t.Fatal("NewServer with an Appender and no Storage succeeded")
	}
	cs := connect(t, Options{Storage: st})
	if got := toolNames(t, cs); strings.Contains(strings.Join(got, " "), "push_events") {
		t.Fatalf("push_events registered without an Appender: %v", got)
	}
}

func TestSyncStatus(t *testing.T) {
	dir := newClientStore(t)
	if err := os.WriteFile(filepath.Join(dir, "recovery-20261125T100000Z.jsonl"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cs := connect(t, Options{StoreDirs: []string{dir}})
	var out syncStatusOutput
	call(t, cs, "sync_status", map[string]any{"dir": dir}, &out)
	if out.Head != "e4" || out.Pending != 4 || out.UpstreamHead != 0 || out.BackendID != "" ||
		len(out.RecoveryFiles) != 1 || out.RecoveryFiles[0] != "recovery-20261125T100000Z.jsonl" {
		t.Fatalf("sync_status %+v", out)
	}
	if msg := callFail(t, cs, "sync_status", map[string]any{"dir": "/elsewhere"}); !strings.Contains(msg, "is not served") {
		t.Errorf("other dir: %q", msg)
	}
}

func rawJSON(s string) json.RawMessage { return json.RawMessage(s) }
