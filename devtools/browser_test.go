package devtools_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// One headless Chromium serves every page test of the binary; each test gets
// its own tab. TestMain stops it.
var shared struct {
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.cancel != nil {
		shared.cancel()
	}
	os.Exit(code)
}

// chromium finds the Debian chromium binary the page tests drive.
func chromium() (string, error) {
	for _, p := range []string{os.Getenv("LIVESTORE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("chromium not found: install it (apt-get install chromium) or set LIVESTORE_CHROMIUM")
}

func startBrowser() {
	path, err := chromium()
	if err != nil {
		shared.err = err
		return
	}
	dir, err := os.MkdirTemp("", "devtools-chromium-")
	if err != nil {
		shared.err = err
		return
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.WindowSize(1280, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	shared.ctx = ctx
	shared.cancel = func() {
		cancel()
		cancelAlloc()
		os.RemoveAll(dir)
	}
	// The first Run starts the browser and binds it to ctx, which has no
	// deadline: tests bound their own tabs.
	shared.err = chromedp.Do(ctx)
}

// tab opens a new tab of the shared browser, closed at the end of the test;
// every step in it must finish within limit.
func tab(t *testing.T, limit time.Duration) context.Context {
	t.Helper()
	shared.once.Do(startBrowser)
	if shared.err != nil {
		t.Fatalf("start chromium: %v", shared.err)
	}
	ctx, cancel := chromedp.NewContext(shared.ctx)
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, limit)
	t.Cleanup(cancelT)
	return ctx
}

// page drives one tab, failing the test at the first error.
type page struct {
	t   *testing.T
	ctx context.Context
}

func openPage(t *testing.T, url string) *page {
	t.Helper()
	p := &page{t: t, ctx: tab(t, 45*time.Second)}
	p.do(chromedp.Navigate(url))
	return p
}

func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatalf("%v (page text: %q)", err, p.bodyText())
	}
}

// bodyText is what the page shows, for failure messages.
func (p *page) bodyText() string {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 2000) : ""`))
	return s
}

func (p *page) text(sel string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Text(sel))
	if err != nil {
		p.t.Fatalf("text of %s: %v (page text: %q)", sel, err, p.bodyText())
	}
	return s
}

func (p *page) eval(js string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", js, err)
	}
	return s
}

func (p *page) count(sel string) int {
	p.t.Helper()
	n, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%s).length`, jsString(sel))))
	if err != nil {
		p.t.Fatalf("count %s: %v", sel, err)
	}
	return n
}

// dblclick double-clicks the element sel as it is at that moment: a live
// update may redraw the page between finding a node and clicking it.
func (p *page) dblclick(sel string) {
	p.t.Helper()
	p.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%s); e.dispatchEvent(new MouseEvent("dblclick", {bubbles: true})); return "" })()`, jsString(sel)))
}

// setValue sets the value of a form field as typing would, empty included.
func (p *page) setValue(sel, v string) {
	p.t.Helper()
	p.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%s); e.value = %s; e.dispatchEvent(new Event("input", {bubbles: true})); return "" })()`, jsString(sel), jsString(v)))
}

// waitText waits until the element sel exists and its text contains want.
func (p *page) waitText(sel, want string) {
	p.t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%s); return !!e && e.offsetParent !== null && e.textContent.includes(%s); })()`, jsString(sel), jsString(want))
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		got, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%s) || {}).textContent || "(absent)"`, jsString(sel))))
		p.t.Fatalf("waiting for %s to show %q: %v; it shows %q; page text: %q", sel, want, err, got, p.bodyText())
	}
}

// waitJS waits until the expression is true.
func (p *page) waitJS(js string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		p.t.Fatalf("waiting for %s: %v; page text: %q", js, err, p.bodyText())
	}
}

// screenshot saves the page under docs/devtools/NAME.png when
// LIVESTORE_DEVTOOLS_SCREENSHOTS names the docs/devtools directory.
func (p *page) screenshot(name string) {
	p.t.Helper()
	dir := os.Getenv("LIVESTORE_DEVTOOLS_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestServerPageInChromium: the sync server's page lists the stores, shows a
// store's events page by page with the same cursor feed as the store page,
// and an event appended later appears without a reload and without
// duplicating the rows held.
func TestServerPageInChromium(t *testing.T) {
	srv, st := seededServer(t)
	p := openPage(t, srv.URL+"/_devtools/")
	p.waitText(`#stores tbody tr[data-store="todos-demo"]`, "todos-demo")
	stores := p.text(`#stores tbody`)
	if !strings.Contains(stores, "e150") || !strings.Contains(stores, "empty-store") || strings.Contains(stores, "null") {
		t.Fatalf("stores pane: %q", stores)
	}
	p.do(chromedp.Click(`#stores tbody tr[data-store="todos-demo"]`))
	p.waitText(`#events-count`, "100 events held, more after")
	first := p.text(`#events-table tbody tr:first-child`)
	if !strings.Contains(first, "e1") || !strings.Contains(first, "v1.TodoCreated") || !strings.Contains(first, `"todo 1"`) {
		t.Fatalf("first event row: %q", first)
	}
	p.do(chromedp.Click(`#events-more`))
	p.waitText(`#events-count`, "150 events held")

	// An event appended later shows up by itself, once.
	appendEvents(t, st, "todos-demo", 150, 1)
	p.waitText(`#events-table tbody tr[data-seq="e151"]`, "todo 151")
	p.waitText(`#stores tbody tr[data-store="todos-demo"]`, "e151")
	if n := p.count(`#events-table tbody tr`); n != 151 {
		t.Fatalf("%d rows held after the append, want 151", n)
	}

	// The last page alone, from the head down.
	p.do(chromedp.Click(`#events-latest`))
	p.waitText(`#events-table tbody tr:first-child`, "e52")
	p.waitText(`#events-count`, "100 events held")
	if last := p.text(`#events-table tbody tr:last-child`); !strings.Contains(last, "e151") {
		t.Fatalf("last row %q", last)
	}
}

// TestServerPageLiveInChromium: the page of a running sync server shows each
// store's connected clients and push rate, and a store's events as two Go
// clients commit them.
func TestServerPageLiveInChromium(t *testing.T) {
	hs, _ := syncServerWithPage(t)
	a := newTodoSchema(t)
	ws := "ws" + strings.TrimPrefix(hs.URL, "http")
	one, two := openStore(t, a, ws), openStore(t, a, ws)
	commitTodos(t, a, one, 1, 3)
	waitSynced(t, one)
	waitSynced(t, two)
	p := openPage(t, hs.URL+"/_devtools/#/stores/devtools-store")
	row := `#stores tbody tr[data-store="devtools-store"]`
	p.waitJS(fmt.Sprintf(`(() => { const r = document.querySelector(%s); return !!r && r.children[2].textContent === "2" })()`, jsString(row)))
	p.waitText(`#events-table tr[data-seq="e3"]`, "todo 003")
	if strings.Contains(p.text(`#notice`), "push rates") && p.eval(`document.querySelector("#notice").hidden ? "hidden" : "shown"`) == "shown" {
		t.Fatalf("notice says stats are missing: %q", p.text(`#notice`))
	}
	commitTodos(t, a, two, 4, 2)
	p.waitText(`#events-table tr[data-seq="e5"]`, "todo 005")
	p.waitText(row, "e5")
	p.waitJS(fmt.Sprintf(`(() => { const r = document.querySelector(%s); return !!r && parseFloat(r.children[3].textContent) > 0 })()`, jsString(row)))
	if n := p.count(`#events-table tbody tr`); n != 5 {
		t.Fatalf("%d event rows, want 5", n)
	}
	p.screenshot("server")
}
