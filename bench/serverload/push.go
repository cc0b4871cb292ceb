package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
)

// pushStats gathers what the pushers measured.
type pushStats struct {
	pushed    atomic.Int64
	conflicts atomic.Int64
	mu        sync.Mutex
	latencies []time.Duration
	heads     map[string]int64 // each store's head, as its pushers last learnt it
	err       error
}

// noteHead records that storeID's head is at least head. Once every
// pusher has noted the head after its last push, the highest is the
// store's head: the last push accepted was followed only by refusals that
// named it.
func (s *pushStats) noteHead(storeID string, head int64) {
	s.mu.Lock()
	if s.heads == nil {
		s.heads = make(map[string]int64)
	}
	s.heads[storeID] = max(s.heads[storeID], head)
	s.mu.Unlock()
}

func (s *pushStats) fail(err error) {
	s.mu.Lock()
	s.err = errors.Join(s.err, err)
	s.mu.Unlock()
}

func (s *pushStats) addLatencies(lat []time.Duration) {
	s.mu.Lock()
	s.latencies = append(s.latencies, lat...)
	s.mu.Unlock()
}

// pusher is one pushing client.
type pusher interface {
	// run pushes until deadline or until the run's event budget is spent.
	run(ctx context.Context, deadline time.Time)
}

// push connects the pushers, then runs them until the duration or the event
// budget is spent and returns what they measured and how long they pushed.
func (l *load) push(ctx context.Context) (*pushStats, time.Duration, error) {
	stats := &pushStats{}
	pushers := make([]pusher, l.cfg.clients)
	for i := range pushers {
		var err error
		if pushers[i], err = l.dialPusher(ctx, i, stats); err != nil {
			return nil, 0, fmt.Errorf("dial pusher %d: %w", i, err)
		}
	}
	start := time.Now()
	deadline := start.Add(l.cfg.duration)
	var wg sync.WaitGroup
	for _, p := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(ctx, deadline)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if stats.err != nil {
		return nil, 0, stats.err
	}
	return stats, elapsed, nil
}

// dialPusher connects the i-th pusher.
func (l *load) dialPusher(ctx context.Context, i int, stats *pushStats) (pusher, error) {
	if l.storages != nil {
		return l.storagePusher(i, stats), nil
	}
	if l.cfg.pushers == "raw" {
		return l.dialRawPusher(ctx, i, stats)
	}
	c, err := syncclient.Dial(ctx, l.pusherURL(i), syncclient.Options{StoreID: l.storeID(i), PingInterval: -1})
	if err != nil {
		return nil, err
	}
	l.closers = append(l.closers, func() { c.Close() })
	push := func(ctx context.Context, batch []syncproto.Event) error { return c.Push(ctx, batch, nil) }
	return &awaitPusher{l: l, push: push, i: i, stats: stats}, nil
}

// storagePusher appends straight to a storage, as the server would after
// decoding a push: the floor of the ingest rows. With several storages
// (replicas), pushers are spread over them as --push-to spreads them over
// servers.
func (l *load) storagePusher(i int, stats *pushStats) pusher {
	st := l.storages[0]
	if l.cfg.pushTo == "all" {
		st = l.storages[i%len(l.storages)]
	}
	storeID := l.storeID(i)
	push := func(ctx context.Context, batch []syncproto.Event) error {
		return st.Append(ctx, storeID, batch, time.Now())
	}
	return &awaitPusher{l: l, push: push, i: i, stats: stats}
}

// pushInterval is the time between two pushes of one pusher at --rate.
func (l *load) pushInterval() time.Duration {
	return time.Duration(float64(time.Second) * float64(l.cfg.batch*l.cfg.clients) / float64(l.cfg.rate))
}

// startTicker returns the pusher i's ticks at --rate, spread evenly over
// the pushers, or nil without a rate.
func (l *load) startTicker(i int) *time.Ticker {
	if l.cfg.rate <= 0 {
		return nil
	}
	interval := l.pushInterval()
	time.Sleep(interval * time.Duration(i) / time.Duration(l.cfg.clients))
	return time.NewTicker(interval)
}

// awaitPusher pushes through push (syncclient, or a storage's Append),
// each push awaited, at its share of --rate when one is set, rebasing on
// the head of a pusher that won.
type awaitPusher struct {
	l     *load
	push  func(ctx context.Context, batch []syncproto.Event) error
	i     int
	stats *pushStats
}

func (p *awaitPusher) run(ctx context.Context, deadline time.Time) {
	l, stats := p.l, p.stats
	var lat []time.Duration
	var head int64
	defer func() { stats.addLatencies(lat); stats.noteHead(l.storeID(p.i), head) }()
	pad := strings.Repeat("x", max(l.cfg.argBytes-40, 0))
	client := "p" + strconv.Itoa(p.i)
	var tick <-chan time.Time
	if t := l.startTicker(p.i); t != nil {
		defer t.Stop()
		tick = t.C
	}
	retry := false
	for time.Now().Before(deadline) && stats.pushed.Load() < l.cfg.maxEvents {
		if tick != nil && !retry {
			<-tick
		}
		retry = false
		sent := time.Now()
		err := p.push(ctx, loadBatch(head, l.cfg.batch, client, sent, pad))
		var ahead *syncproto.ServerAheadError
		switch {
		case errors.As(err, &ahead):
			// Another pusher on the same store won; rebase on its head.
			stats.conflicts.Add(1)
			head = ahead.MinimumExpectedNum
			retry = true
		case err != nil:
			stats.fail(fmt.Errorf("pusher %d: %w", p.i, err))
			return
		default:
			lat = append(lat, time.Since(sent))
			head += int64(l.cfg.batch)
			stats.pushed.Add(int64(l.cfg.batch))
		}
	}
}

// loadBatch is n events following head, each carrying the time it was sent
// (for the fan-out latency) and pad.
func loadBatch(head int64, n int, client string, sent time.Time, pad string) []syncproto.Event {
	batch := make([]syncproto.Event, n)
	for j := range batch {
		seq := head + int64(j) + 1
		batch[j] = syncproto.Event{
			Name:         "v1.LoadTest",
			Args:         json.RawMessage(`{"t":` + strconv.FormatInt(sent.UnixNano(), 10) + `,"p":"` + pad + `"}`),
			SeqNum:       seq,
			ParentSeqNum: seq - 1,
			ClientID:     client,
			SessionID:    "s",
		}
	}
	return batch
}
