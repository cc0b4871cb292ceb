package devtools_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/livestore-go/livestore/devtools"
)

// TestDirPageReadOnlyInChromium: a store directory's page says it is read-only and
// why the query inspector and graph are missing, browses the tables and the
// eventlog with pending events marked, refuses an edit with the reason, and
// follows commits of the program that owns the directory.
func TestDirPageReadOnlyInChromium(t *testing.T) {
	ds := newDirStore(t)
	mux := http.NewServeMux()
	mux.Handle("/_devtools/", http.StripPrefix("/_devtools", devtools.DirHandler(ds.dir, devtools.Options{})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	pg := openPage(t, srv.URL+"/_devtools/")
	pg.waitText(`#notice`, "Read-only")
	notice := pg.text(`#notice`)
	if !strings.Contains(notice, "Queries:") || !strings.Contains(notice, "Graph:") {
		t.Fatalf("notice %q", notice)
	}
	if n := pg.count(`#tabs a[data-view="queries"], #tabs a[data-view="graph"]`); n != 0 {
		t.Fatalf("%d links to views a directory lacks", n)
	}
	if n := pg.count(`#tabs .tab-off`); n != 2 {
		t.Fatalf("%d greyed tabs, want queries and graph", n)
	}
	pg.waitText(`#data-range`, "1–5 of 5")
	pg.waitText(`#table-list li[data-table="todos"]`, "read-only")
	pg.dblclick(`#data-table tr[data-key="t1"] td[data-col="text"]`)
	pg.waitText(`#message`, "read-only")
	if n := pg.count(`.cell-input`); n != 0 {
		t.Fatal("a read-only cell opened an input")
	}
	pg.screenshot("dir")

	// The program commits: the page follows.
	if err := ds.store.Commit(context.Background(), ds.created.New(dirTodo{ID: "t5", Text: "todo 5"})); err != nil {
		t.Fatal(err)
	}
	pg.waitText(`#data-table tr[data-key="t5"]`, "todo 5")

	// The eventlog marks the events committed offline as pending.
	pg.do(chromedp.Click(`#tab-events`))
	pg.waitText(`#events-table tbody`, "todo 5")
	if n := pg.count(`#events-table tbody tr.pending`); n != 3 {
		t.Fatalf("%d pending rows, want 3 (t3, t4, t5)", n)
	}
	pg.waitText(`#events-table tbody`, "client-only")

	// Nothing to import into a read-only directory.
	pg.do(chromedp.Click(`#tab-export`))
	pg.waitText(`#import-off`, "read-only")
	if n := pg.count(`#import-pane:not([hidden])`); n != 0 {
		t.Fatal("the import form is offered on a read-only page")
	}

	// A direct link to a missing view says why and opens another.
	pg.do(chromedp.Navigate(srv.URL + "/_devtools/#/graph"))
	pg.waitText(`#message`, "Graph is not available here")
}
