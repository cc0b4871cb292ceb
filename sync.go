package livestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/syncproto"
)

// SyncBackend connects a store to a sync server: [syncproto.Backend].
// Package syncclient implements it for servers speaking the sync-cf
// protocol (syncclient.WebSocketBackend, syncclient.HTTPBackend); package
// memsync provides an in-process server for tests.
type SyncBackend = syncproto.Backend

// SyncConn is one connection to a sync server: [syncproto.Conn].
type SyncConn = syncproto.Conn

// PullStream delivers the pages of a pull: [syncproto.PullStream].
type PullStream = syncproto.PullStream

// BackendIDMismatchPolicy says what a store does when the sync server turns
// out to be another one than it synced with before (its backendId changed,
// e.g. because the server's data was deleted). Under every policy the store
// first saves its synced events — those the old server confirmed and the
// pending ones, which may exist nowhere else — to a recovery file in the
// store directory (see RecoveryFiles; SyncStatus.RecoveryFile names it), or
// in memory for an in-memory store (Store.RecoveredEvents). If that copy
// cannot be made, syncing stops and nothing is changed.
type BackendIDMismatchPolicy int

// Backend-id mismatch policies. The zero value, ShutdownOnBackendIDMismatch,
// changes nothing locally or on the server: a new backend id may mean the
// server was wiped, or that the store is pointed at another server by
// mistake, and only the application can tell which. Repushing is one option
// away when it knows.
const (
	// ShutdownOnBackendIDMismatch stops syncing and keeps all local data;
	// the store keeps working locally. Reopen the store with another policy
	// to go on. This is the default.
	ShutdownOnBackendIDMismatch BackendIDMismatchPolicy = iota
	// RepushOnBackendIDMismatch adopts the new backend and pushes the
	// pending events to it: they are rolled back, the new server's log is
	// pulled, and they are renumbered on top of it and pushed, each once,
	// in order. The events the old server had confirmed leave the local log
	// and state: the new server lacks them, and pushing them again would
	// duplicate them once several clients come back from the same old
	// server. They stay in the recovery file, from which `livestore import`
	// can restore them into a server.
	RepushOnBackendIDMismatch
	// ResetOnBackendIDMismatch deletes the local eventlog and state (after
	// saving the recovery file) and stops syncing; the application reopens
	// the store to start afresh from the new server.
	ResetOnBackendIDMismatch
	// IgnoreBackendIDMismatch adopts the new backend and keeps syncing from
	// the local head. Events the new server lacks are not re-sent, and
	// pending events may never reach it; they are in the recovery file.
	IgnoreBackendIDMismatch
)

// SyncOptions configures syncing of a store.
type SyncOptions struct {
	// Backend is the sync server. Required.
	Backend SyncBackend
	// Payload is passed to the backend on connect (e.g. an auth token).
	Payload json.RawMessage
	// MaxPushBatch caps the events of one push. Zero means 100, the
	// protocol's limit.
	MaxPushBatch int
	// OnBackendIDMismatch is the policy for a changed server identity. The
	// zero value stops syncing and keeps local data.
	OnBackendIDMismatch BackendIDMismatchPolicy
	// MinBackoff and MaxBackoff bound the delay between reconnection
	// attempts, which doubles after each failure (with jitter). Zero means
	// 100ms and 30s.
	MinBackoff, MaxBackoff time.Duration
}

// SyncStatus describes where a store stands with its sync server.
type SyncStatus struct {
	// LocalHead is the newest event in the local eventlog.
	LocalHead eventlog.SeqNum `json:"localHead"`
	// UpstreamHead is the newest global sequence number confirmed by the
	// server.
	UpstreamHead int64 `json:"upstreamHead"`
	// PendingCount is the number of synced events not confirmed yet.
	PendingCount int `json:"pendingCount"`
	// Connected reports a live connection to the server.
	Connected bool `json:"connected"`
	// IsSynced is true when connected, caught up with the server, and
	// nothing is pending.
	IsSynced bool `json:"isSynced"`
	// BackendID identifies the server's database.
	BackendID string `json:"backendId,omitempty"`
	// Err is why syncing stopped or the last connection failed, if so.
	Err string `json:"error,omitempty"`
	// Stopped is true when syncing ended for good (policy, or a materializer
	// failure); the store keeps working locally.
	Stopped bool `json:"stopped"`
	// RecoveryFile is the recovery file this Open of the store wrote when
	// the server's backend id changed: the local synced events, pending ones
	// marked (see RecoveryEvent). Empty for an in-memory store, which keeps
	// them in memory (Store.RecoveredEvents).
	RecoveryFile string `json:"recoveryFile,omitempty"`
	// RecoveredCount is the number of events saved at that change, in the
	// file or in memory.
	RecoveredCount int `json:"recoveredCount,omitempty"`
	// NextRetryAt is when the processor reconnects after a failed or lost
	// connection; zero while connected, connecting, or stopped.
	NextRetryAt time.Time `json:"nextRetryAt,omitzero"`
}

// ErrBackendReset is the status error after the reset policy deleted local
// data because the server's backendId changed. The message goes on to say
// where the events were saved first.
var ErrBackendReset = errors.New("livestore: sync server was reset; local data deleted")

// syncer is the store's sync processor: one goroutine, started by Open and
// stopped by Close, that pulls, rebases and pushes.
type syncer struct {
	// Set by startSync and never changed.
	s      *Store
	opts   SyncOptions
	kick   chan struct{} // poked by commits; one slot, read by the processor
	cancel context.CancelFunc
	done   chan struct{} // closed when the processor returns
	status *Signal[SyncStatus]

	// mu guards the fields below. It is last in the store's lock order (see
	// Store): it may be taken under the write lock, and nothing is taken
	// while it is held.
	mu         sync.Mutex
	connected  bool
	caughtUp   bool
	lastErr    error
	stopped    bool
	pushedUpTo int64 // highest global the server acknowledged to our pushes
	nextRetry  time.Time
	// Where the events were saved at the last backend change.
	recoveryFile   string
	recovered      []RecoveryEvent // in-memory stores only
	recoveredCount int
}

func (s *Store) startSync(opts SyncOptions) {
	if opts.MaxPushBatch <= 0 || opts.MaxPushBatch > syncproto.MaxEventsPerMessage {
		opts.MaxPushBatch = syncproto.MaxEventsPerMessage
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	y := &syncer{s: s, opts: opts, kick: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{}),
		status: NewSignal(SyncStatus{}, "sync status")}
	s.syncer = y
	go y.run(ctx)
}

func (y *syncer) stop() {
	y.cancel()
	<-y.done
}

// poke tells the processor that local events were committed.
func (y *syncer) poke() {
	select {
	case y.kick <- struct{}{}:
	default:
	}
}

// SyncStatus reports the store's current sync state. A store without sync
// reports its local head and pending count only.
func (s *Store) SyncStatus(ctx context.Context) (SyncStatus, error) {
	if err := s.acquireWrite(ctx); err != nil {
		return SyncStatus{}, err
	}
	defer s.releaseWrite()
	return s.syncStatusLocked()
}

// SyncStatusSignal is a reactive value of the store's sync status, for
// Subscribe, Watch or Use in a Computed. It is nil for a store without sync.
func (s *Store) SyncStatusSignal() *Signal[SyncStatus] {
	if s.syncer == nil {
		return nil
	}
	return s.syncer.status
}

func (s *Store) syncStatusLocked() (SyncStatus, error) {
	st := SyncStatus{LocalHead: s.head, UpstreamHead: s.sync.Head, BackendID: s.sync.BackendID}
	n, err := s.db.PendingCount(s.sync.Head)
	if err != nil {
		return st, err
	}
	st.PendingCount = int(n)
	if y := s.syncer; y != nil {
		y.mu.Lock()
		st.Connected = y.connected
		st.Stopped = y.stopped
		if y.lastErr != nil {
			st.Err = y.lastErr.Error()
		}
		st.IsSynced = y.connected && y.caughtUp && st.PendingCount == 0
		st.RecoveryFile, st.RecoveredCount = y.recoveryFile, y.recoveredCount
		st.NextRetryAt = y.nextRetry
		y.mu.Unlock()
	}
	return st, nil
}

// publish updates the status signal.
func (y *syncer) publish() {
	st, err := y.s.SyncStatus(context.Background())
	if err != nil {
		return
	}
	y.s.tel.pending.Store(int64(st.PendingCount))
	SetSignal(y.s, y.status, st)
}

func (y *syncer) setState(f func()) {
	y.mu.Lock()
	f()
	y.mu.Unlock()
	y.publish()
}

// errStopSync ends the processor for good.
type errStopSync struct{ err error }

func (e errStopSync) Error() string { return e.err.Error() }
func (e errStopSync) Unwrap() error { return e.err }

func (y *syncer) run(ctx context.Context) {
	defer close(y.done)
	backoff := y.opts.MinBackoff
	for ctx.Err() == nil {
		progressed, err := y.session(ctx)
		if ctx.Err() != nil {
			return
		}
		var stop errStopSync
		if errors.As(err, &stop) {
			y.s.log.Error("sync stopped", "store", y.s.storeID, "err", stop.err)
			y.setState(func() { y.connected, y.stopped, y.lastErr = false, true, stop.err })
			return
		}
		y.s.log.Warn("sync connection ended", "store", y.s.storeID, "err", err)
		if progressed {
			backoff = y.opts.MinBackoff
		}
		// Full jitter: a random delay up to the current backoff.
		d := time.Duration(rand.Int64N(int64(backoff))) + backoff/2
		y.setState(func() {
			y.connected, y.caughtUp, y.lastErr = false, false, err
			y.nextRetry = time.Now().Add(d)
		})
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		y.setState(func() { y.nextRetry = time.Time{} })
		backoff = min(backoff*2, y.opts.MaxBackoff)
	}
}

type pageResult struct {
	page syncproto.PullResponse
	err  error
}

// session runs one connection: a live pull feeding pages to this goroutine,
// which applies them and pushes pending events in between. It reports
// whether it got as far as receiving a page (to reset the backoff).
func (y *syncer) session(ctx context.Context) (progressed bool, err error) {
	conn, err := y.opts.Backend.Connect(ctx, y.s.storeID, y.opts.Payload)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages, stopPull, err := y.startPull(ctx, sctx, conn)
	if err != nil {
		return false, err
	}
	defer stopPull()
	serverAhead := false
	for {
		if !serverAhead && progressed {
			if serverAhead, err = y.push(ctx, sctx, conn); err != nil {
				return progressed, err
			}
		}
		select {
		case <-ctx.Done():
			return progressed, ctx.Err()
		case <-y.kick:
			y.publish()
		case pr := <-pages:
			if err := y.applyPages(ctx, sctx, pr, pages, &progressed); err != nil {
				return progressed, err
			}
			serverAhead = false
			y.publish()
		}
	}
}

// startPull opens the live pull from the recorded upstream head, and
// starts the goroutine that reads its pages into the returned channel
// until sctx ends. stop cancels sctx and waits for that goroutine.
func (y *syncer) startPull(ctx, sctx context.Context, conn SyncConn) (pages <-chan pageResult, stop func(), err error) {
	s := y.s
	if err := s.acquireWrite(ctx); err != nil {
		return nil, nil, err
	}
	st := s.sync
	s.releaseWrite()
	var cursor *syncproto.Cursor
	if st.BackendID != "" {
		cursor = &syncproto.Cursor{BackendID: st.BackendID, EventSequenceNumber: st.Head}
	}
	stream, err := conn.Pull(sctx, cursor, true)
	if err != nil {
		return nil, nil, y.classify(ctx, fmt.Errorf("pull: %w", err))
	}
	y.mu.Lock()
	y.pushedUpTo = st.Head
	y.mu.Unlock()
	// Buffered: pages read ahead while a rebase runs are applied together.
	ch := make(chan pageResult, readAheadPages)
	sctx, cancel := context.WithCancel(sctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer stream.Close()
		readPages(sctx, stream, ch)
	}()
	return ch, func() { cancel(); wg.Wait() }, nil
}

// readPages sends the pages of stream to pages until a page fails (the
// failure is sent too) or ctx ends.
func readPages(ctx context.Context, stream PullStream, pages chan<- pageResult) {
	for {
		p, err := stream.Next(ctx)
		select {
		case pages <- pageResult{p, err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// push pushes the pending events. It reports whether the server is ahead,
// the push then waiting for the live pull to bring the events we lack;
// other failures end the session.
func (y *syncer) push(ctx, sctx context.Context, conn SyncConn) (serverAhead bool, err error) {
	if err := y.pushPending(sctx, conn); err != nil {
		var ahead *syncproto.ServerAheadError
		if !errors.As(err, &ahead) {
			return false, y.classify(ctx, fmt.Errorf("push: %w", err))
		}
		return true, nil
	}
	return false, nil
}

// applyPages applies first and the pages ready behind it, coalesced, and
// sets *progressed once a page arrived.
func (y *syncer) applyPages(ctx, sctx context.Context, first pageResult, pages <-chan pageResult, progressed *bool) error {
	group := mergeReadyPages(first, pages)
	if last := group[len(group)-1]; last.err == nil && last.page.PageInfo.Kind == syncproto.MoreKnown {
		// Catching up: with local events pending, every applied group costs
		// a rollback and rebase of all of them, so take in the server's
		// backlog first.
		if pending, err := y.hasPending(ctx); err == nil && pending {
			group = awaitBacklog(sctx, group, pages)
		}
	}
	for _, pr := range group {
		if pr.err != nil {
			return y.classify(ctx, fmt.Errorf("pull: %w", pr.err))
		}
		if !*progressed {
			*progressed = true
			y.setState(func() { y.connected, y.lastErr = true, nil })
		}
		if err := y.applyPage(ctx, pr.page); err != nil {
			return y.classify(ctx, err)
		}
		if pr.page.PageInfo.Kind == syncproto.NoMore {
			y.mu.Lock()
			y.caughtUp = true
			y.mu.Unlock()
		}
	}
	return nil
}

// applyPage applies one pull page in one transaction: events the server
// confirms are marked confirmed; when the server's events differ from the
// local pending ones, the pending events (and client-only events after the
// first of them) are rolled back, the server's events applied, and the
// rolled-back events re-numbered after them (a rebase) and materialized
// again (see applyUpstream). Subscribers are notified once, of the final
// state.
func (y *syncer) applyPage(ctx context.Context, page syncproto.PullResponse) (err error) {
	s := y.s
	ctx, span := s.tel.startPull(ctx, page)
	defer func() { endSpan(span, err) }()
	if err := s.acquireWrite(ctx); err != nil {
		return err
	}
	defer s.releaseWrite()
	incoming, err := newEvents(page, s.sync)
	if err != nil || (len(incoming) == 0 && page.BackendID == s.sync.BackendID) {
		return err
	}
	if err := s.w.Begin(); err != nil {
		return err
	}
	written := map[string]struct{}{}
	rebased, err := s.applyUpstream(ctx, incoming, page.BackendID, written)
	if err != nil {
		s.w.Rollback()
		// The local state is unchanged; a materializer that cannot apply
		// the server's events will fail again on retry.
		var merr *MaterializerError
		var uerr *UnknownEventError
		if errors.As(err, &merr) || errors.As(err, &uerr) || errors.Is(err, eventlog.ErrSeqNumExhausted) {
			return errStopSync{err}
		}
		return err
	}
	if err := s.w.Commit(); err != nil {
		s.w.Rollback()
		// The in-memory head and sync status were not changed yet.
		return fmt.Errorf("pull: commit: %w", err)
	}
	s.tel.settled(s.sync.Head)
	if rebased {
		y.mu.Lock()
		y.pushedUpTo = s.sync.Head
		y.mu.Unlock()
		s.tel.countRebase(ctx)
	}
	s.afterWrite(written)
	return nil
}

// newEvents returns the events of page after the upstream head of st,
// checked to continue the local log. A server that skips, reorders or
// misnumbers events (or numbers them past what clients can hold) would do
// so again on every reconnection: syncing stops, with the reason in
// SyncStatus, rather than store a log that differs from the server's.
func newEvents(page syncproto.PullResponse, st eventlog.SyncStatus) ([]syncproto.PullItem, error) {
	if page.BackendID != "" && st.BackendID != "" && page.BackendID != st.BackendID {
		return nil, &syncproto.BackendIDMismatchError{Expected: page.BackendID, Received: st.BackendID}
	}
	var incoming []syncproto.PullItem
	for _, it := range page.Batch {
		if it.Event.SeqNum > st.Head {
			incoming = append(incoming, it)
		}
	}
	if len(incoming) == 0 {
		return nil, nil
	}
	if incoming[0].Event.ParentSeqNum != st.Head {
		return nil, errStopSync{fmt.Errorf("pull: gap: first event %d has parent %d, local upstream head is %d",
			incoming[0].Event.SeqNum, incoming[0].Event.ParentSeqNum, st.Head)}
	}
	evs := make([]syncproto.Event, len(incoming))
	for i, it := range incoming {
		evs[i] = it.Event
	}
	if err := syncproto.CheckChain(evs); err != nil {
		return nil, errStopSync{fmt.Errorf("pull: %w", err)}
	}
	return incoming, nil
}

// classify turns errors the processor cannot recover from by reconnecting
// into errStopSync, applying the backend-id policy on the way.
func (y *syncer) classify(ctx context.Context, err error) error {
	var mismatch *syncproto.BackendIDMismatchError
	if errors.As(err, &mismatch) {
		return y.backendChanged(ctx, mismatch.Expected, err)
	}
	var stop errStopSync
	if errors.As(err, &stop) {
		return err
	}
	return err
}

// pushPending pushes the synced events the server has not acknowledged yet.
func (y *syncer) pushPending(ctx context.Context, conn SyncConn) error {
	for {
		batch, backendID, err := y.nextPush(ctx)
		if err != nil || len(batch) == 0 {
			return err
		}
		var bid *string
		if backendID != "" {
			bid = &backendID
		}
		parts, err := syncproto.SplitPush(batch, y.s.storeID, y.opts.Payload, bid)
		if err != nil {
			return errStopSync{fmt.Errorf("push %s: %w", batch[0].Name, err)}
		}
		for _, part := range parts {
			pctx, span := y.s.tel.startPush(ctx, part)
			err := conn.Push(pctx, part, bid)
			endSpan(span, err)
			if err != nil {
				return err
			}
			y.s.tel.settled(part[len(part)-1].SeqNum)
			y.mu.Lock()
			y.pushedUpTo = part[len(part)-1].SeqNum
			y.mu.Unlock()
		}
	}
}

// nextPush reads the next batch to push, in wire form: the pending events
// after those the server acknowledged, and the backend to push them to.
func (y *syncer) nextPush(ctx context.Context) ([]syncproto.Event, string, error) {
	s := y.s
	y.mu.Lock()
	from := y.pushedUpTo
	y.mu.Unlock()
	if err := s.acquireWrite(ctx); err != nil {
		return nil, "", err
	}
	from = max(from, s.sync.Head)
	backendID := s.sync.BackendID
	pending, err := s.db.PendingBatch(from, y.opts.MaxPushBatch)
	s.releaseWrite()
	if err != nil {
		return nil, "", err
	}
	batch := make([]syncproto.Event, len(pending))
	for i, ev := range pending {
		g := ev.SeqNum.Global
		batch[i] = syncproto.Event{Name: ev.Name, Args: ev.Args, SeqNum: g, ParentSeqNum: g - 1,
			ClientID: ev.ClientID, SessionID: ev.SessionID}
	}
	return batch, backendID, nil
}
