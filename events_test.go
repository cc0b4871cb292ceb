package livestore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
)

func TestSequenceNumbers(t *testing.T) {
	a := newTodoApp(t)
	s := openStore(t, a.schema, "")
	ctx := context.Background()
	mustCommit(t, s, a.created.New(todoCreated{ID: "a", Text: "x"}))
	mustCommit(t, s, a.renamed.New(todoCreated{ID: "a", Text: "y"}), a.renamed.New(todoCreated{ID: "a", Text: "z"}))
	mustCommit(t, s, a.completed.New(todoID{ID: "a"}))
	mustCommit(t, s, a.ui.Set("main", map[string]any{"filter": "done"}))
	var got []string
	var parents []string
	for ev, err := range s.Events(ctx, eventlog.Root) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.SeqNum.String())
		parents = append(parents, ev.ParentSeqNum.String())
		if ev.ClientID != s.ClientID() || ev.SessionID != s.SessionID() {
			t.Errorf("event %s: client %q session %q", ev.SeqNum, ev.ClientID, ev.SessionID)
		}
	}
	want := []string{"e1", "e1.1", "e1.2", "e2", "e2.1"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("seqNums = %v, want %v", got, want)
	}
	if strings.Join(parents, ",") != "e0,e1,e1.1,e1.2,e2" {
		t.Fatalf("parents = %v", parents)
	}
	rows, _ := livestore.Query[todo](ctx, s, a.todos.Select())
	if rows[0].Text != "xyz" || !rows[0].Completed {
		t.Fatalf("row = %+v", rows[0])
	}
	// Iterating from a position skips what came before.
	var after []string
	for ev, err := range s.Events(ctx, eventlog.SeqNum{Global: 1, Client: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		after = append(after, ev.SeqNum.String())
	}
	if strings.Join(after, ",") != "e1.2,e2,e2.1" {
		t.Fatalf("after e1.1: %v", after)
	}
}
