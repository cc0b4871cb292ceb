package main

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// startRelayFloor is the floor of the cross-replica fan-out row: the
// storage's own notification and read between two bare broadcasters. The
// first appends each push through the first storage handle (the storage
// notifies after the commit) before acknowledging it; the second listens
// on the last handle and, for each notification, reads the new events with
// the storage's Read and queues them, encoded as pages, to its live pulls.
// Pushers connect to the first, live pulls to the last URL.
func startRelayFloor(cfg config) (*running, error) {
	storages, cleanup, err := openStorages(cfg)
	if err != nil {
		return nil, err
	}
	last := storages[len(storages)-1]
	w, ok := last.(syncserver.Watcher)
	if !ok {
		cleanup()
		return nil, errors.New("floor relay: the storage has no notifications")
	}
	_, in, err := newBroadcaster(storages[0])
	if err != nil {
		cleanup()
		return nil, err
	}
	b, out, err := newBroadcaster(nil)
	if err != nil {
		_ = in.stop()
		cleanup()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	relayed := make(chan struct{})
	go func() {
		defer close(relayed)
		b.relay(ctx, last, w)
	}()
	urls := make([]string, len(storages))
	for i := range urls {
		urls[i] = in.urls[0]
	}
	urls[len(urls)-1] = out.urls[0]
	stop := func() {
		cancel()
		<-relayed
		_ = in.stop()
		_ = out.stop()
		cleanup()
	}
	return &running{urls: urls, ready: out.ready, stop: quietly(stop)}, nil
}

// relay watches st until ctx ends and queues the events of each change to
// the live pulls of its store.
func (b *broadcaster) relay(ctx context.Context, st syncserver.Storage, w syncserver.Watcher) {
	sent := map[string]int64{} // by store: the last seqNum queued
	changed := func(storeID string, head int64) {
		if storeID == "" {
			return // the watch (re)started: the floor's stores have no events yet
		}
		upTo := head
		if upTo <= 0 {
			upTo = math.MaxInt64
		}
		for sent[storeID] < upTo {
			evs, err := st.Read(ctx, storeID, sent[storeID], upTo, syncproto.MaxEventsPerMessage)
			if err != nil || len(evs) == 0 {
				return
			}
			page, err := relayPage(evs)
			if err != nil {
				return
			}
			b.queue(storeID, page)
			sent[storeID] = evs[len(evs)-1].SeqNum
		}
	}
	for ctx.Err() == nil {
		if err := w.Watch(ctx, changed); err != nil && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// relayPage encodes events as one page, as the server encodes a page.
func relayPage(evs []syncserver.StoredEvent) ([]byte, error) {
	enc, err := syncproto.NewPageEncoder("floor")
	if err != nil {
		return nil, err
	}
	items := make([][]byte, 0, len(evs))
	for i := range evs {
		it, err := enc.Item(&evs[i].Event, evs[i].CreatedAt)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return enc.Page(items, syncproto.PageInfo{Kind: syncproto.NoMore}), nil
}
