// Package registry is a generic, reference-counted cache of values that are
// expensive to open and must be closed: one shared value per key, loaded on
// first use and closed once nobody has needed it for a while.
//
// It backs livestore.Registry, which shares one *Store per storeId among all
// callers of a process, but it knows nothing about stores: a [Registry] is
// built from a load function and a close function.
//
// # Lifecycle of an entry
//
// An entry is created by the first [Registry.Get], [Registry.Retain] or
// [Registry.Preload] of its key. A single load runs for it in a goroutine
// owned by the registry; every caller that asks for the key meanwhile waits
// for that same load. Each Get or Retain is a hold on the entry until its
// release function is called.
//
// An entry with no holds is unused. It stays cached for its unused cache time
// (see [Options]) and is then disposed: if its load is still running, the
// load's context is cancelled and a value that arrives anyway is closed; if it
// has a value, the value is closed. A new hold taken before that time cancels
// the disposal. A Get or Retain that arrives while a disposal is closing the
// old value starts a new entry whose load begins only after the old value is
// closed, so for one key at most one value is loading or open at any time,
// and a closed value is never handed out.
//
// A failed load is not cached: every caller waiting for it receives its
// error, the entry is dropped, and the next Get loads again.
//
// [Registry.Close] aborts loads in progress, closes every value (held or not)
// and waits for the registry's goroutines.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"
)

// ErrClosed is returned by [Registry.Get] after [Registry.Close] has been
// called (including to callers that were waiting for a load when Close ran),
// and by every call of Close after the first.
var ErrClosed = errors.New("registry: closed")

const (
	// Forever, used as an unused cache time, disables disposal: an entry
	// stays cached until [Registry.Close].
	Forever time.Duration = math.MaxInt64

	// DefaultUnusedCacheTime is the unused cache time used when neither
	// [Options] nor [Config] set one.
	DefaultUnusedCacheTime = time.Minute
)

// LoadFunc opens the value for key. ctx belongs to the registry, not to any
// caller: it is cancelled when the entry is disposed before the load
// finished, or when the registry is closed. A LoadFunc that returns a value
// after ctx was cancelled is fine; that value is closed and not handed out.
// opts are the Options of the call that created the entry (see [Options]).
// A panic in a LoadFunc is recovered and reported to the waiters as an error.
type LoadFunc[K comparable, V any] func(ctx context.Context, key K, opts Options) (V, error)

// CloseFunc closes a value returned by a LoadFunc. It is called exactly once
// for every value a load returned without error. ctx is cancelled only when
// the ctx given to [Registry.Close] ends before Close has finished waiting.
// A panic in a CloseFunc is recovered and treated as its error.
type CloseFunc[V any] func(ctx context.Context, v V) error

// Options are the per-key settings of an entry. They are read when the entry
// is created: by the first Get, Retain or Preload of the key, or the first
// since its previous entry was disposed or failed to load. Options passed
// while an entry exists are ignored.
type Options struct {
	// UnusedCacheTime is how long an entry with no holds stays cached before
	// it is disposed. Zero means Config.DefaultUnusedCacheTime; [Forever]
	// disables disposal; a negative value disposes the entry as soon as a
	// zero-length timer fires.
	UnusedCacheTime time.Duration
	// Arg is passed to the LoadFunc of the entry these Options create, and
	// only to it: what a caller asks to be loaded travels with the entry
	// it creates, never through state shared with later callers.
	Arg any
}

// Config configures a [Registry]. The zero value is ready to use.
type Config struct {
	// DefaultUnusedCacheTime applies to entries whose Options leave
	// UnusedCacheTime zero. Zero means [DefaultUnusedCacheTime].
	DefaultUnusedCacheTime time.Duration

	// Logger receives errors that no caller can receive: a CloseFunc failing
	// during a disposal before Close. Nil discards them.
	Logger *slog.Logger
}

// Registry caches one value per key; see the package documentation for the
// lifecycle of an entry. Create one with [New]. All methods are safe for
// concurrent use.
type Registry[K comparable, V any] struct {
	load       LoadFunc[K, V]
	close      CloseFunc[V]
	log        *slog.Logger
	defaultTTL time.Duration

	// loadCtx is the parent of every load's ctx; cancelled by Close.
	loadCtx     context.Context
	cancelLoads context.CancelFunc
	// closeCtx is passed to every CloseFunc; cancelled when Close gives up.
	closeCtx     context.Context
	cancelCloses context.CancelFunc

	mu        sync.Mutex
	entries   map[K]*entry[K, V] // the current entry of each key
	disposing map[K]*entry[K, V] // the newest entry of each key being disposed
	running   int                // entry goroutines not yet finished
	closed    bool
	stopped   chan struct{} // closed once closed and running == 0
	closeErrs []error       // CloseFunc errors seen after Close began

	// waitHook, when set (by tests), is called each time a Get starts
	// waiting for a load.
	waitHook func()
}

// New returns a registry that opens values with load and closes them with
// close. A nil close means values need no closing. Call [Registry.Close] to
// release everything the registry holds.
func New[K comparable, V any](load LoadFunc[K, V], close CloseFunc[V], cfg Config) *Registry[K, V] {
	r := &Registry[K, V]{
		load:       load,
		close:      close,
		log:        cfg.Logger,
		defaultTTL: cfg.DefaultUnusedCacheTime,
		entries:    make(map[K]*entry[K, V]),
		disposing:  make(map[K]*entry[K, V]),
		stopped:    make(chan struct{}),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.defaultTTL == 0 {
		r.defaultTTL = DefaultUnusedCacheTime
	}
	r.loadCtx, r.cancelLoads = context.WithCancel(context.Background())
	r.closeCtx, r.cancelCloses = context.WithCancel(context.Background())
	return r
}

// Get returns the value for key, loading it if needed, and holds the entry
// until release is called. Concurrent Gets of one key share one load.
//
// If the load fails, Get returns its error unchanged, as does every other Get
// waiting for that load; the failure is not cached. If ctx ends first, only
// this Get returns ctx.Err(): the load goes on for the other holders, and if
// none remain the entry is unused and is disposed after its unused cache
// time like any other (aborting the load if it is still running then).
//
// release is never nil, may be called any number of times (only the first
// call counts), and is a no-op when err is not nil. Do not use the value after
// releasing it.
func (r *Registry[K, V]) Get(ctx context.Context, key K, opts Options) (v V, release func(), err error) {
	var zero V
	if err := ctx.Err(); err != nil {
		return zero, noop, err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return zero, noop, ErrClosed
	}
	e := r.acquireLocked(key, opts)
	if e.ready {
		v := e.val
		r.mu.Unlock()
		return v, r.releaser(e), nil
	}
	hook := r.waitHook
	r.mu.Unlock()
	if hook != nil {
		hook()
	}

	select {
	case <-e.loaded:
	case <-ctx.Done():
		r.releaser(e)()
		return zero, noop, ctx.Err()
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case e.err != nil:
		r.releaseLocked(e)
		return zero, noop, e.err
	case e.detached: // only Close detaches an entry that has holders
		r.releaseLocked(e)
		return zero, noop, ErrClosed
	}
	return e.val, r.releaser(e), nil
}

// Retain holds the entry for key until release is called, starting its load
// in the background if the key has no entry. It never blocks on the load.
// If that load fails the hold ends with it, since failures are not cached; a
// later Get or Retain loads again. After Close, Retain does nothing.
//
// release may be called any number of times; only the first call counts.
func (r *Registry[K, V]) Retain(key K, opts Options) (release func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return noop
	}
	return r.releaser(r.acquireLocked(key, opts))
}

// Preload loads the value for key if it is not cached and returns when the
// load has finished or ctx has ended. It reports no error: a failed load is
// not cached and a later Get tries again. Preload takes no lasting hold: if
// nobody holds the entry afterwards, it is disposed after its unused cache
// time.
func (r *Registry[K, V]) Preload(ctx context.Context, key K, opts Options) {
	_, release, _ := r.Get(ctx, key, opts)
	release()
}

// Close cancels the context of every load in progress (their waiters receive
// [ErrClosed]), closes every loaded value, including values still held, and
// waits until every goroutine of the registry has returned. It returns the
// errors of the CloseFuncs that ran after Close began, joined.
//
// If ctx ends before that, Close cancels the ctx given to the CloseFuncs still
// running and returns an error wrapping ctx.Err() without waiting further;
// those goroutines finish on their own. Every call after the first returns
// ErrClosed.
func (r *Registry[K, V]) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.closed = true
	for _, e := range r.entries {
		r.disposeLocked(e)
	}
	if r.running == 0 {
		close(r.stopped)
	}
	r.mu.Unlock()
	r.cancelLoads()

	select {
	case <-r.stopped:
	case <-ctx.Done():
		r.cancelCloses()
		select {
		case <-r.stopped: // finished anyway: report success
		default:
			return fmt.Errorf("registry: close: %w", ctx.Err())
		}
	}
	r.cancelCloses()

	r.mu.Lock()
	defer r.mu.Unlock()
	errs := r.closeErrs
	r.closeErrs = nil
	return errors.Join(errs...)
}

func noop() {}

// releaser returns the release function of one hold on e.
func (r *Registry[K, V]) releaser(e *entry[K, V]) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.releaseLocked(e)
		})
	}
}
