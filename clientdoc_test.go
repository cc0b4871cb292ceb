package livestore_test

import (
	"context"
	"testing"
)

func TestClientDocument(t *testing.T) {
	a := newTodoApp(t)
	s := openStore(t, a.schema, "")
	ctx := context.Background()
	v, err := a.ui.Get(ctx, s, "main")
	if err != nil || v != (uiState{Filter: "all"}) {
		t.Fatalf("default = %+v, %v", v, err)
	}
	mustCommit(t, s, a.ui.Set("main", map[string]any{"newText": "hello"}))
	mustCommit(t, s, a.ui.Set("main", struct {
		Filter string `json:"filter"`
	}{"completed"}))
	v, err = a.ui.Get(ctx, s, "main")
	if err != nil || v != (uiState{Filter: "completed", NewText: "hello"}) {
		t.Fatalf("merged = %+v, %v", v, err)
	}
	other, _ := a.ui.Get(ctx, s, "other")
	if other != (uiState{Filter: "all"}) {
		t.Fatalf("other = %+v", other)
	}
	if a.ui.SetEvent() != "uiStateSet" {
		t.Fatalf("set event = %s", a.ui.SetEvent())
	}
}
