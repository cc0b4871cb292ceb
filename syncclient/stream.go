package syncclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/livestore-go/livestore/syncproto"
)

// ErrStreamClosed is returned by Next after Close.
var ErrStreamClosed = errors.New("syncclient: pull stream closed")

// PullStream is the stream of pages of one pull. Next is meant for one
// goroutine; Close may be called from any.
type PullStream struct {
	c    *Client
	id   string
	wake chan struct{}

	mu     sync.Mutex
	chunks [][]byte                 // received, not yet decoded: JSON arrays of pages
	ready  []syncproto.PullResponse // decoded pages not yet returned
	err    error                    // set when the stream has ended
}

// push queues the values array of a received chunk.
func (s *PullStream) push(values []byte) {
	s.mu.Lock()
	if s.err == nil {
		s.chunks = append(s.chunks, values)
	}
	s.mu.Unlock()
	s.signal()
}

// finish ends the stream with err (io.EOF for a successful end), after the
// chunks already received.
func (s *PullStream) finish(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.signal()
}

func (s *PullStream) signal() { poke(s.wake) }

// poke wakes the one waiter on ch (a channel of capacity one), if it is not
// already woken.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Next returns the next page. It returns io.EOF when a non-live pull has
// delivered everything, the pull's error (for example
// *syncproto.BackendIDMismatchError) if it failed, or the connection's error.
// Like the reference client it acknowledges each chunk to the server when
// the chunk is taken, which lets the server send the next page.
func (s *PullStream) Next(ctx context.Context) (syncproto.PullResponse, error) {
	for {
		s.mu.Lock()
		if len(s.ready) > 0 {
			p := s.pop()
			s.mu.Unlock()
			return p, nil
		}
		if len(s.chunks) > 0 {
			values := s.chunks[0]
			s.chunks[0] = nil
			s.chunks = s.chunks[1:]
			s.mu.Unlock()
			if err := s.c.write(&syncproto.Ack{RequestID: s.id}); err != nil {
				return syncproto.PullResponse{}, err
			}
			pages, err := syncproto.DecodePullResponses(values)
			if err != nil {
				return syncproto.PullResponse{}, fmt.Errorf("syncclient: %w", err)
			}
			s.mu.Lock()
			if s.err == ErrStreamClosed {
				s.mu.Unlock()
				return syncproto.PullResponse{}, ErrStreamClosed
			}
			s.ready = append(s.ready, pages...)
			s.mu.Unlock()
			continue
		}
		err := s.err
		s.mu.Unlock()
		if err != nil {
			return syncproto.PullResponse{}, err
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return syncproto.PullResponse{}, ctx.Err()
		}
	}
}

// pop takes the first decoded page; s.mu must be held.
func (s *PullStream) pop() syncproto.PullResponse {
	p := s.ready[0]
	s.ready = s.ready[1:]
	return p
}

// Close ends the pull: if it is still open, the server is sent an Interrupt.
// Pages not yet returned by Next are dropped.
func (s *PullStream) Close() error {
	s.c.mu.Lock()
	open := s.c.streams[s.id] == s
	delete(s.c.streams, s.id)
	s.c.mu.Unlock()
	s.mu.Lock()
	if s.err == nil || s.err == io.EOF {
		s.err = ErrStreamClosed
	}
	s.chunks, s.ready = nil, nil
	s.mu.Unlock()
	s.signal()
	if open {
		if err := s.c.write(&syncproto.Interrupt{RequestID: s.id}); err != nil && !errors.Is(err, ErrClosed) {
			return err
		}
	}
	return nil
}
