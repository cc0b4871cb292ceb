package livestore

import (
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// spanCtx returns a valid span context told apart by n.
func spanCtx(n int) trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{byte(n), byte(n >> 8), 1},
	})
}

func TestPushParents(t *testing.T) {
	var p pushParents
	p.add(1, 3, spanCtx(1))
	p.add(4, 4, spanCtx(2))
	p.add(5, 9, spanCtx(3))

	lookup := func(first, last int64) (int, []int) {
		parent, links := p.lookup(first, last)
		id := func(sc trace.SpanContext) int {
			sid := sc.SpanID()
			return int(sid[0]) | int(sid[1])<<8
		}
		got := -1
		if parent.IsValid() {
			got = id(parent)
		}
		var ls []int
		for _, l := range links {
			ls = append(ls, id(l.SpanContext))
		}
		return got, ls
	}
	check := func(name string, first, last int64, parent int, links ...int) {
		t.Helper()
		gp, gl := lookup(first, last)
		if gp != parent || len(gl) != len(links) {
			t.Fatalf("%s: lookup(%d, %d) = %d %v, want %d %v", name, first, last, gp, gl, parent, links)
		}
		for i := range gl {
			if gl[i] != links[i] {
				t.Fatalf("%s: lookup(%d, %d) links %v, want %v", name, first, last, gl, links)
			}
		}
	}
	check("inside one commit", 2, 3, 1)
	check("across commits", 2, 6, 1, 2, 3)
	check("unknown", 10, 12, -1)

	p.forgetThrough(2) // e1, e2 pushed
	check("after push", 1, 2, -1)
	check("rest of a commit", 3, 4, 1, 2)

	p.shift(4, 10) // e4 on rebased to e14 on
	check("kept", 3, 3, 1)
	check("shifted", 14, 19, 2, 3)
	check("old numbers", 4, 9, -1)

	p.reset()
	check("reset", 1, 100, -1)
}

func TestPushParentsBounded(t *testing.T) {
	var p pushParents
	for i := 0; i < maxPushParents+10; i++ {
		p.add(int64(i+1), int64(i+1), spanCtx(i))
	}
	if len(p.ranges) != maxPushParents {
		t.Fatalf("%d ranges kept, want %d", len(p.ranges), maxPushParents)
	}
	if parent, _ := p.lookup(1, 1); parent.IsValid() {
		t.Error("the oldest commit is still there")
	}
	if parent, _ := p.lookup(maxPushParents+10, maxPushParents+10); !parent.Equal(spanCtx(maxPushParents + 9)) {
		t.Error("the newest commit is missing")
	}
}
