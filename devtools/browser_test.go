package devtools_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds the Debian chromium binary the page tests drive.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("LIVESTORE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: install it (apt-get install chromium) or set LIVESTORE_CHROMIUM")
	return ""
}

// TestPageInChromium loads the page in headless Chromium, selects a store,
// sees its events, and sees an event appended later appear by itself.
func TestPageInChromium(t *testing.T) {
	srv, st := seededServer(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/_devtools/"),
		chromedp.WaitVisible(`#stores tbody tr[data-store="todos-demo"]`),
	))
	storesText, err := chromedp.Run(ctx, chromedp.Text(`#stores tbody`))
	must(err)
	must(chromedp.Do(ctx,
		chromedp.Click(`#stores tbody tr[data-store="todos-demo"]`),
		chromedp.WaitVisible(`#events tbody tr[data-seq="150"]`),
	))
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#events tbody tr").length`))
	must(err)
	firstEvent, err := chromedp.Run(ctx, chromedp.Text(`#events tbody tr:first-child`))
	must(err)
	if !strings.Contains(storesText, "todos-demo") || !strings.Contains(storesText, "150") || !strings.Contains(storesText, "empty-store") {
		t.Fatalf("stores pane: %q", storesText)
	}
	if rows != 150 || !strings.Contains(firstEvent, "e150") || !strings.Contains(firstEvent, "v1.TodoCreated") || !strings.Contains(firstEvent, `"todo 150"`) {
		t.Fatalf("%d rows, newest %q", rows, firstEvent)
	}

	// An event appended later shows up by itself; the filter hides rows.
	appendEvents(t, st, "todos-demo", 150, 1)
	must(chromedp.Do(ctx,
		chromedp.WaitVisible(`#events tbody tr[data-seq="151"]`),
		chromedp.SendKeys(`#filter`, "nomatch"),
	))
	filtered, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#events tbody tr").length`))
	must(err)
	if filtered != 0 {
		t.Fatalf("filter left %d rows", filtered)
	}
	if path := os.Getenv("LIVESTORE_DEVTOOLS_SCREENSHOT"); path != "" {
		_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const f = document.querySelector("#filter"); f.value = "Todo"; f.dispatchEvent(new Event("input")); return true })()`))
		must(err)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		must(err)
		must(os.WriteFile(path, png, 0o644))
	}
}
