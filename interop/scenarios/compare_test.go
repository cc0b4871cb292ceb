package scenarios

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/testschema"
	"github.com/livestore-go/livestore/interop/harness"
	"github.com/livestore-go/livestore/syncproto"
)

// maxRebaseGeneration is the highest rebase generation in a log.
func maxRebaseGeneration(evs []eventlog.Event) int64 {
	var g int64
	for _, ev := range evs {
		g = max(g, ev.SeqNum.RebaseGeneration)
	}
	return g
}

// checkServerLog checks that a server log is one chain without gaps or
// duplicates: seqNums 1…n, each parent the previous, no todo created twice.
func checkServerLog(t testing.TB, label string, log []syncproto.Event) {
	t.Helper()
	created := map[string]int64{}
	for i, ev := range log {
		if ev.SeqNum != int64(i+1) || ev.ParentSeqNum != int64(i) {
			t.Errorf("%s: event %d is e%d with parent e%d, want e%d after e%d", label, i, ev.SeqNum, ev.ParentSeqNum, i+1, i)
		}
		if ev.Name == "v1.TodoCreated" {
			var a testschema.TodoCreated
			if err := json.Unmarshal(ev.Args, &a); err != nil {
				t.Errorf("%s: e%d: %v", label, ev.SeqNum, err)
			}
			if first, dup := created[a.ID]; dup {
				t.Errorf("%s: todo %s created twice, at e%d and e%d", label, a.ID, first, ev.SeqNum)
			}
			created[a.ID] = ev.SeqNum
		}
	}
}

// compareLog checks a client's synced events against the server's log:
// same seqNums and parents, names, client and session ids, and args equal as
// JSON values.
func compareLog(t testing.TB, label string, server []syncproto.Event, client []eventlog.Event) {
	t.Helper()
	var synced []eventlog.Event
	for _, ev := range client {
		if !ev.SeqNum.IsClientOnly() {
			synced = append(synced, ev)
		}
	}
	if len(synced) != len(server) {
		t.Errorf("%s: %d synced events, the server has %d", label, len(synced), len(server))
	}
	for i := range min(len(synced), len(server)) {
		c, s := synced[i], server[i]
		var diffs []string
		if c.SeqNum.Global != s.SeqNum || c.ParentSeqNum.Global != s.ParentSeqNum {
			diffs = append(diffs, fmt.Sprintf("seqNum %s←%s, server e%d←e%d", c.SeqNum, c.ParentSeqNum, s.SeqNum, s.ParentSeqNum))
		}
		if c.Name != s.Name || c.ClientID != s.ClientID || c.SessionID != s.SessionID {
			diffs = append(diffs, fmt.Sprintf("%s by %s/%s, server %s by %s/%s", c.Name, c.ClientID, c.SessionID, s.Name, s.ClientID, s.SessionID))
		}
		if !sameJSON(c.Args, s.Args) {
			diffs = append(diffs, fmt.Sprintf("args %s, server %s", clip(string(c.Args)), clip(string(s.Args))))
		}
		if len(diffs) > 0 {
			t.Errorf("%s: event %d: %s", label, i, strings.Join(diffs, "; "))
		}
	}
}

// compareStates checks a Go store's state against a JS client's, field by
// field: text (unicode), completed (boolean), deletedAt (the stored ISO text)
// and the annotation notes (JSON values: nesting, unicode, large strings).
func compareStates(t testing.TB, label string, g goState, js *harness.ClientResult) {
	t.Helper()
	if len(g.Todos) != len(js.Todos) {
		t.Errorf("%s: Go has %d todos, JS %d", label, len(g.Todos), len(js.Todos))
	}
	for i := range min(len(g.Todos), len(js.Todos)) {
		gr, jr := g.Todos[i], js.Todos[i]
		if gr.ID != jr.ID || gr.Text != jr.Text || gr.Completed != jr.Completed || !reflect.DeepEqual(gr.DeletedAt, jr.DeletedAt) {
			t.Errorf("%s: todo %d differs:\n  Go: %s\n  JS: %s", label, i, rowString(gr.ID, gr.Text, gr.Completed, gr.DeletedAt),
				rowString(jr.ID, jr.Text, jr.Completed, jr.DeletedAt))
		}
	}
	if len(g.Annotations) != len(js.Annotations) {
		t.Errorf("%s: Go has %d annotations, JS %d", label, len(g.Annotations), len(js.Annotations))
	}
	for i := range min(len(g.Annotations), len(js.Annotations)) {
		ga, ja := g.Annotations[i], js.Annotations[i]
		if ga.ID != ja.ID || !sameJSON(json.RawMessage(ga.Note), ja.Note) {
			t.Errorf("%s: annotation %d differs:\n  Go: %s %s\n  JS: %s %s", label, i, ga.ID, clip(ga.Note), ja.ID, clip(string(ja.Note)))
		}
	}
}

// compareGoStates checks two Go stores' states field by field.
func compareGoStates(t testing.TB, label string, a, b goState) {
	t.Helper()
	if !reflect.DeepEqual(a.Todos, b.Todos) {
		t.Errorf("%s: todos differ:\n  %+v\n  %+v", label, a.Todos, b.Todos)
	}
	if len(a.Annotations) != len(b.Annotations) {
		t.Errorf("%s: %d and %d annotations", label, len(a.Annotations), len(b.Annotations))
		return
	}
	for i := range a.Annotations {
		if a.Annotations[i].ID != b.Annotations[i].ID || !sameJSON(json.RawMessage(a.Annotations[i].Note), json.RawMessage(b.Annotations[i].Note)) {
			t.Errorf("%s: annotation %d differs", label, i)
		}
	}
}

func rowString(id, text string, completed bool, deletedAt *string) string {
	d := "null"
	if deletedAt != nil {
		d = *deletedAt
	}
	return fmt.Sprintf("{id:%s text:%q completed:%v deletedAt:%s}", id, text, completed, d)
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(a, b json.RawMessage) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(va, vb)
}

func clip(s string) string {
	if len(s) > 300 {
		return fmt.Sprintf("%s…(%d bytes)", s[:300], len(s))
	}
	return s
}

// ids lists the todo ids of rows.
func ids(rows []todoRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	return out
}
