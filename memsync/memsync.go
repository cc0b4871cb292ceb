// Package memsync is an in-process sync server for tests and examples. It
// follows the ordering rules of the real server (one total order per store,
// pushes must be based on the server's head, live pulls receive every later
// push, including the pusher's own) without any network, and lets a test
// take clients offline, drop connections and reset a store's backend
// identity.
//
// It keeps everything in memory and speaks no wire protocol: nothing
// survives the process, and there are no limits, auth or persistence. A
// program that needs a real server uses package syncserver.
package memsync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/syncproto"
)

// ErrOffline is returned by Connect and by operations on dropped
// connections while the link is cut.
var ErrOffline = errors.New("memsync: offline")

// Server holds the logs of any number of stores.
type Server struct {
	mu     sync.Mutex
	stores map[string]*storeLog
	conns  map[*conn]struct{}
	// offline makes Connect fail, per client link.
	offline map[*Link]bool
}

type storeLog struct {
	backendID string
	events    []syncproto.PullItem
	streams   map[*stream]struct{}
}

// NewServer returns an empty server.
func NewServer() *Server {
	return &Server{stores: map[string]*storeLog{}, conns: map[*conn]struct{}{}, offline: map[*Link]bool{}}
}

func newBackendID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) store(id string) *storeLog {
	st, ok := s.stores[id]
	if !ok {
		st = &storeLog{backendID: newBackendID(), streams: map[*stream]struct{}{}}
		s.stores[id] = st
	}
	return st
}

// Events returns a copy of a store's log.
func (s *Server) Events(storeID string) []syncproto.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.store(storeID)
	out := make([]syncproto.Event, len(st.events))
	for i, it := range st.events {
		out[i] = it.Event
	}
	return out
}

// BackendID returns a store's backend identity.
func (s *Server) BackendID(storeID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store(storeID).backendID
}

// Reset deletes a store's log and gives it a new backend identity, as when a
// server's database is replaced. Open streams of the store end.
func (s *Server) Reset(storeID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.store(storeID)
	for str := range st.streams {
		str.finish(ErrOffline)
	}
	s.stores[storeID] = &storeLog{backendID: newBackendID(), streams: map[*stream]struct{}{}}
}

// Link is one client's connection point to the server; tests cut and heal it
// to simulate network trouble.
type Link struct {
	srv *Server
	// Latency, when set, delays every push and every delivered pull page.
	Latency func() time.Duration
}

// NewLink returns a link a store uses as its SyncBackend.
func (s *Server) NewLink() *Link { return &Link{srv: s} }

// SetOnline connects (true) or cuts (false) the link. Cutting it drops its
// open connections.
func (l *Link) SetOnline(online bool) {
	s := l.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offline[l] = !online
	if !online {
		for c := range s.conns {
			if c.link == l {
				c.dropLocked()
			}
		}
	}
}

// Drop closes the link's open connections (the client reconnects).
func (l *Link) Drop() {
	s := l.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.link == l {
			c.dropLocked()
		}
	}
}

// Connect implements livestore.SyncBackend.
func (l *Link) Connect(ctx context.Context, storeID string, payload json.RawMessage) (livestore.SyncConn, error) {
	s := l.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.offline[l] {
		return nil, ErrOffline
	}
	c := &conn{link: l, storeID: storeID, streams: map[*stream]struct{}{}}
	s.conns[c] = struct{}{}
	return c, nil
}

type conn struct {
	link    *Link
	storeID string
	dropped bool
	streams map[*stream]struct{}
}

func (c *conn) dropLocked() {
	c.dropped = true
	for str := range c.streams {
		str.finish(ErrOffline)
	}
	delete(c.link.srv.conns, c)
}

func (c *conn) delay(ctx context.Context) error {
	if c.link.Latency == nil {
		return nil
	}
	d := c.link.Latency()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *conn) Close() error {
	s := c.link.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	c.dropLocked()
	return nil
}

// Push implements livestore.SyncConn with the server's rules.
func (c *conn) Push(ctx context.Context, batch []syncproto.Event, backendID *string) error {
	if err := c.delay(ctx); err != nil {
		return err
	}
	s := c.link.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.dropped {
		return ErrOffline
	}
	st := s.store(c.storeID)
	if len(batch) == 0 {
		return nil
	}
	if backendID != nil && *backendID != st.backendID {
		return &syncproto.BackendIDMismatchError{Expected: st.backendID, Received: *backendID}
	}
	head := int64(0)
	if n := len(st.events); n > 0 {
		head = st.events[n-1].Event.SeqNum
	}
	if batch[0].ParentSeqNum != head {
		return &syncproto.ServerAheadError{MinimumExpectedNum: head, ProvidedNum: batch[0].ParentSeqNum}
	}
	if err := syncproto.CheckChain(batch); err != nil {
		return &syncproto.UnknownError{Message: err.Error()}
	}
	meta := &syncproto.SyncMetadata{CreatedAt: time.Now().UTC().Format("2006-01-02T15:04:05.000Z")}
	items := make([]syncproto.PullItem, len(batch))
	for i, ev := range batch {
		items[i] = syncproto.PullItem{Event: ev, Metadata: meta}
	}
	st.events = append(st.events, items...)
	for str := range st.streams {
		str.send(syncproto.PullResponse{Batch: items, BackendID: st.backendID})
	}
	return nil
}

// Pull implements livestore.SyncConn.
func (c *conn) Pull(ctx context.Context, cursor *syncproto.Cursor, live bool) (livestore.PullStream, error) {
	s := c.link.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.dropped {
		return nil, ErrOffline
	}
	st := s.store(c.storeID)
	after := int64(0)
	if cursor != nil {
		if cursor.BackendID != st.backendID {
			return nil, &syncproto.BackendIDMismatchError{Expected: st.backendID, Received: cursor.BackendID}
		}
		after = cursor.EventSequenceNumber
	}
	str := &stream{c: c, wake: make(chan struct{}, 1)}
	var rest []syncproto.PullItem
	for _, it := range st.events {
		if it.Event.SeqNum > after {
			rest = append(rest, it)
		}
	}
	for len(rest) > 0 || str.queue == nil {
		n := min(len(rest), syncproto.MaxEventsPerMessage)
		page := syncproto.PullResponse{Batch: rest[:n:n], BackendID: st.backendID}
		rest = rest[n:]
		if len(rest) > 0 {
			page.PageInfo = syncproto.PageInfo{Kind: syncproto.MoreKnown, Remaining: int64(len(rest))}
		}
		str.queue = append(str.queue, page)
	}
	if live {
		st.streams[str] = struct{}{}
		c.streams[str] = struct{}{}
		str.unregister = func() { delete(st.streams, str); delete(c.streams, str) }
	} else {
		str.err = io.EOF
	}
	return str, nil
}

type stream struct {
	c          *conn
	wake       chan struct{}
	queue      []syncproto.PullResponse // guarded by Server.mu
	err        error                    // terminal, after the queue drains
	unregister func()
}

func (str *stream) send(p syncproto.PullResponse) {
	str.queue = append(str.queue, p)
	select {
	case str.wake <- struct{}{}:
	default:
	}
}

func (str *stream) finish(err error) {
	if str.err == nil {
		str.err = err
	}
	if str.unregister != nil {
		str.unregister()
		str.unregister = nil
	}
	select {
	case str.wake <- struct{}{}:
	default:
	}
}

// Next implements livestore.PullStream.
func (str *stream) Next(ctx context.Context) (syncproto.PullResponse, error) {
	s := str.c.link.srv
	for {
		s.mu.Lock()
		if len(str.queue) > 0 {
			p := str.queue[0]
			str.queue = str.queue[1:]
			s.mu.Unlock()
			if err := str.c.delay(ctx); err != nil {
				return syncproto.PullResponse{}, err
			}
			return p, nil
		}
		if str.err != nil {
			err := str.err
			s.mu.Unlock()
			return syncproto.PullResponse{}, err
		}
		s.mu.Unlock()
		select {
		case <-str.wake:
		case <-ctx.Done():
			return syncproto.PullResponse{}, ctx.Err()
		}
	}
}

// Close implements livestore.PullStream.
func (str *stream) Close() error {
	s := str.c.link.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	str.finish(fmt.Errorf("memsync: stream closed"))
	return nil
}
