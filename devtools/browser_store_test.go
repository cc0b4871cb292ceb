package devtools_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/devtools"
)

// pair is a store whose page the browser shows and a second client that
// syncs into it through a real sync server on loopback.
type pair struct {
	a      *todoSchema
	store  *livestore.Store // the page's store
	other  *livestore.Store // the second client
	url    string           // the page, ending in /
	server string           // ws:// URL of the sync server
}

func newPair(t *testing.T) *pair {
	t.Helper()
	a := newTodoSchema(t)
	ws := startSyncServer(t)
	p := &pair{a: a, server: ws, store: openStore(t, a, ws), other: openStore(t, a, ws)}
	p.url = servePage(t, p.store, devtools.Options{Edit: a.edit})
	return p
}

// textOf is a query of the text of one todo, "" while it does not exist.
func (p *pair) textOf(id string) livestore.Queryable[string] {
	return livestore.QueryDBFirst[string](p.a.todos.Select("text").Where(livestore.Eq("id", id)), "")
}

func (p *pair) eventCount(t *testing.T, s *livestore.Store) int {
	t.Helper()
	evs, _, err := s.EventLog(context.Background(), livestore.EventLogQuery{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// TestDataBrowserInChromium: rows the second client commits appear without a
// reload; a double-click edit commits an event that reaches the other client;
// edits the app refuses and unknown tables say why on the page, and change
// nothing.
func TestDataBrowserInChromium(t *testing.T) {
	p := newPair(t)
	commitTodos(t, p.a, p.store, 1, 3)
	pg := openPage(t, p.url+"#/data/todos")
	pg.waitText(`#data-range`, "1–3 of 3")

	// Rows from the other client appear by themselves.
	commitTodos(t, p.a, p.other, 4, 2)
	pg.waitText(`#data-table tr[data-key="t005"]`, "todo 005")
	pg.waitText(`#table-list li[data-table="todos"] .count`, "5")

	// Sort by a column, descending on the second click.
	pg.do(chromedp.Click(`#data-table th[data-col="id"]`))
	pg.waitText(`#data-table th[data-col="id"]`, "▲")
	pg.do(chromedp.Click(`#data-table th[data-col="id"]`))
	pg.waitText(`#data-table th[data-col="id"]`, "▼")
	pg.waitText(`#data-table tbody tr:first-child`, "t005")

	// Edit a cell: the event reaches the other client.
	cellSel := `#data-table tr[data-key="t002"] td[data-col="text"]`
	pg.dblclick(cellSel)
	pg.do(chromedp.WaitVisible(`.cell-input`),
		chromedp.SetValue(`.cell-input`, "renamed in the browser"), chromedp.KeyEvent("\r"))
	pg.waitText(`#message`, "committed v1.TodoRenamed")
	waitFor(t, p.other, p.textOf("t002"), func(s string) bool { return s == "renamed in the browser" })
	pg.waitText(cellSel, "renamed in the browser")
	pg.screenshot("data")

	// The app's Edit refuses another column: the page shows its words.
	before := p.eventCount(t, p.store)
	pg.dblclick(`#data-table tr[data-key="t001"] td[data-col="completed"]`)
	pg.do(chromedp.WaitVisible(`.cell-input`),
		chromedp.SetValue(`.cell-input`, "true"), chromedp.KeyEvent("\r"))
	pg.waitText(`#data-error`, "only the text of a todo can be edited")
	// A value the column cannot hold never leaves the page.
	pg.dblclick(`#data-table tr[data-key="t001"] td[data-col="completed"]`)
	pg.do(chromedp.WaitVisible(`.cell-input`),
		chromedp.SetValue(`.cell-input`, "maybe"), chromedp.KeyEvent("\r"))
	pg.waitText(`#data-error`, "completed: want true or false")
	if n := p.eventCount(t, p.store); n != before {
		t.Fatalf("refused edits changed the eventlog: %d events, want %d", n, before)
	}

	// An unknown table says so.
	pg.do(chromedp.Navigate(p.url + "#/data/nosuch"))
	pg.waitText(`#data-error`, "nosuch")
	pg.waitText(`#message`, "HTTP 404")

	// A client document is edited through its Set event.
	pg.do(chromedp.Navigate(p.url + "#/data/uiState"))
	if err := p.store.Commit(context.Background(), p.a.ui.Set("main", uiState{Filter: "all"})); err != nil {
		t.Fatal(err)
	}
	docCell := `#data-table tr[data-key="main"] td[data-col="value"]`
	pg.waitText(docCell, "all")
	pg.dblclick(docCell)
	pg.do(chromedp.WaitVisible(`.cell-input`),
		chromedp.SetValue(`.cell-input`, `{"filter":"completed"}`), chromedp.KeyEvent("\r"))
	pg.waitText(`#message`, "committed uiStateSet")
	pg.waitText(docCell, `"completed"`)
	doc, err := p.a.ui.Get(context.Background(), p.store, "main")
	if err != nil || doc.Filter != "completed" {
		t.Fatalf("document after the edit: %+v, %v", doc, err)
	}
}

// TestQueryInspectorInChromium: a live query shows its label, SQL and
// tables, and its run count rises as commits land.
func TestQueryInspectorInChromium(t *testing.T) {
	p := newPair(t)
	open := livestore.QueryDB[todo](p.a.todos.Where(livestore.Eq("completed", false)), "open todos")
	unsub, err := livestore.Subscribe(context.Background(), p.store, open, func([]todo) {})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	pg := openPage(t, p.url+"#/queries")
	pg.waitText(`#queries-table tbody`, "open todos")
	text := pg.text(`#queries-table tbody`)
	if !strings.Contains(text, "SELECT") || !strings.Contains(text, "todos") {
		t.Fatalf("queries table: %q", text)
	}
	runs := func() int {
		s := pg.eval(`(() => { for (const tr of document.querySelectorAll("#queries-table tbody tr")) if (tr.textContent.includes("open todos")) return tr.querySelector(".runs").textContent; return "-1" })()`)
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("run count %q", s)
		}
		return n
	}
	r0 := runs()
	commitTodos(t, p.a, p.other, 1, 1)
	pg.waitJS(fmt.Sprintf(`(() => { for (const tr of document.querySelectorAll("#queries-table tbody tr")) if (tr.textContent.includes("open todos")) return +tr.querySelector(".runs").textContent > %d; return false })()`, r0))
	pg.waitText(`#queries-table tbody`, "todo 001")
	pg.screenshot("queries")
}

// TestEventlogInChromium: the eventlog opens on its first page, pages on
// with a cursor, follows new events without duplicates, marks client-only
// and pending events, and filters by name, range and status.
func TestEventlogInChromium(t *testing.T) {
	p := newPair(t)
	commitTodos(t, p.a, p.store, 1, 250)
	waitSynced(t, p.store)
	pg := openPage(t, p.url+"#/events")
	pg.waitText(`#events-count`, "100 events held, more after")
	if first := pg.text(`#events-table tbody tr:first-child`); !strings.Contains(first, "e1") || !strings.Contains(first, "todo 001") {
		t.Fatalf("first row %q", first)
	}
	pg.do(chromedp.Click(`#events-more`))
	pg.waitText(`#events-count`, "200 events held")
	pg.do(chromedp.Click(`#events-more`))
	pg.waitText(`#events-count`, "250 events held")

	// New events, from the other client and a client-only one, arrive by
	// themselves and once.
	commitTodos(t, p.a, p.other, 251, 2)
	pg.waitText(`#events-table tr[data-seq="e252"]`, "todo 252")
	if err := p.store.Commit(context.Background(), p.a.ui.Set("main", uiState{Filter: "active"})); err != nil {
		t.Fatal(err)
	}
	pg.waitText(`#events-table tr[data-seq="e252.1"]`, "client-only")
	if n := pg.count(`#events-table tbody tr`); n != 253 {
		t.Fatalf("%d rows held, want 253", n)
	}
	if dup := pg.eval(`(() => { const s = new Set(); for (const tr of document.querySelectorAll("#events-table tbody tr")) { if (s.has(tr.dataset.seq)) return tr.dataset.seq; s.add(tr.dataset.seq) } return "" })()`); dup != "" {
		t.Fatalf("row %s held twice", dup)
	}
	pg.eval(`(() => { const s = document.querySelector("#view-events .scroll"); s.scrollTop = s.scrollHeight; return "" })()`)
	pg.screenshot("events")

	// Filters: a range of one name.
	pg.do(chromedp.SetValue(`#f-name`, "v1.TodoCreated"), chromedp.SetValue(`#f-from`, "e10"), chromedp.SetValue(`#f-to`, "e12"),
		chromedp.Click(`#event-filters button[type=submit]`))
	pg.waitJS(`document.querySelectorAll("#events-table tbody tr").length === 2 || document.querySelectorAll("#events-table tbody tr").length === 3`)
	rows := pg.text(`#events-table tbody`)
	if !strings.Contains(rows, "todo 011") || strings.Contains(rows, "todo 009") || strings.Contains(rows, "todo 013") {
		t.Fatalf("filtered rows %q", rows)
	}
	// Status pending: the client-only event is never synced; nothing else pends.
	pg.setValue(`#f-name`, "")
	pg.setValue(`#f-from`, "")
	pg.setValue(`#f-to`, "")
	pg.setValue(`#f-status`, "synced")
	pg.do(chromedp.Click(`#event-filters button[type=submit]`))
	pg.waitText(`#events-count`, "100 events held, more after")
	// A bad range says why.
	pg.do(chromedp.SetValue(`#f-from`, "nonsense"), chromedp.Click(`#event-filters button[type=submit]`))
	pg.waitText(`#events-error`, "HTTP 400")
}

// TestSyncViewInChromium: the sync view shows the connection, the backend,
// both heads and what is pending, and follows the store when the server
// goes away.
func TestSyncViewInChromium(t *testing.T) {
	p := newPair(t)
	commitTodos(t, p.a, p.other, 1, 3)
	waitFor(t, p.store, p.textOf("t003"), func(s string) bool { return s != "" })
	waitSynced(t, p.store)
	pg := openPage(t, p.url+"#/sync")
	pg.waitText(`#sync-list dd[data-field="connected"]`, "connected")
	pg.waitText(`#sync-list dd[data-field="upstream head"]`, "e3")
	pg.waitText(`#sync-list dd[data-field="local head"]`, "e3")
	pg.waitText(`#sync-list dd[data-field="pending"]`, "0")
	st, err := p.store.SyncStatus(context.Background())
	if err != nil || st.BackendID == "" {
		t.Fatalf("sync status %+v, %v", st, err)
	}
	pg.waitText(`#sync-list dd[data-field="backend id"]`, st.BackendID)

	// Another commit from the other client moves both heads live.
	commitTodos(t, p.a, p.other, 4, 1)
	pg.waitText(`#sync-list dd[data-field="upstream head"]`, "e4")
	pg.waitText(`#sync-list dd[data-field="local head"]`, "e4")
	pg.screenshot("sync")
}

// TestExportImportInChromium: the eventlog downloaded from one page and
// uploaded into an empty store's page gives that store the same eventlog; a
// store that has events refuses an import and the page says why.
func TestExportImportInChromium(t *testing.T) {
	p := newPair(t)
	commitTodos(t, p.a, p.store, 1, 20)
	if err := p.store.Commit(context.Background(), p.a.ui.Set("main", uiState{Filter: "active"})); err != nil {
		t.Fatal(err)
	}
	pg := openPage(t, p.url+"#/export")
	dir := t.TempDir()
	if _, err := chromedp.CallBrowser(pg.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir}); err != nil {
		t.Fatal(err)
	}
	pg.do(chromedp.Click(`#export-link`))
	var file string
	deadline := time.Now().Add(10 * time.Second)
	for file == "" {
		// Chromium writes NAME.crdownload and renames it when complete.
		if m, _ := filepath.Glob(filepath.Join(dir, "*.jsonl")); len(m) == 1 {
			file = m[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no download in %s", dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
	pg.screenshot("export")

	// Import into an empty store: the same eventlog.
	empty := openStore(t, p.a, "")
	emptyURL := servePage(t, empty, devtools.Options{})
	pg2 := openPage(t, emptyURL+"#/export")
	pg2.do(chromedp.SetUploadFiles(`#import-file`, []string{file}), chromedp.Click(`#import-form button[type=submit]`))
	pg2.waitText(`#import-result`, "imported 20 events") // the 20 synced ones: client-only events stay out of an export
	want, got := eventLog(t, p.store), eventLog(t, empty)
	if want != got {
		t.Fatalf("imported eventlog differs:\n%s\nwant\n%s", got, want)
	}
	if rows, err := livestore.Get(context.Background(), empty, livestore.QueryDB[todo](p.a.todos.Select())); err != nil || len(rows) != 20 {
		t.Fatalf("imported state: %d todos, %v", len(rows), err)
	}

	// The store the page shows has events: refused with the reason.
	pg.do(chromedp.SetUploadFiles(`#import-file`, []string{file}), chromedp.Click(`#import-form button[type=submit]`))
	pg.waitText(`#import-result`, "HTTP 409")
	if n := p.eventCount(t, p.store); n != 21 {
		t.Fatalf("refused import changed the store: %d events", n)
	}
}

// eventLog is a store's eventlog, less its client-only events, as seq, name
// and args lines.
func eventLog(t *testing.T, s *livestore.Store) string {
	t.Helper()
	evs, _, err := s.EventLog(context.Background(), livestore.EventLogQuery{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range evs {
		if e.SeqNum.IsClientOnly() {
			continue
		}
		args, _ := json.Marshal(e.Args)
		fmt.Fprintf(&b, "%s %s %s\n", e.SeqNum, e.Name, args)
	}
	return b.String()
}

// TestGraphInChromium: the graph draws the store's reactive nodes and their
// edges, shows a node subscribed later without a reload, and marks what the
// last commit re-ran.
func TestGraphInChromium(t *testing.T) {
	p := newPair(t)
	filter := livestore.NewSignal("all", "filter")
	all := livestore.QueryDB[todo](p.a.todos.Select(), "all todos")
	visible := livestore.NewComputed(func(g *livestore.Getter) (int, error) {
		f, err := livestore.Use(g, filter)
		if err != nil {
			return 0, err
		}
		rows, err := livestore.Use(g, all)
		if err != nil {
			return 0, err
		}
		n := 0
		for _, r := range rows {
			if f == "all" || (f == "done") == r.Completed {
				n++
			}
		}
		return n, nil
	}, "visible count")
	unsub, err := livestore.Subscribe(context.Background(), p.store, visible, func(int) {})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	pg := openPage(t, p.url+"#/graph")
	pg.waitText(`#graph`, "visible count")
	for _, label := range []string{"filter", "all todos"} {
		pg.waitText(`#graph`, label)
	}
	if n := pg.count(`#graph path.edge`); n < 2 {
		t.Fatalf("%d edges drawn, want at least 2", n)
	}

	// A node subscribed later appears; a commit marks what it re-ran.
	later := livestore.QueryDB[todo](p.a.todos.Where(livestore.Eq("completed", true)), "done todos")
	unsub2, err := livestore.Subscribe(context.Background(), p.store, later, func([]todo) {})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub2()
	pg.waitText(`#graph`, "done todos")
	commitTodos(t, p.a, p.other, 1, 1)
	pg.waitJS(`[...document.querySelectorAll("#graph g.node.reran")].some((g) => g.textContent.includes("all todos"))`)
	pg.waitText(`#graph-commit`, "re-ran")
	pg.screenshot("graph")
}

// TestSQLPlaygroundInChromium: a SELECT shows its rows; a write is refused
// inline and changes nothing.
func TestSQLPlaygroundInChromium(t *testing.T) {
	p := newPair(t)
	commitTodos(t, p.a, p.store, 1, 5)
	pg := openPage(t, p.url+"#/sql")
	pg.do(chromedp.WaitVisible(`#sql-input`), chromedp.SetValue(`#sql-input`, "SELECT id, text FROM todos ORDER BY id"),
		chromedp.Click(`#sql-form button[type=submit]`))
	pg.waitText(`#sql-note`, "5 rows")
	if got := pg.text(`#sql-table tbody tr:last-child`); !strings.Contains(got, "t005") || !strings.Contains(got, "todo 005") {
		t.Fatalf("last row %q", got)
	}
	pg.screenshot("sql")
	pg.do(chromedp.SetValue(`#sql-input`, "DELETE FROM todos"), chromedp.Click(`#sql-form button[type=submit]`))
	pg.waitJS(`!document.querySelector("#sql-error").hidden`)
	msg := pg.text(`#sql-error`)
	if !strings.Contains(msg, "refused") {
		t.Fatalf("a write shows %q, want the refusal", msg)
	}
	if n := pg.count(`#sql-table tbody tr`); n != 0 {
		t.Fatalf("%d result rows left under the error", n)
	}
	rows, err := livestore.Get(context.Background(), p.store, livestore.QueryDB[todo](p.a.todos.Select()))
	if err != nil || len(rows) != 5 {
		t.Fatalf("after a refused write: %d rows, %v", len(rows), err)
	}
	t.Logf("write refused with %q", msg)

	// A query that never ends is stopped at the time limit, said on the page.
	slow := servePage(t, p.store, devtools.Options{QueryTimeout: 300 * time.Millisecond})
	pg2 := openPage(t, slow+"#/sql")
	pg2.do(chromedp.WaitVisible(`#sql-input`),
		chromedp.SetValue(`#sql-input`, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n) SELECT count(*) FROM n"),
		chromedp.Click(`#sql-form button[type=submit]`))
	pg2.waitJS(`!document.querySelector("#sql-error").hidden`)
	if msg := pg2.text(`#sql-error`); !strings.Contains(msg, "stopped after") {
		t.Fatalf("an endless query shows %q, want that it was stopped", msg)
	}
	if rows, err := livestore.Get(context.Background(), p.store, livestore.QueryDB[todo](p.a.todos.Select())); err != nil || len(rows) != 5 {
		t.Fatalf("after a stopped query: %d rows, %v", len(rows), err)
	}
}

// bigLog is the size of the eventlog of TestLargeEventlogInChromium; the
// flag takes it to the 100,000 events of a long-lived store.
var bigLog = flag.Int("devtools.biglog", 10000, "events in the store of TestLargeEventlogInChromium")

// TestLargeEventlogInChromium: a store with a long eventlog opens its
// eventlog view on the first page at once, and a new event still arrives
// by itself once the page has reached the end.
func TestLargeEventlogInChromium(t *testing.T) {
	a := newTodoSchema(t)
	s := openStore(t, a, "")
	start := time.Now()
	for i := 0; i < *bigLog; i += 1000 {
		commitTodos(t, a, s, i+1, min(1000, *bigLog-i))
	}
	t.Logf("%d events committed in %v", *bigLog, time.Since(start).Round(time.Millisecond))
	url := servePage(t, s, devtools.Options{})
	start = time.Now()
	pg := openPage(t, url+"#/events")
	pg.waitText(`#events-count`, "100 events held, more after")
	opened := time.Since(start)
	t.Logf("first page of %d events shown in %v", *bigLog, opened.Round(time.Millisecond))
	if opened > 5*time.Second {
		t.Fatalf("the first page took %v", opened)
	}
	// Jump to the end, then follow.
	pg.do(chromedp.Click(`#events-latest`))
	pg.waitText(`#events-table tbody tr:first-child`, fmt.Sprintf("e%d", *bigLog-99))
	pg.waitText(`#events-count`, "100 events held")
	if c := pg.text(`#events-count`); strings.Contains(c, "more") {
		t.Fatalf("the last page says %q", c)
	}
	commitTodos(t, a, s, *bigLog+1, 1)
	pg.waitText(fmt.Sprintf(`#events-table tr[data-seq="e%d"]`, *bigLog+1), fmt.Sprintf("todo %03d", *bigLog+1))
	if n := pg.count(`#events-table tbody tr`); n != 101 {
		t.Fatalf("%d rows after following one commit, want 101", n)
	}
}
