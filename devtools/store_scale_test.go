package devtools_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/devtools"
)

// TestStoreEventlogScale opens the eventlog view of a live Go store with a
// large log in headless Chromium: its first page and its last page show
// within 2 s, the view follows commits from the last page holding each
// event once and in order, and the tab's JavaScript heap stays under 300 MB.
// The normal run uses 50,000 events and 5 s of commits; -devtools.scale
// uses 500,000 events and 60 s.
func TestStoreEventlogScale(t *testing.T) {
	events, traffic, limit := 50_000, 5*time.Second, firstPageLimit
	switch {
	case *scaleFlag:
		events, traffic = 500_000, 60*time.Second
	case raceEnabled:
		events, limit = 20_000, 3*firstPageLimit
	}
	a := newTodoSchema(t)
	s, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: t.TempDir(), StoreID: "big", Durability: livestore.DurabilityProcess})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	start := time.Now()
	for i := 0; i < events; i += 1000 {
		commitTodos(t, a, s, i+1, min(1000, events-i))
	}
	t.Logf("committed %d events in %s", events, time.Since(start).Round(time.Millisecond))
	url := servePage(t, s, devtools.Options{})

	p := &page{t: t, ctx: tab(t, traffic+3*time.Minute)}
	start = time.Now()
	p.do(chromedp.Navigate(url + "#/events"))
	p.waitText(`#events-count`, "100 events held, more after")
	firstShown := time.Since(start)
	start = time.Now()
	p.do(chromedp.Click(`#events-latest`))
	p.waitText(fmt.Sprintf(`#events-table tbody tr[data-seq="e%d"]`, events), "v1.TodoCreated")
	latestShown := time.Since(start)
	t.Logf("%d events: first page in %s, last page in %s", events, firstShown.Round(time.Millisecond), latestShown.Round(time.Millisecond))
	if firstShown > limit || latestShown > limit {
		t.Fatalf("pages took %s (first) and %s (last), over %s", firstShown, latestShown, limit)
	}

	from := events - 99
	checkRows := func(head int) {
		t.Helper()
		rows := p.count(`#events-table tbody tr`)
		unique := p.eval(`String(new Set([...document.querySelectorAll("#events-table tbody tr")].map((tr) => tr.dataset.seq)).size)`)
		inOrder := p.eval(fmt.Sprintf(`String([...document.querySelectorAll("#events-table tbody tr")].every((tr, i) => tr.dataset.seq === "e" + (i + %d)))`, from))
		if rows != head-from+1 || unique != fmt.Sprint(rows) || inOrder != "true" {
			t.Fatalf("store at e%d: %d rows from e%d, %s distinct, in order %s", head, rows, from, unique, inOrder)
		}
	}
	checkRows(events)

	// Commits of one event, 20 a second, while the heap is sampled.
	head := events
	var maxHeap float64
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	end := time.Now().Add(traffic)
	for n := 0; time.Now().Before(end); n++ {
		<-tick.C
		head++
		commitTodos(t, a, s, head, 1)
		if n%20 == 0 {
			heap, _ := jsHeap(t, p.ctx)
			maxHeap = max(maxHeap, heap)
		}
	}
	p.waitText(fmt.Sprintf(`#events-table tbody tr[data-seq="e%d"]`, head), "v1.TodoCreated")
	checkRows(head)
	heap, nodes := jsHeap(t, p.ctx)
	maxHeap = max(maxHeap, heap)
	t.Logf("after %s of commits (e%d): JS heap %.1f MiB (max %.1f MiB), %.0f DOM nodes", traffic, head, heap/(1<<20), maxHeap/(1<<20), nodes)
	if maxHeap > heapLimit {
		t.Fatalf("JS heap reached %.1f MiB, over %d MiB", maxHeap/(1<<20), heapLimit>>20)
	}
}
