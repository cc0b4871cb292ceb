package scenarios

import (
	"context"
	"testing"
	"time"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/clientdb"
	"github.com/livestore-go/livestore/internal/sqlite"
	"github.com/livestore-go/livestore/interop/harness"
)

// nodeSlots bounds the Node processes (JS clients, the reference server
// while it starts) this package runs at once. A Node client spends seconds of
// CPU loading its modules; on a 2-core machine a dozen at once would each take
// a minute and the reference server would miss its start deadline. Waiting
// clients keep their slot, so two clients waiting for each other need two
// slots; no test runs more than two at once.
var nodeSlots = make(chan struct{}, 3)

func acquireNode(ctx context.Context) error {
	select {
	case nodeSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func releaseNode() { <-nodeSlots }

// startReferenceServer is harness.StartReferenceServer in a Node slot.
func startReferenceServer(t *testing.T) string {
	t.Helper()
	if err := acquireNode(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer releaseNode()
	return harness.StartReferenceServer(t)
}

// jsClient runs interop/js/client.mjs with the given flags plus --url,
// --store and a generous --timeout-ms. It may run on any goroutine.
func jsClient(ctx context.Context, t testing.TB, url, storeID string, args ...string) (*harness.ClientResult, error) {
	if err := acquireNode(ctx); err != nil {
		return nil, err
	}
	defer releaseNode()
	all := append([]string{"--url", url, "--store", storeID, "--timeout-ms", jsTimeoutMS}, args...)
	return harness.RunNodeClient(ctx, t, all...)
}

// mustJS runs a JS client and waits for it, failing the test if it fails.
func mustJS(ctx context.Context, t testing.TB, url, storeID string, args ...string) *harness.ClientResult {
	t.Helper()
	return waitJS(t, startJS(ctx, t, url, storeID, args...))
}

type jsRun struct {
	args []string
	res  *harness.ClientResult
	err  error
}

// startJS runs a JS client in the background; waitJS collects its result.
func startJS(ctx context.Context, t testing.TB, url, storeID string, args ...string) <-chan jsRun {
	ch := make(chan jsRun, 1)
	go func() {
		res, err := jsClient(ctx, t, url, storeID, args...)
		ch <- jsRun{args, res, err}
	}()
	return ch
}

// waitJS waits for a JS client started with startJS and logs its run; it
// fails the test if the client failed. Call it on the test's goroutine.
func waitJS(t testing.TB, ch <-chan jsRun) *harness.ClientResult {
	t.Helper()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Logf("JS client %s %v: %d todos, %v", r.res.ClientID, r.args, len(r.res.Todos), r.res.Duration.Round(100*time.Millisecond))
	return r.res
}

// readJSEventlog reads the eventlog database a JS client wrote with
// --eventlog-out. The reference client's table layout is the one package
// clientdb reads.
func readJSEventlog(t testing.TB, path string) []eventlog.Event {
	t.Helper()
	c, err := sqlite.Open(path, sqlite.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out []eventlog.Event
	if err := clientdb.On(c).Scan(eventlog.Root, 0, func(ev eventlog.Event) error {
		out = append(out, ev)
		return nil
	}); err != nil {
		t.Fatalf("read JS eventlog %s: %v", path, err)
	}
	return out
}
