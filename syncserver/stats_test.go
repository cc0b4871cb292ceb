package syncserver_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncserver"
)

// TestStoreStats counts a store's connections and the events pushed to it,
// and forgets a store once its connections close.
func TestStoreStats(t *testing.T) {
	ts := startServer(t, syncserver.Options{})
	if got := ts.StoreStats(); len(got) != 0 {
		t.Fatalf("stats of an idle server: %+v", got)
	}
	a := dialRaw(t, ts, "alpha")
	b := dialRaw(t, ts, "alpha")
	other := dialRaw(t, ts, "beta")
	a.send(pushMsg(t, "0", "alpha", chain(0, 30, "a"), nil))
	a.expect(fmt.Sprintf(pushOK, "0"))
	b.send(pushMsg(t, "0", "alpha", chain(30, 20, "b"), nil))
	b.expect(fmt.Sprintf(pushOK, "0"))

	stats := ts.StoreStats()
	if len(stats) != 2 || stats[0].StoreID != "alpha" || stats[0].Clients != 2 || stats[0].LastPush.IsZero() ||
		stats[1].StoreID != "beta" || stats[1].Clients != 1 || stats[1].PushRate != 0 || !stats[1].LastPush.IsZero() {
		t.Fatalf("stats = %+v", stats)
	}
	// The rate counts whole seconds: the pushes show once their second has passed.
	deadline := time.Now().Add(3 * time.Second)
	for {
		stats = ts.StoreStats()
		if stats[0].PushRate > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if want := 50 / syncserver.RateWindow.Seconds(); stats[0].PushRate != want {
		t.Fatalf("push rate %v, want %v", stats[0].PushRate, want)
	}

	other.ws.CloseNow()
	for deadline := time.Now().Add(5 * time.Second); ; {
		stats = ts.StoreStats()
		if len(stats) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(stats) != 1 || stats[0].StoreID != "alpha" {
		t.Fatalf("after beta's connection closed: %+v", stats)
	}
}
