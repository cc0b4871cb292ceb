package examples_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

var updateScreenshot = flag.Bool("quickstart.screenshot", false, "write the web example's screenshot to docs/quickstart-web.png")

// The README's promise: a change shows up in the other program within this.
const syncDeadline = 2 * time.Second

// quickStart is the README's newcomer path, read from the README itself so
// that the document and this test cannot drift apart.
type quickStart struct {
	serve    []string // the make target of the sync server
	watch    []string // go run ./examples/todo ... watch
	add      []string // go run ./examples/todo ... add "Buy milk"
	web      []string // the make target of the web example
	itemText string   // what add adds
	watchOut []string // the watcher's output as the README shows it
}

// readQuickStart extracts the shell block of the README's "Quick start"
// section that runs examples/todo, and splits its commands as a shell would.
func readQuickStart(t *testing.T) quickStart {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Quick start\n")
	if !ok {
		t.Fatal("README.md has no Quick start section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var block string
	for _, part := range strings.Split(section, "```sh\n")[1:] {
		code, _, _ := strings.Cut(part, "```")
		if strings.Contains(code, "./examples/todo") {
			block = code
			break
		}
	}
	if block == "" {
		t.Fatal("the Quick start section has no sh block running ./examples/todo")
	}
	var qs quickStart
	// The text block after the commands shows what the watcher prints.
	if _, after, ok := strings.Cut(section, block); ok {
		if _, shown, ok := strings.Cut(after, "```text\n"); ok {
			shown, _, _ = strings.Cut(shown, "```")
			qs.watchOut = strings.Split(strings.TrimSpace(shown), "\n")
		}
	}
	for _, line := range strings.Split(block, "\n") {
		args, err := shellSplit(line)
		if err != nil {
			t.Fatalf("README quick start line %q: %v", line, err)
		}
		switch {
		case len(args) == 0:
		case len(args) == 2 && args[0] == "make" && args[1] == "serve":
			qs.serve = args
		case len(args) == 2 && args[0] == "make" && args[1] == "web":
			qs.web = args
		case len(args) > 3 && args[0] == "go" && args[1] == "run" && args[2] == "./examples/todo":
			switch args[len(args)-1] {
			case "watch":
				qs.watch = args[3:]
			default:
				if args[len(args)-2] != "add" {
					t.Fatalf("README quick start: unexpected todo command %q", line)
				}
				qs.add = args[3:]
				qs.itemText = args[len(args)-1]
			}
		default:
			t.Fatalf("README quick start: unexpected command %q", line)
		}
	}
	if qs.serve == nil || qs.watch == nil || qs.add == nil || qs.web == nil || qs.watchOut == nil {
		t.Fatalf("README quick start must show make serve, a todo watch, a todo add, make web and the watcher's output; got %+v", qs)
	}
	return qs
}

// shellSplit splits a command line into words as sh does for the subset the
// README uses: blanks, double and single quotes, and a trailing # comment.
func shellSplit(line string) ([]string, error) {
	var (
		words   []string
		word    strings.Builder
		inWord  bool
		quote   rune
		runes   = []rune(line)
		flushIt = func() {
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		}
	)
	for _, r := range runes {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			word.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == '#' && !inWord:
			flushIt()
			return words, nil
		case r == ' ' || r == '\t':
			flushIt()
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quote")
	}
	flushIt()
	return words, nil
}

// serveRecipe returns the arguments the Makefile's serve target passes to
// the livestore command.
func serveRecipe(t *testing.T) []string {
	t.Helper()
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(makefile), "\nserve:\n\t")
	if !ok {
		t.Fatal("Makefile has no serve target")
	}
	recipe, _, _ := strings.Cut(rest, "\n")
	args, ok := strings.CutPrefix(recipe, "go run ./cmd/livestore ")
	if !ok {
		t.Fatalf("Makefile serve recipe %q does not run ./cmd/livestore", recipe)
	}
	return strings.Fields(args)
}

// TestQuickStart runs the README's quick start as a newcomer would: the sync
// server, a todo watching the list, a todo adding to it, and the web example
// in headless Chromium. A change in the browser reaches the Go watcher, and a
// change from Go reaches the page, each within 2 s.
func TestQuickStart(t *testing.T) {
	began := time.Now()
	phase := func(what string) { t.Logf("%6.1fs %s", time.Since(began).Seconds(), what) }
	qs := readQuickStart(t)
	serveArgs := serveRecipe(t)
	if _, err := os.Stat("web/node_modules/@livestore/adapter-web"); err != nil {
		t.Fatal("examples/web/node_modules is missing: run make deps")
	}

	// The README's ports, or free ones when something (a running
	// `make serve`, say) already holds them.
	syncAddr, webPort := "127.0.0.1:8787", "5173"
	var webEnv []string
	if !portFree(syncAddr) {
		syncAddr = freeAddr(t)
		serveArgs = append(serveArgs, "--addr", syncAddr)
		webEnv = append(webEnv, "VITE_LIVESTORE_SYNC_URL=ws://"+syncAddr)
		t.Logf("127.0.0.1:8787 is taken; the sync server listens on %s", syncAddr)
	}
	if !portFree("127.0.0.1:" + webPort) {
		_, webPort, _ = net.SplitHostPort(freeAddr(t))
		webEnv = append(webEnv, "WEB_PORT="+webPort)
		t.Logf("127.0.0.1:5173 is taken; the web example listens on %s", webPort)
	}
	onServer := func(args []string) []string {
		out := make([]string, len(args))
		for i, a := range args {
			out[i] = strings.ReplaceAll(a, "127.0.0.1:8787", syncAddr)
		}
		return out
	}

	bin := t.TempDir()
	livestoreBin, todoBin := filepath.Join(bin, "livestore"), filepath.Join(bin, "todo")
	for pkg, out := range map[string]string{"./cmd/livestore": livestoreBin, "./examples/todo": todoBin} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = ".."
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	phase("built livestore and todo")
	work := t.TempDir() // the newcomer's current directory: ./livestore-data, ./todo-a, ./todo-b

	// Terminal 1: make serve.
	server := start(t, work, nil, livestoreBin, serveArgs...)
	waitHTTP(t, "http://"+syncAddr+"/health", 20*time.Second, server)
	phase("make serve answers")

	// Terminal 2: the watcher.
	watcher := start(t, work, nil, todoBin, onServer(qs.watch)...)
	watcher.waitLine(t, 10*time.Second, func(l string) bool { return l == "-- connected" })
	phase("todo watch connected")

	// Terminal 4: make web, a Vite dev server.
	web := start(t, "..", webEnv, "make", qs.web[1:]...)
	webURL := "http://127.0.0.1:" + webPort + "/"
	waitHTTP(t, webURL, 30*time.Second, web)
	phase("make web answers")

	browser := openBrowser(t)
	// The page's console, for the failure message; the goroutine ends with
	// the browser's context.
	console := chromedp.Console(browser)
	var consoleMu sync.Mutex
	var consoleLog []string
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			consoleMu.Lock()
			consoleLog = append(consoleLog, fmt.Sprint(m))
			consoleMu.Unlock()
		}
	}()
	defer func() {
		if t.Failed() {
			consoleMu.Lock()
			defer consoleMu.Unlock()
			t.Logf("browser console:\n%s", strings.Join(consoleLog, "\n"))
		}
	}()
	if err := chromedp.Do(browser, chromedp.Navigate(webURL)); err != nil {
		t.Fatalf("open %s: %v", webURL, err)
	}
	if _, err := chromedp.Run(browser, chromedp.Poll[bool](`document.body.dataset.ready === "true"`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		t.Fatalf("the web example did not start its store: %v", err)
	}
	phase("the page's store is up")

	// Terminal 3: a todo from Go, seen by the watcher and by the page.
	addStart := time.Now()
	added := run(t, work, todoBin, onServer(qs.add)...)
	addedAt := time.Now()
	t.Logf("todo add ran %v (start, commit, push, confirmation)", addedAt.Sub(addStart).Round(time.Millisecond))
	m := regexp.MustCompile(`(?m)^added ([0-9a-f]{8})$`).FindStringSubmatch(added)
	if m == nil {
		t.Fatalf("todo add printed %q, want \"added <id>\"", added)
	}
	goItem := fmt.Sprintf("[ ] %s  %s", m[1], qs.itemText)
	seen := watcher.waitLine(t, syncDeadline, func(l string) bool { return l == goItem })
	t.Logf("Go add → Go watcher: %v after todo add started", seen.at.Sub(addStart).Round(time.Millisecond))
	checkShownOutput(t, qs.watchOut, watcher.out())
	waitInPage(t, browser, "Go add → page (after todo add exited)", listed, qs.itemText, addedAt)

	// A todo from the browser, seen by the Go watcher.
	const webItem = "Walk the dog"
	if err := chromedp.Do(browser, chromedp.SendKeys(`#add input[name="text"]`, webItem)); err != nil {
		t.Fatal(err)
	}
	clickedAt := time.Now()
	if err := chromedp.Do(browser, chromedp.Click(`#add button`)); err != nil {
		t.Fatal(err)
	}
	seen = watcher.waitLine(t, syncDeadline, func(l string) bool {
		return strings.HasPrefix(l, "[ ] ") && strings.HasSuffix(l, "  "+webItem)
	})
	webID := strings.Fields(seen.text)[2]
	t.Logf("browser add → Go watcher: %v", seen.at.Sub(clickedAt).Round(time.Millisecond))

	// The other events both ways: the page completes the Go todo, Go
	// deletes the page's (its deletedAt a Go time.Time, decoded as a Date).
	clickedAt = time.Now()
	if err := chromedp.Do(browser, chromedp.Click(fmt.Sprintf(`#todos li[data-id=%q] input`, m[1]))); err != nil {
		t.Fatal(err)
	}
	seen = watcher.waitLine(t, syncDeadline, func(l string) bool { return l == "[x] "+m[1]+"  "+qs.itemText })
	t.Logf("browser done → Go watcher: %v", seen.at.Sub(clickedAt).Round(time.Millisecond))

	shot, err := chromedp.Run(browser, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "quickstart-web.png")
	if *updateScreenshot {
		out = "../docs/quickstart-web.png"
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}

	deleteArgs := append(onServer(qs.add[:len(qs.add)-2]), "delete", webID)
	run(t, work, todoBin, deleteArgs...)
	waitInPage(t, browser, "Go delete → page (after todo delete exited)", "(text) => !("+listed+")(text)", webItem, time.Now())
}

// checkShownOutput checks that every line the README shows the watcher
// printing has a counterpart in what it printed, its clock times and ids
// being this run's. (The order of the first lines may vary: the list and the
// connection state are reported independently.)
func checkShownOutput(t *testing.T, shown []string, printed string) {
	t.Helper()
	clock := regexp.MustCompile(`\d\d:\d\d:\d\d\\\.\d\d\d`)
	id := regexp.MustCompile(`\b[0-9a-f]{8}\b`)
	lines := strings.Split(printed, "\n")
	for _, want := range shown {
		pattern := regexp.QuoteMeta(want)
		pattern = clock.ReplaceAllString(pattern, `\d\d:\d\d:\d\d\.\d\d\d`)
		pattern = id.ReplaceAllString(pattern, `[0-9a-f]{8}`)
		re := regexp.MustCompile("^" + pattern + "$")
		if !slices.ContainsFunc(lines, re.MatchString) {
			t.Errorf("the README shows the watcher printing %q; it printed:\n%s", want, printed)
		}
	}
}

// listed is a page function: whether the page lists a todo with this text.
const listed = `(text) => [...document.querySelectorAll("#todos li span")].some((s) => s.textContent === text)`

// waitInPage waits until the page function, given arg, is true, at most
// syncDeadline after since.
func waitInPage(t *testing.T, browser context.Context, what, fn, arg string, since time.Time) {
	t.Helper()
	ctx, cancel := context.WithDeadline(browser, since.Add(syncDeadline))
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.PollFunction[bool](fn,
		chromedp.WithPollingArgs(arg), chromedp.WithPollingInterval(20*time.Millisecond)))
	if err != nil {
		t.Fatalf("%s: not within %v: %v", what, syncDeadline, err)
	}
	t.Logf("%s: %v", what, time.Since(since).Round(time.Millisecond))
}

func openBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(800, 600),
	)
	// A bound for the whole page session, so that a hung browser fails the
	// test instead of stalling it.
	bounded, cancelBound := context.WithTimeout(context.Background(), 3*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(bounded, opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		cancelBound()
	})
	return ctx
}

// chromium finds the Debian chromium binary.
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

// line is a line of output and when it was read.
type line struct {
	text string
	at   time.Time
}

// process is a started command whose stdout lines arrive on a channel and
// whose whole output is kept for failure messages.
type process struct {
	name   string
	cmd    *exec.Cmd
	lines  chan line
	exited chan struct{}
	mu     sync.Mutex
	output strings.Builder
}

// start runs a command in its own process group (make starts npm and node),
// stopped with SIGTERM to the group when the test ends.
func start(t *testing.T, dir string, env []string, name string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{name: filepath.Base(name) + " " + strings.Join(args, " "), cmd: cmd, lines: make(chan line, 1024), exited: make(chan struct{})}
	cmd.Stderr = writerFunc(p.record)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() {
		defer close(p.exited)
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.record(append(sc.Bytes(), '\n'))
			select {
			case p.lines <- line{sc.Text(), time.Now()}:
			default: // nobody waits for lines this old
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", p.name, p.out())
		}
	})
	return p
}

func (p *process) record(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.Write(b)
}

func (p *process) out() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// waitLine reads stdout lines until one matches and returns it, failing
// after timeout.
func (p *process) waitLine(t *testing.T, timeout time.Duration, match func(string) bool) line {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("%s exited before printing the expected line:\n%s", p.name, p.out())
			}
			if match(l.text) {
				return l
			}
		case <-deadline.C:
			t.Fatalf("%s: the expected line did not come within %v; output:\n%s", p.name, timeout, p.out())
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// run runs a command to its end and returns its stdout.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// waitHTTP polls url until it answers, failing when p exits or timeout passes.
func waitHTTP(t *testing.T, url string, timeout time.Duration, p *process) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer within %v (%v); %s printed:\n%s", url, timeout, err, p.name, p.out())
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited; it printed:\n%s", p.name, p.out())
		case <-tick.C:
		}
	}
}

func portFree(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
