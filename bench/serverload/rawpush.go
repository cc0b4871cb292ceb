package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/livestore-go/livestore/syncproto"
)

// rawPusher pushes pre-encoded messages on a bare WebSocket. Without a rate
// it awaits each push, as syncclient does; at a rate it sends each push on
// its tick without waiting for the answers before (its pushes are
// pipelined), so the rate holds while the server keeps up, and answers are
// matched to pushes by request id.
type rawPusher struct {
	l       *load
	ws      *websocket.Conn
	i       int
	storeID string
	client  string
	pad     string
	stats   *pushStats
	window  int // pushes in flight at most

	results  chan rawResult
	readDone chan struct{} // closed when the reader has returned
	mu       sync.Mutex
	sent     map[string]time.Time // in-flight pushes by request id
}

// rawResult is the answer to one push: its error and latency.
type rawResult struct {
	err error
	lat time.Duration
}

// maxInFlight bounds the pipelined pushes of one raw pusher: past it the
// pusher waits, and the rate it reaches is below --rate.
const maxInFlight = 4096

func (l *load) dialRawPusher(ctx context.Context, i int, stats *pushStats) (pusher, error) {
	storeID := l.storeID(i)
	ws, _, err := websocket.Dial(ctx, l.pusherURL(i)+"/?storeId="+storeID+"&transport=ws", nil)
	if err != nil {
		return nil, err
	}
	l.closers = append(l.closers, func() { ws.CloseNow() })
	ws.SetReadLimit(16 << 20)
	window := 1
	if l.cfg.rate > 0 {
		window = maxInFlight
	}
	return &rawPusher{
		l: l, ws: ws, i: i, storeID: storeID, client: "p" + strconv.Itoa(i),
		pad:   strings.Repeat("x", max(l.cfg.argBytes-40, 0)),
		stats: stats, window: window,
		results: make(chan rawResult, window), readDone: make(chan struct{}),
		sent: make(map[string]time.Time),
	}, nil
}

func (p *rawPusher) run(ctx context.Context, deadline time.Time) {
	readCtx, stopReading := context.WithCancel(ctx)
	go p.readLoop(readCtx)
	defer func() { stopReading(); <-p.readDone }()
	l, stats := p.l, p.stats
	var lat []time.Duration
	defer func() { stats.addLatencies(lat) }()
	var tick <-chan time.Time
	if t := l.startTicker(p.i); t != nil {
		defer t.Stop()
		tick = t.C
	}
	var head, id int64
	defer func() { stats.noteHead(p.storeID, head) }()
	inFlight := 0
	// handle takes one answer; false means the pusher must stop.
	handle := func(r rawResult, ok bool) bool {
		inFlight--
		var ahead *syncproto.ServerAheadError
		switch {
		case !ok:
			stats.fail(fmt.Errorf("pusher %d: connection lost", p.i))
			return false
		case r.err == nil:
			lat = append(lat, r.lat)
			stats.pushed.Add(int64(l.cfg.batch))
			return true
		case p.window == 1 && errors.As(r.err, &ahead):
			// Another pusher on the same store won; rebase on its head.
			stats.conflicts.Add(1)
			head = ahead.MinimumExpectedNum
			return true
		default:
			stats.fail(fmt.Errorf("pusher %d: %w", p.i, r.err))
			return false
		}
	}
	var buf []byte
	for time.Now().Before(deadline) && stats.pushed.Load() < l.cfg.maxEvents {
		if tick != nil {
			<-tick
		}
		for inFlight >= p.window {
			if !handle(p.next()) {
				return
			}
		}
		sent := time.Now()
		rid := strconv.FormatInt(id, 10)
		buf = p.appendPush(buf[:0], rid, head, sent)
		p.mu.Lock()
		p.sent[rid] = sent
		p.mu.Unlock()
		if err := p.ws.Write(ctx, websocket.MessageText, buf); err != nil {
			stats.fail(fmt.Errorf("pusher %d: %w", p.i, err))
			return
		}
		id++
		inFlight++
		head += int64(l.cfg.batch)
	}
	for inFlight > 0 {
		if !handle(p.next()) {
			return
		}
	}
}

// next waits for the next answer; ok is false when the connection ended.
func (p *rawPusher) next() (rawResult, bool) {
	select {
	case r := <-p.results:
		return r, true
	case <-p.readDone:
		select {
		case r := <-p.results:
			return r, true
		default:
			return rawResult{}, false
		}
	}
}

// readLoop reads the answers to the pushes until ctx ends or the
// connection fails.
func (p *rawPusher) readLoop(ctx context.Context) {
	defer close(p.readDone)
	for {
		_, data, err := p.ws.Read(ctx)
		if err != nil {
			return
		}
		now := time.Now()
		m, err := syncproto.DecodeServerMessage(data)
		if err != nil {
			p.stats.fail(fmt.Errorf("pusher %d: %w", p.i, err))
			return
		}
		exit, ok := m.(*syncproto.Exit)
		if !ok {
			continue
		}
		p.mu.Lock()
		sent, found := p.sent[exit.RequestID]
		delete(p.sent, exit.RequestID)
		p.mu.Unlock()
		if !found {
			continue
		}
		p.results <- rawResult{err: exit.Err(), lat: now.Sub(sent)}
	}
}

// appendPush appends the push request rid of loadBatch(head, …, sent, pad)
// to dst, encoded as syncproto encodes it, without reflection.
func (p *rawPusher) appendPush(dst []byte, rid string, head int64, sent time.Time) []byte {
	dst = append(dst, `{"_tag":"Request","id":"`...)
	dst = append(dst, rid...)
	dst = append(dst, `","tag":"`+syncproto.TagPush+`","payload":{"storeId":"`...)
	dst = append(dst, p.storeID...)
	dst = append(dst, `","batch":[`...)
	t := sent.UnixNano()
	for j := range p.l.cfg.batch {
		seq := head + int64(j) + 1
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"name":"v1.LoadTest","args":{"t":`...)
		dst = strconv.AppendInt(dst, t, 10)
		dst = append(dst, `,"p":"`...)
		dst = append(dst, p.pad...)
		dst = append(dst, `"},"seqNum":`...)
		dst = strconv.AppendInt(dst, seq, 10)
		dst = append(dst, `,"parentSeqNum":`...)
		dst = strconv.AppendInt(dst, seq-1, 10)
		dst = append(dst, `,"clientId":"`...)
		dst = append(dst, p.client...)
		dst = append(dst, `","sessionId":"s"}`...)
	}
	return append(dst, `],"backendId":{"_tag":"None"}},"headers":[]}`...)
}
