package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestTodoProgram(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	do := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(ctx, append([]string{"-dir", dir}, args...), &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.String()
	}
	id := strings.TrimSpace(strings.TrimPrefix(do("add", "Buy milk"), "added "))
	do("add", "Walk the dog")
	do("done", id)
	list := do("list")
	if !strings.Contains(list, "[x] "+id+"  Buy milk") || !strings.Contains(list, "[ ] ") {
		t.Fatalf("list:\n%s", list)
	}
	log := do("log")
	if !strings.Contains(log, "e1 ") || !strings.Contains(log, "e3 ") || !strings.Contains(log, "v1.TodoCompleted") {
		t.Fatalf("log:\n%s", log)
	}
	do("delete", id)
	if strings.Contains(do("list"), "Buy milk") {
		t.Fatal("deleted todo still listed")
	}
	if err := run(ctx, []string{"-dir", dir, "done", "nope"}, &bytes.Buffer{}); err == nil {
		t.Fatal("done of an unknown id succeeded")
	}
}
