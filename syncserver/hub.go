package syncserver

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

// hub is the in-process state of one store with open connections: it
// serialises this process's pushes and delivers new events to live pulls.
// The Server keeps the hubs and counts their connections (Server.mu).
//
// Lock order of a store's locks: hub.pushMu → hub.mu → outbox.mu → conn.mu.
// A push holds pushMu while it stores and broadcasts, and mu while it
// delivers; delivering queues pages in each pull's outbox (outbox.mu); an
// outbox that overflows arms its connection's kill timer (conn.mu). No lock
// is taken in the other direction: a connection releases conn.mu before it
// queues a message or calls the hub. byteBudget.mu, pushMeter.mu and
// storageHealth.mu are leaves, taken under any of these and holding no
// other; Server.mu and conn.stateMu are never held while another of this
// package's locks is taken.
type hub struct {
	srv     *Server
	storeID string

	pushMu sync.Mutex // held from the storage write to the end of the broadcast

	mu        sync.Mutex
	loaded    bool
	backendID string
	head      int64           // last seqNum delivered to live pulls
	subs      map[*pull]int64 // live pulls, each with the highest seqNum it was sent
}

func newHub(s *Server, storeID string) *hub {
	return &hub{srv: s, storeID: storeID, subs: make(map[*pull]int64)}
}

// loadLocked reads the store's backend id and head once. h.mu must be held.
func (h *hub) loadLocked(ctx context.Context) error {
	if h.loaded {
		return nil
	}
	id, err := h.srv.storage.BackendID(ctx, h.storeID)
	h.srv.storageDone(ctx, err, false)
	if err != nil {
		return fmt.Errorf("backend id of store %q: %w", h.storeID, err)
	}
	head, err := h.srv.storage.Head(ctx, h.storeID)
	h.srv.storageDone(ctx, err, false)
	if err != nil {
		return fmt.Errorf("head of store %q: %w", h.storeID, err)
	}
	h.backendID, h.head, h.loaded = id, head, true
	return nil
}

// backend returns the store's backend id, creating the store if needed.
func (h *hub) backend(ctx context.Context) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.loadLocked(ctx); err != nil {
		return "", err
	}
	return h.backendID, nil
}

// push stores batch, calls ack, then delivers the batch to live pulls. The
// storage checks the head atomically; pushMu only keeps this process's
// broadcasts in log order. The batch was checked to fit pull pages
// (Server.checkBatch); it is encoded only after ack, and only if a live
// pull is open.
func (h *hub) push(ctx context.Context, batch []syncproto.Event, ack func()) error {
	createdAt := isoNow()
	stored := make([]StoredEvent, len(batch))
	for i, ev := range batch {
		stored[i] = StoredEvent{Event: ev, CreatedAt: createdAt}
	}
	var err error

	h.pushMu.Lock()
	defer h.pushMu.Unlock()
	actx, measured := h.srv.tel.startAppend(ctx, h.storeID, len(batch))
	err = h.srv.storage.Append(actx, h.storeID, batch, createdAt)
	measured.end(actx, err)
	h.srv.storageDone(ctx, err, true)
	if err != nil {
		return err
	}
	h.srv.pushMeter.add(h.storeID, len(batch), time.Now())
	ack()
	h.mu.Lock()
	defer h.mu.Unlock()
	// Another process may have appended before this batch and its
	// notification not have arrived yet: deliver those events first.
	// (The pusher's context is not used for that: its disconnecting must not
	// cost the other clients their updates.)
	if first := batch[0].ParentSeqNum; h.head < first {
		if err := h.catchUpLocked(h.srv.ctx, first); err != nil {
			// The batch is stored and acknowledged; live pulls that would
			// miss events are disconnected so that their clients pull again.
			h.srv.log.Error("deliver events before a push", "store", h.storeID, "err", err)
			h.dropSubsLocked()
			h.head = batch[len(batch)-1].SeqNum
			return nil
		}
	}
	h.deliverLocked(ctx, stored)
	return nil
}

// catchUp delivers events up to head (0: the storage's current head) that
// were appended by another process.
func (h *hub) catchUp(ctx context.Context, head int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.loaded || (head > 0 && head <= h.head) {
		return nil
	}
	if head <= 0 {
		var err error
		head, err = h.srv.storage.Head(ctx, h.storeID)
		h.srv.storageDone(ctx, err, false)
		if err != nil {
			return err
		}
	}
	return h.catchUpLocked(ctx, head)
}

func (h *hub) catchUpLocked(ctx context.Context, upTo int64) error {
	if len(h.subs) == 0 {
		h.head = max(h.head, upTo)
		return nil
	}
	for h.head < upTo {
		events, err := h.srv.storage.Read(ctx, h.storeID, h.head, upTo, syncproto.MaxEventsPerMessage)
		h.srv.storageDone(ctx, err, false)
		if err != nil {
			return err
		}
		if len(events) == 0 {
			h.head = upTo
			break
		}
		h.deliverLocked(ctx, events)
	}
	return nil
}

// deliverLocked sends events (in order, all after h.head except possibly a
// prefix already delivered) to every live pull, each only the events after
// what it was already sent. The pages of all events are encoded once, for
// the first pull that takes them all, and their bytes shared by the others.
// ctx carries the span of the push that stored the events, if any.
func (h *hub) deliverLocked(ctx context.Context, events []StoredEvent) {
	for len(events) > 0 && events[0].SeqNum <= h.head {
		events = events[1:]
	}
	var pages [][]byte // of all events, encoded for the first pull that takes them all
	if len(events) == 0 {
		return
	}
	for p, sentUpTo := range h.subs {
		evs := events
		for len(evs) > 0 && evs[0].SeqNum <= sentUpTo {
			evs = evs[1:]
		}
		if len(evs) == 0 {
			continue
		}
		var own [][]byte
		if len(evs) == len(events) {
			if pages == nil {
				pages = h.encodeLiveOrLog(events)
			}
			own = pages
		} else {
			own = h.encodeLiveOrLog(evs)
		}
		if own == nil {
			// Better a disconnected client, which pulls again, than a gap.
			p.conn.abort()
			delete(h.subs, p)
			continue
		}
		p.sendLive(ctx, evs, own)
		h.subs[p] = evs[len(evs)-1].SeqNum
		h.srv.metrics.eventsSent.Add(float64(len(evs)))
		h.srv.tel.eventsOut(ctx, h.storeID, len(evs))
	}
	h.head = events[len(events)-1].SeqNum
}

func noMore(int, int) syncproto.PageInfo { return syncproto.PageInfo{Kind: syncproto.NoMore} }

// encodeLiveOrLog encodes stored events, which were checked to fit pages when
// they were pushed; a failure is logged and the pull gets nothing.
func (h *hub) encodeLiveOrLog(events []StoredEvent) [][]byte {
	pages, err := h.encodeLive(events)
	if err != nil {
		h.srv.log.Error("encode live update", "store", h.storeID, "err", err)
	}
	return pages
}

// encodeLive encodes events as NoMore pull pages.
func (h *hub) encodeLive(events []StoredEvent) ([][]byte, error) {
	return encodePages(events, h.backendID, noMore)
}

// subscribe registers p for live delivery if it has been sent everything
// delivered so far (sentUpTo >= head). Otherwise it returns false and the
// head p must catch up to first. A cancelled pull is never registered.
func (h *hub) subscribe(p *pull, sentUpTo int64) (ok bool, head int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p.ctx.Err() != nil {
		return true, h.head
	}
	if h.head > sentUpTo {
		return false, h.head
	}
	h.subs[p] = sentUpTo
	return true, h.head
}

func (h *hub) unsubscribe(p *pull) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, p)
}

// dropSubsLocked disconnects every live pull (used when events could not be
// delivered, so that no client silently misses some).
func (h *hub) dropSubsLocked() {
	for p := range h.subs {
		p.conn.abort()
		delete(h.subs, p)
	}
}

// encodePages encodes events as pull pages (see syncproto.PageEncoder);
// info gives the page info of a page after which sent of the n events have
// been sent. Each event is encoded once.
func encodePages(events []StoredEvent, backendID string, info func(sent, n int) syncproto.PageInfo) ([][]byte, error) {
	enc, err := syncproto.NewPageEncoder(backendID)
	if err != nil {
		return nil, err
	}
	items := make([][]byte, len(events))
	for i := range events {
		if items[i], err = enc.Item(&events[i].Event, events[i].CreatedAt); err != nil {
			return nil, err
		}
	}
	return enc.Pages(items, info)
}
