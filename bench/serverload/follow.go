package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
)

// follower consumes one live pull and records, per page, the time since the
// page's first event was pushed.
type follower struct {
	stream    *syncclient.PullStream // or
	ws        *websocket.Conn        // for a light follower
	seen      atomic.Int64
	latencies []time.Duration
}

// startFollowers connects the live clients, then starts a goroutine reading
// each; the goroutines end with ctx and the WaitGroup waits for them.
func (l *load) startFollowers(ctx context.Context) ([]*follower, *sync.WaitGroup, error) {
	followers := make([]*follower, l.cfg.live)
	for i := range followers {
		f, err := l.dialFollower(ctx, i)
		if err != nil {
			return nil, nil, err
		}
		followers[i] = f
	}
	var wg sync.WaitGroup
	for _, f := range followers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if f.ws != nil {
				f.runLight(ctx)
				return
			}
			f.run(ctx)
		}()
	}
	return followers, &wg, nil
}

// dialFollower connects the i-th live client and opens its live pull.
func (l *load) dialFollower(ctx context.Context, i int) (*follower, error) {
	f := &follower{}
	url := l.followerURL()
	if !l.cfg.light {
		c, err := syncclient.Dial(ctx, url, syncclient.Options{StoreID: l.storeID(i), PingInterval: -1})
		if err != nil {
			return nil, fmt.Errorf("dial live client %d: %w", i, err)
		}
		l.closers = append(l.closers, func() { c.Close() })
		s, err := c.Pull(ctx, nil, true)
		if err != nil {
			return nil, err
		}
		f.stream = s
		return f, nil
	}
	ws, _, err := websocket.Dial(ctx, url+"/?storeId="+l.storeID(i)+"&transport=ws", nil)
	if err != nil {
		return nil, fmt.Errorf("dial live client %d: %w", i, err)
	}
	l.closers = append(l.closers, func() { ws.CloseNow() })
	ws.SetReadLimit(16 << 20)
	req := `{"_tag":"Request","id":"0","tag":"SyncWsRpc.Pull","payload":{"storeId":"` + l.storeID(i) + `","live":true,"cursor":{"_tag":"None"}},"headers":[]}`
	if err := ws.Write(ctx, websocket.MessageText, []byte(req)); err != nil {
		return nil, err
	}
	f.ws = ws
	return f, nil
}

// waitDelivered waits until every follower has every event of its store,
// up to the heads the pushers last learnt.
func (l *load) waitDelivered(ctx context.Context, heads map[string]int64, followers []*follower) error {
	// A server that fell behind (the reference, with many live pulls) gets
	// time to catch up, so that its latency is measured rather than cut.
	drainDeadline := time.Now().Add(max(30*time.Second, 12*l.cfg.duration))
	for i, f := range followers {
		for f.seen.Load() < heads[l.storeID(i)] {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Now().After(drainDeadline) {
				return fmt.Errorf("live client %d saw %d of %d events", i, f.seen.Load(), heads[l.storeID(i)])
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// runLight reads Chunks without decoding the pages: it finds the push time
// of the first event and the seqNum of the last, and acknowledges each Chunk
// as a client does. It reads into one buffer and without a context per
// message (ctx's end closes the connection), so that the followers, which
// stand in for clients on other machines, take little of the server's
// machine.
func (f *follower) runLight(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { _ = f.ws.CloseNow() })
	defer stop()
	ack := []byte(`{"_tag":"Ack","requestId":"0"}`)
	var buf bytes.Buffer
	for {
		_, r, err := f.ws.Reader(context.Background())
		if err != nil {
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return
		}
		data := buf.Bytes()
		now := time.Now()
		_, values, ok := syncproto.CutChunk(data)
		if !ok {
			continue
		}
		if err := f.ws.Write(context.Background(), websocket.MessageText, ack); err != nil {
			return
		}
		if i := bytes.Index(values, []byte(`{"t":`)); i >= 0 {
			rest := values[i+5:]
			if j := bytes.IndexByte(rest, ','); j > 0 {
				if t, err := strconv.ParseInt(string(rest[:j]), 10, 64); err == nil {
					f.latencies = append(f.latencies, now.Sub(time.Unix(0, t)))
				}
			}
		}
		if i := bytes.LastIndex(values, []byte(`"seqNum":`)); i >= 0 {
			rest := values[i+9:]
			if j := bytes.IndexByte(rest, ','); j > 0 {
				if n, err := strconv.ParseInt(string(rest[:j]), 10, 64); err == nil {
					f.seen.Store(n)
				}
			}
		}
	}
}

func (f *follower) run(ctx context.Context) {
	defer f.stream.Close()
	for {
		page, err := f.stream.Next(ctx)
		if err != nil {
			return
		}
		now := time.Now()
		if len(page.Batch) == 0 {
			continue
		}
		var args struct {
			T int64 `json:"t"`
		}
		if json.Unmarshal(page.Batch[0].Event.Args, &args) == nil && args.T > 0 {
			f.latencies = append(f.latencies, now.Sub(time.Unix(0, args.T)))
		}
		f.seen.Store(page.Batch[len(page.Batch)-1].Event.SeqNum)
	}
}
