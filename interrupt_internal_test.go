package livestore

import (
	"context"
	"errors"
	"testing"
	"time"
)

type blockKey struct{}

// TestInterruptedPassIsFinished cuts a refresh pass short inside a Computed
// that had read only one of its inputs, the unchanged one, and shows that
// the node stays stale and the refresh goroutine runs it again in full: the
// subscriber gets the value of the changed input.
func TestInterruptedPassIsFinished(t *testing.T) {
	s, _ := groupStore(t)
	g := s.graph
	s1, s2 := NewSignal(1, "s1"), NewSignal(10, "s2")
	sum := NewComputed(func(gt *Getter) (int, error) {
		a, err := Use(gt, s1)
		if err != nil {
			return 0, err
		}
		if ctx := gt.Context(); ctx.Value(blockKey{}) != nil {
			<-ctx.Done()
			return 0, ctx.Err() // s2 not read: not recorded as an input
		}
		b, err := Use(gt, s2)
		return a + b, err
	}, "sum")
	got := make(chan int, 10)
	un, err := Subscribe(context.Background(), s, sum, func(v int) { got <- v })
	if err != nil {
		t.Fatal(err)
	}
	defer un()
	if v := <-got; v != 11 {
		t.Fatalf("first value %d", v)
	}

	g.mu.Lock()
	g.applySignalLocked(s2, 20)
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), blockKey{}, true))
	stop := time.AfterFunc(20*time.Millisecond, cancel)
	defer stop.Stop()
	err = g.refreshLocked(ctx)
	n := g.nodes[sum.key()]
	_, queued := g.stale[n]
	valid, rerun, open := n.valid, n.rerun, g.passOpen
	g.mu.Unlock()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("refresh = %v, want an error wrapping context.Canceled", err)
	}
	if valid || !rerun || !queued || !open {
		t.Fatalf("after the interrupted pass: valid %v, rerun %v, queued %v, pass open %v", valid, rerun, queued, open)
	}
	select {
	case v := <-got:
		if v != 21 {
			t.Fatalf("value after the pass finished: %d", v)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the refresh goroutine did not finish the pass")
	}
	if v, err := Get(context.Background(), s, sum); err != nil || v != 21 {
		t.Fatalf("Get = %d, %v", v, err)
	}
}
