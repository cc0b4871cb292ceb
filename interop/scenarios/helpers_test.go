package scenarios

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/lockedbuf"
	"github.com/livestore-go/livestore/interop/harness"
	"github.com/livestore-go/livestore/syncproto"
)

// Deadlines: Node clients need seconds to boot, more with several at once on
// a busy machine; everything is polled, so generous limits cost nothing when
// things work.
const (
	scenarioTimeout = 5 * time.Minute
	jsTimeoutMS     = "180000"
	pollInterval    = 100 * time.Millisecond
)

// timed logs how long the test took, for interop/README.md.
func timed(t *testing.T) {
	start := time.Now()
	t.Cleanup(func() { t.Logf("scenario runtime: %v", time.Since(start).Round(100*time.Millisecond)) })
}

// newStoreID returns a fresh store id, so that scenarios sharing a server
// never meet.
func newStoreID(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// newLogBuffer collects a component's logs (their first 4 MiB), printed if
// the test fails.
func newLogBuffer() *lockedbuf.Buffer { return &lockedbuf.Buffer{Max: 4 << 20} }

func testLogger(t testing.TB, name string) *slog.Logger {
	b := newLogBuffer()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log:\n%s", name, b)
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// openGoStore opens a Go store in a fresh directory, syncing with the server
// at url. It reconnects quickly, so that server restarts are short.
func openGoStore(t testing.TB, app *todoApp, url, storeID, name string) *livestore.Store {
	t.Helper()
	s, err := livestore.Open(context.Background(), app.Schema, livestore.Options{
		Dir:     t.TempDir(),
		StoreID: storeID,
		Logger:  testLogger(t, "Go store "+name),
		Sync: &livestore.SyncOptions{
			Backend:    backendFor(url),
			MinBackoff: 50 * time.Millisecond,
			MaxBackoff: time.Second,
		},
	})
	if err != nil {
		t.Fatalf("open Go store %s: %v", name, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// poll calls check until it reports done, failing the test with check's
// last description when ctx ends.
func poll(ctx context.Context, t testing.TB, what string, check func() (done bool, status string, err error)) {
	t.Helper()
	var status string
	for {
		done, st, err := check()
		if err != nil {
			st = fmt.Sprintf("%s (error: %v)", st, err)
		}
		status = st
		if done {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not reached: %s", what, status)
		case <-time.After(pollInterval):
		}
	}
}

// waitGoSynced waits until a Go store has wantRows todos and has synced
// everything: nothing pending, its upstream head equal to the server's. It
// returns the server's log.
func waitGoSynced(ctx context.Context, t testing.TB, app *todoApp, s *livestore.Store, url string, wantRows int) []syncproto.Event {
	t.Helper()
	var log []syncproto.Event
	poll(ctx, t, fmt.Sprintf("Go store %s synced with %d rows", s.ClientID(), wantRows), func() (bool, string, error) {
		st, err := s.SyncStatus(ctx)
		if err != nil {
			return false, "", err
		}
		if st.Stopped {
			t.Fatalf("Go store %s stopped syncing: %s", s.ClientID(), st.Err)
		}
		state, err := app.state(ctx, s)
		if err != nil {
			return false, "", err
		}
		log, err = pullLog(ctx, url, s.StoreID())
		status := fmt.Sprintf("%d rows, sync status %+v, server log %d events", len(state.Todos), st, len(log))
		if err != nil {
			return false, status, err
		}
		return len(state.Todos) == wantRows && st.PendingCount == 0 && st.UpstreamHead == int64(len(log)), status, nil
	})
	return log
}

// goEvents is a Go store's eventlog.
func goEvents(ctx context.Context, t testing.TB, s *livestore.Store) []eventlog.Event {
	t.Helper()
	var out []eventlog.Event
	for ev, err := range s.Events(ctx, eventlog.Root) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// harnessReady fails the test unless the npm packages are installed.
func harnessReady(t *testing.T) { harness.NPMInstalled(t) }
