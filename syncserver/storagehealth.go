package syncserver

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

// storageHealth remembers whether the storage is failing, for /health.
//
// Reads and writes are tracked apart: a full disk or a read-only file still
// serves reads, so a successful read must not hide that pushes fail. A
// failed read is cleared by any later success, a failed write only by a
// successful write.
type storageHealth struct {
	failing atomic.Bool // fast path: nothing to clear while the storage is healthy

	mu    sync.Mutex
	read  *storageFailure // the latest failure of a read, if no success since
	write *storageFailure // the latest failure of a write, if no write succeeded since
}

type storageFailure struct {
	kind  StorageErrorKind
	since time.Time // first failure of this kind in the current run of failures
}

// observe records the outcome of one storage operation. Cancellations (the
// client went away, the server is closing) say nothing about the storage.
func (h *storageHealth) observe(ctx context.Context, err error, write bool) {
	if err == nil {
		if !h.failing.Load() {
			return
		}
		h.mu.Lock()
		h.read = nil
		if write {
			h.write = nil
		}
		h.failing.Store(h.write != nil)
		h.mu.Unlock()
		return
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	kind := StorageErrorKindOf(err)
	h.mu.Lock()
	defer h.mu.Unlock()
	slot := &h.read
	if write {
		slot = &h.write
	}
	if *slot == nil || (*slot).kind != kind {
		*slot = &storageFailure{kind: kind, since: time.Now()}
	}
	h.failing.Store(true)
}

// state returns the failure /health reports: a failing write before a
// failing read, since writes are what clients lose.
func (h *storageHealth) state() (storageFailure, bool) {
	if !h.failing.Load() {
		return storageFailure{}, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.write != nil:
		return *h.write, true
	case h.read != nil:
		return *h.read, true
	}
	return storageFailure{}, false
}

// storageMessage is what clients are told of a storage failure of kind k:
// its class, never the storage's own message.
func storageMessage(k StorageErrorKind) string {
	switch k {
	case StorageFull:
		return "storage full: the server cannot store events now"
	case StorageReadOnly:
		return "storage read-only: the server cannot store events now"
	default:
		return "storage unavailable"
	}
}

// storageFailed logs a failed storage operation (what names it) with the
// underlying error, records it for /health, and returns the error for the
// client. An *syncproto.UnknownError is not a storage failure: it is
// returned as it is, after logging.
func (s *Server) storageFailed(ctx context.Context, log *slog.Logger, what string, err error, write bool) *syncproto.UnknownError {
	var ue *syncproto.UnknownError
	if errors.As(err, &ue) {
		log.Error(what, "err", err)
		return ue
	}
	s.health.observe(ctx, err, write)
	kind := StorageErrorKindOf(err)
	log.Error(what, "storage", kind.String(), "err", err)
	return &syncproto.UnknownError{Message: storageMessage(kind)}
}

// storageDone records the outcome of a storage operation that the caller
// handles itself. A ServerAheadError is a successful check, not a failure.
func (s *Server) storageDone(ctx context.Context, err error, write bool) {
	var ahead *syncproto.ServerAheadError
	if errors.As(err, &ahead) {
		err = nil
	}
	s.health.observe(ctx, err, write)
}
