package devtools_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/livestore-go/livestore/devtools"
)

// TestDirPageRowsEventsSQLInChromium: a store directory's page in Chromium
// browses a table, shows the eventlog with each event's sync state, follows
// a commit of the owning program, and runs read-only SQL.
func TestDirPageRowsEventsSQLInChromium(t *testing.T) {
	ds := newDirStore(t)
	srv := httptest.NewServer(devtools.DirHandler(ds.dir, devtools.Options{}))
	t.Cleanup(srv.Close)
	p := openPage(t, srv.URL+"/#/data")
	p.waitText(`#mode`, "dir")
	p.waitText(`#notice`, "Read-only")
	p.waitText(`#table-list li[data-table="todos"]`, "todos")
	p.do(chromedp.Click(`#table-list li[data-table="todos"]`))
	p.waitText(`#data-table tbody`, "todo 4")
	p.waitText(`#data-readonly`, "read-only")
	if n := p.count(`#data-table tbody tr`); n != 5 {
		t.Fatalf("%d rows of todos", n)
	}

	p.eval(`(location.hash = "#/events", "")`)
	p.waitText(`#events-count`, "6 events held")
	if row := p.text(`#events-table tbody tr[data-seq="e3.1"]`); !strings.Contains(row, "client-only") {
		t.Fatalf("client-only event row %q", row)
	}
	if row := p.text(`#events-table tbody tr[data-seq="e5"]`); !strings.Contains(row, "pending") {
		t.Fatalf("pending event row %q", row)
	}
	if err := ds.store.Commit(t.Context(), ds.created.New(dirTodo{ID: "t5", Text: "todo 5"})); err != nil {
		t.Fatal(err)
	}
	p.waitText(`#events-table tbody tr[data-seq="e6"]`, "todo 5")
	if n := p.count(`#events-table tbody tr`); n != 7 {
		t.Fatalf("%d event rows after a commit, want 7", n)
	}

	p.eval(`(location.hash = "#/sql", "")`)
	p.do(chromedp.SetValue(`#sql-input`, "SELECT id FROM todos ORDER BY id DESC LIMIT 1"),
		chromedp.Click(`#sql-form button[type="submit"]`))
	p.waitText(`#sql-table tbody`, "t5")
	p.do(chromedp.SetValue(`#sql-input`, "DELETE FROM todos"), chromedp.Click(`#sql-form button[type="submit"]`))
	p.waitText(`#sql-error`, "only reading statements")
}
