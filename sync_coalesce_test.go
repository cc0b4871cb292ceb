package livestore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/syncproto"
)

// burstBackend serves one live pull: an empty first page, then, once burst
// is closed, one page per upstream event, all at once. Pushes are always
// answered "server ahead", so the client's events stay pending.
type burstBackend struct {
	events int
	burst  chan struct{}
	// gap spaces the pages out; announce makes every page but the last say
	// how many events follow (MoreKnown), as a server catching a client up.
	gap      time.Duration
	announce bool
}

func (b *burstBackend) Connect(context.Context, string, json.RawMessage) (livestore.SyncConn, error) {
	return &burstConn{b: b}, nil
}

type burstConn struct{ b *burstBackend }

func (c *burstConn) Pull(context.Context, *syncproto.Cursor, bool) (livestore.PullStream, error) {
	return &burstStream{b: c.b}, nil
}

func (c *burstConn) Push(_ context.Context, batch []syncproto.Event, _ *string) error {
	return &syncproto.ServerAheadError{MinimumExpectedNum: int64(c.b.events), ProvidedNum: batch[0].ParentSeqNum}
}

func (c *burstConn) Close() error { return nil }

type burstStream struct {
	b    *burstBackend
	sent int
}

func (s *burstStream) Next(ctx context.Context) (syncproto.PullResponse, error) {
	page := syncproto.PullResponse{Batch: []syncproto.PullItem{}, BackendID: "burst"}
	if s.sent == 0 {
		s.sent++
		return page, nil
	}
	select {
	case <-s.b.burst:
	case <-ctx.Done():
		return page, ctx.Err()
	}
	if s.sent > s.b.events {
		<-ctx.Done()
		return page, io.EOF
	}
	if s.b.gap > 0 {
		select {
		case <-time.After(s.b.gap):
		case <-ctx.Done():
			return page, ctx.Err()
		}
	}
	seq := int64(s.sent)
	s.sent++
	if s.b.announce && seq < int64(s.b.events) {
		page.PageInfo = syncproto.PageInfo{Kind: syncproto.MoreKnown, Remaining: int64(s.b.events) - seq}
	}
	page.Batch = []syncproto.PullItem{{Event: syncproto.Event{Name: "v1.TodoCreated",
		Args:   json.RawMessage(fmt.Sprintf(`{"id":"up%d","text":"u"}`, seq)),
		SeqNum: seq, ParentSeqNum: seq - 1, ClientID: "other", SessionID: "other-s"}}}
	return page, nil
}

func (s *burstStream) Close() error { return nil }

// TestSyncCoalescesReadyPages: pages that arrive while the processor is busy
// are applied together, with one rollback and rebase of the pending events,
// rather than one rebase per page. Found by the reliability suite: with
// hundreds of pending events, a store rebasing once per live page (a page
// per push of a busy store) fell further behind and could not push.
func TestSyncCoalescesReadyPages(t *testing.T) {
	a := newTodoApp(t)
	b := &burstBackend{events: 60, burst: make(chan struct{})}
	s := openSynced(t, a.schema, t.TempDir(), &livestore.SyncOptions{Backend: b, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	ctx := context.Background()
	evs := make([]livestore.Event, 300)
	for i := range evs {
		evs[i] = a.created.New(todoCreated{ID: fmt.Sprint("mine", i), Text: "m"})
	}
	mustCommit(t, s, evs...)
	close(b.burst)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := s.SyncStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.UpstreamHead == int64(b.events) {
			// One rebase per applied group of pages.
			if gen := st.LocalHead.RebaseGeneration; gen > int64(b.events)/4 {
				t.Fatalf("%d rebases for %d pages that were ready together", gen, b.events)
			}
			if st.PendingCount != len(evs) || st.LocalHead.Global != int64(b.events+len(evs)) {
				t.Fatalf("status %+v", st)
			}
			break
		}
		if st.Stopped || time.Now().After(deadline) {
			t.Fatalf("status %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSyncAwaitsAnnouncedBacklog: a client with pending events that is being
// caught up (pages saying MoreKnown) waits for the backlog and rebases once,
// even when the pages arrive one by one, slower than a rebase.
func TestSyncAwaitsAnnouncedBacklog(t *testing.T) {
	a := newTodoApp(t)
	b := &burstBackend{events: 20, burst: make(chan struct{}), gap: 30 * time.Millisecond, announce: true}
	s := openSynced(t, a.schema, t.TempDir(), &livestore.SyncOptions{Backend: b, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	ctx := context.Background()
	evs := make([]livestore.Event, 300)
	for i := range evs {
		evs[i] = a.created.New(todoCreated{ID: fmt.Sprint("mine", i), Text: "m"})
	}
	mustCommit(t, s, evs...)
	close(b.burst)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		st, err := s.SyncStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.UpstreamHead == int64(b.events) {
			// One rebase; two if a page was more than catchUpPageWait late
			// on a loaded machine. Applying pages as they come takes ~20.
			if gen := st.LocalHead.RebaseGeneration; gen > 2 {
				t.Fatalf("%d rebases while catching up with an announced backlog of %d pages", gen, b.events)
			}
			if st.PendingCount != len(evs) || st.LocalHead.Global != int64(b.events+len(evs)) {
				t.Fatalf("status %+v", st)
			}
			break
		}
		if st.Stopped || time.Now().After(deadline) {
			t.Fatalf("status %+v", st)
		}
	}
	rows, err := livestore.Query[todo](ctx, s, a.todos.Select())
	if err != nil || len(rows) != b.events+len(evs) {
		t.Fatalf("%d rows, %v", len(rows), err)
	}
}
