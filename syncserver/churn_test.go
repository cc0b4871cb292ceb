package syncserver_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// TestConnectionChurnAcrossStores connects and disconnects clients of three
// stores concurrently while they push, open live pulls and drop connections
// in the middle of pushes, and while the server's stats are read. Under the
// per-store connection limit some connections are refused. Afterwards every
// store's log has no gap and holds every acknowledged event, a live pull
// opened at the start saw every event once and in order, and once the
// clients are gone the stats count no connections. Run with -race, it checks
// the locking of the server's hubs, connections and pulls.
func TestConnectionChurnAcrossStores(t *testing.T) {
	const limit, workers, rounds = 4, 6, 12
	ts := startServer(t, syncserver.Options{MaxConnectionsPerStore: limit})
	ctx := t.Context()
	stores := []string{"churn-a", "churn-b", "churn-c"}
	followers := make([]*syncclient.PullStream, len(stores))
	for i, store := range stores {
		c, err := syncclient.Dial(ctx, ts.url, syncclient.Options{StoreID: store})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if followers[i], err = c.Pull(ctx, nil, true); err != nil {
			t.Fatal(err)
		}
	}

	var acked [3]atomic.Int64
	var refused atomic.Int64
	stop := make(chan struct{})
	statsDone := make(chan error, 1)
	go func() { statsDone <- watchStats(ts, limit, stop) }()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				i := (w + r) % len(stores)
				n, err := churnRound(ctx, ts.url, stores[i], fmt.Sprintf("w%d", w), r)
				var de *syncclient.DialError
				switch {
				case errors.As(err, &de) && de.StatusCode == http.StatusTooManyRequests:
					refused.Add(1)
				case err != nil:
					errs <- fmt.Errorf("worker %d round %d on %s: %w", w, r, stores[i], err)
					return
				}
				acked[i].Add(n)
			}
		}()
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := <-statsDone; err != nil {
		t.Fatal(err)
	}
	t.Logf("connections refused at the per-store limit: %d", refused.Load())

	for i, store := range stores {
		h := head(t, ts, store)
		if h < acked[i].Load() {
			t.Fatalf("%s: head %d, but %d events were acknowledged", store, h, acked[i].Load())
		}
		checkLog(t, ts, store, h)
		for next := int64(1); next <= h; {
			res, err := followers[i].Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range res.Batch {
				if it.Event.SeqNum != next {
					t.Fatalf("%s: follower got event %d, want %d", store, it.Event.SeqNum, next)
				}
				next++
			}
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		clients := 0
		for _, st := range ts.StoreStats() {
			clients += st.Clients
		}
		if clients == len(stores) { // the followers
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats still count %d connections, want %d: %+v", clients, len(stores), ts.StoreStats())
		}
	}
}

// churnRound connects to store, pushes three events (rebasing on the
// server's head until accepted), may open and end a live pull, and
// disconnects; every third round it also sends a push on a raw connection
// and drops that connection at once. It returns the events acknowledged.
func churnRound(ctx context.Context, url, store, clientID string, round int) (int64, error) {
	c, err := syncclient.Dial(ctx, url, syncclient.Options{StoreID: store})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if round%2 == 0 {
		stream, err := c.Pull(ctx, nil, true)
		if err != nil {
			return 0, err
		}
		defer stream.Close()
	}
	var head int64
	for {
		err := c.Push(ctx, chain(head, 3, clientID), nil)
		var ahead *syncproto.ServerAheadError
		if !errors.As(err, &ahead) {
			if err != nil {
				return 0, err
			}
			break
		}
		head = ahead.MinimumExpectedNum
	}
	if round%3 == 0 {
		return 3, dropMidPush(ctx, url, store, clientID, head+3)
	}
	return 3, nil
}

// dropMidPush sends a push on a new connection and closes it without
// waiting for the answer; the push may or may not be stored.
func dropMidPush(ctx context.Context, url, store, clientID string, after int64) error {
	ws, resp, err := websocket.Dial(ctx, url+"/?storeId="+store+"&transport=ws", nil)
	if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
		return nil // refused at the limit: nothing to drop
	}
	if err != nil {
		return err
	}
	defer ws.CloseNow()
	payload, err := syncproto.Marshal(syncproto.PushRequest{StoreID: store, Batch: chain(after, 2, clientID)})
	if err != nil {
		return err
	}
	msg, err := syncproto.Marshal(&syncproto.Request{ID: "0", Tag: syncproto.TagPush, Payload: payload})
	if err != nil {
		return err
	}
	return ws.Write(ctx, websocket.MessageText, msg)
}

// watchStats reads the server's stats until stop is closed and reports a
// store with more connections than the limit.
func watchStats(ts *testServer, limit int, stop <-chan struct{}) error {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		for _, st := range ts.StoreStats() {
			if st.Clients > limit {
				return fmt.Errorf("stats count %d connections to %s, over the limit of %d", st.Clients, st.StoreID, limit)
			}
		}
		time.Sleep(time.Millisecond)
	}
}
