package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// The floors (--target floor) are the rows' work without a sync server:
//
//   - ingest rows: each pusher appends its batches straight to the storage
//     (the storage's Append: the same SQL statements, transactions and
//     durability settings through the same driver as the server's), one
//     pusher per store as the clients are, each append awaited;
//   - fan-out rows: broadcaster, a WebSocket server on the same library that
//     acknowledges each push and queues its page, encoded once as the
//     server encodes pages, for every live pull of the store, each pull
//     with a writer goroutine as the server's connections have, with no
//     storage, no hub, no flow control and no acknowledgement tracking;
//   - the fan-out row across replicas: the same broadcaster, with the
//     storage's notification and read between the one pushers reach and
//     the one live pulls read (see startRelayFloor).

// broadcaster is the floor of the fan-out rows.
type broadcaster struct {
	ctx      context.Context // ends the connections
	cancel   context.CancelFunc
	appendTo syncserver.Storage // see newBroadcaster
	http     *http.Server
	wg       sync.WaitGroup // the connections' handlers

	mu    sync.Mutex
	conns map[*websocket.Conn]bool
	pulls map[string][]*floorPull // by store id
	n     int                     // pulls registered
}

// floorPull is one live pull: its connection, request id, and the pages
// its writer is to send.
type floorPull struct {
	ws    *websocket.Conn
	id    string
	pages chan []byte
}

// floorPullQueue is the most pages queued for one pull; a pull further
// behind is closed.
const floorPullQueue = 4096

// writeLoop sends p's pages until the broadcaster stops or a write fails.
func (b *broadcaster) writeLoop(p *floorPull) {
	defer b.wg.Done()
	var buf []byte
	for {
		select {
		case page := <-p.pages:
			buf = syncproto.AppendChunk(buf[:0], p.id, page)
			if err := p.ws.Write(context.Background(), websocket.MessageText, buf); err != nil {
				_ = p.ws.CloseNow()
				return
			}
		case <-b.ctx.Done():
			return
		}
	}
}

// startBroadcaster serves a broadcaster on a loopback port.
func startBroadcaster() (*running, error) {
	_, r, err := newBroadcaster(nil)
	return r, err
}

// newBroadcaster serves a broadcaster on a loopback port. With appendTo,
// it appends each push to that storage before acknowledging it, and sends
// no pages itself.
func newBroadcaster(appendTo syncserver.Storage) (*broadcaster, *running, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("floor broadcaster: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &broadcaster{ctx: ctx, cancel: cancel, appendTo: appendTo, conns: map[*websocket.Conn]bool{}, pulls: map[string][]*floorPull{}}
	b.http = &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = b.http.Serve(ln)
	}()
	stop := func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = b.http.Shutdown(sctx)
		<-served
		b.cancel()
		b.mu.Lock()
		for ws := range b.conns {
			_ = ws.CloseNow()
		}
		b.mu.Unlock()
		b.wg.Wait()
	}
	return b, &running{urls: []string{"ws://" + ln.Addr().String()}, ready: b.ready, stop: quietly(stop)}, nil
}

// ready waits until n live pulls are registered.
func (b *broadcaster) ready(ctx context.Context, n int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		b.mu.Lock()
		got := b.n
		b.mu.Unlock()
		switch {
		case got >= n:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("floor broadcaster: %d of %d live pulls arrived", got, n)
		case ctx.Err() != nil:
			return ctx.Err()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ServeHTTP accepts a WebSocket and reads its messages until it closes.
func (b *broadcaster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(largeWriteBuffer{w}, r, nil)
	if err != nil {
		return
	}
	b.mu.Lock()
	if b.ctx.Err() != nil {
		b.mu.Unlock()
		_ = ws.CloseNow()
		return
	}
	b.conns[ws] = true
	b.wg.Add(1)
	b.mu.Unlock()
	defer b.wg.Done()
	defer func() {
		b.mu.Lock()
		delete(b.conns, ws)
		b.mu.Unlock()
		_ = ws.CloseNow()
	}()
	ws.SetReadLimit(16 << 20)
	for {
		// No context per read or write: one costs a goroutine handoff per
		// message in the library; stop closes the connections instead.
		_, data, err := ws.Read(context.Background())
		if err != nil {
			return
		}
		if err := b.handle(ws, data); err != nil {
			_ = ws.Close(websocket.StatusInternalError, err.Error())
			return
		}
	}
}

// handle registers a live pull, or acknowledges a push and broadcasts its
// page; other messages (acknowledgements of chunks) are dropped.
func (b *broadcaster) handle(ws *websocket.Conn, data []byte) error {
	msg, err := syncproto.DecodeClientMessage(data)
	if err != nil {
		return err
	}
	req, ok := msg.(*syncproto.Request)
	if !ok {
		return nil
	}
	switch req.Tag {
	case syncproto.TagPull:
		pull, err := syncproto.DecodePullRequest(req.Payload)
		if err != nil {
			return err
		}
		p := &floorPull{ws: ws, id: req.ID, pages: make(chan []byte, floorPullQueue)}
		b.mu.Lock()
		b.pulls[pull.StoreID] = append(b.pulls[pull.StoreID], p)
		b.n++
		b.wg.Add(1) // while this connection's handler holds its own
		b.mu.Unlock()
		go b.writeLoop(p)
	case syncproto.TagPush:
		push, err := syncproto.DecodePushRequest(req.Payload)
		if err != nil {
			return err
		}
		if b.appendTo != nil {
			if err := b.appendTo.Append(b.ctx, push.StoreID, push.Batch, time.Now()); err != nil {
				return err
			}
		}
		ack, err := json.Marshal(syncproto.ExitPushed(req.ID))
		if err != nil {
			return err
		}
		if err := ws.Write(context.Background(), websocket.MessageText, ack); err != nil {
			return err
		}
		if b.appendTo != nil {
			return nil
		}
		return b.broadcast(push)
	}
	return nil
}

// broadcast encodes push's events as one page and queues it for each live
// pull of the store.
func (b *broadcaster) broadcast(push syncproto.PushRequest) error {
	enc, err := syncproto.NewPageEncoder("floor")
	if err != nil {
		return err
	}
	now := time.Now()
	items := make([][]byte, len(push.Batch))
	for i := range push.Batch {
		if items[i], err = enc.Item(&push.Batch[i], now); err != nil {
			return err
		}
	}
	b.queue(push.StoreID, enc.Page(items, syncproto.PageInfo{Kind: syncproto.NoMore}))
	return nil
}

// queue queues page for each live pull of storeID.
func (b *broadcaster) queue(storeID string, page []byte) {
	b.mu.Lock()
	pulls := b.pulls[storeID]
	b.mu.Unlock()
	for _, p := range pulls {
		select {
		case p.pages <- page:
		default:
			_ = p.ws.CloseNow() // too far behind
		}
	}
}

// largeWriteBuffer gives a connection taken over by the WebSocket library
// a 16 KiB write buffer instead of the HTTP server's 4 KiB, so that a page
// of a few dozen events leaves in one write to the socket, as the sync
// server's pages do.
type largeWriteBuffer struct {
	http.ResponseWriter
}

func (w largeWriteBuffer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if rw.Writer.Buffered() == 0 {
		rw.Writer = bufio.NewWriterSize(conn, 16<<10)
	}
	return conn, rw, nil
}

// Unwrap lets http.ResponseController reach the HTTP server's writer.
func (w largeWriteBuffer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
