package livestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/livestore-go/livestore/internal/registry"
)

// CacheForever, as an unused cache time, keeps a store open until the
// registry closes.
const CacheForever time.Duration = registry.Forever

// RegistryOptions are the defaults of a Registry, for every store it opens.
type RegistryOptions struct {
	// Schema is the schema of every store unless StoreOptions names another.
	Schema *Schema
	// BaseDir holds one client directory per store, BaseDir/<storeId>.
	// Empty means in-memory stores.
	BaseDir string
	// UnusedCacheTime is how long a store nobody holds stays open. Zero means
	// one minute; CacheForever keeps stores until Close.
	UnusedCacheTime time.Duration
	// Logger is passed to every store and receives close errors of disposed
	// stores. Nil is silent.
	Logger *slog.Logger
	// Configure, when set, may adjust the Options of each store before it
	// opens (e.g. to attach a sync backend).
	Configure func(storeID string, opts *Options)
}

// StoreOptions identify a store in a Registry and may override the
// registry's defaults for it.
type StoreOptions struct {
	// StoreID is required; the registry keeps one store per id.
	StoreID string
	// Schema overrides RegistryOptions.Schema.
	Schema *Schema
	// UnusedCacheTime overrides RegistryOptions.UnusedCacheTime.
	UnusedCacheTime time.Duration
}

// Registry shares one open Store per storeId among all its callers: a store
// is opened by the first Get (concurrent Gets share that one Open), kept open
// while anybody holds it, and closed once it has been unused for its unused
// cache time, unless it is retained again before. A failed Open is reported
// to every caller waiting for it and is not cached: the next Get tries again.
// A store handed out is never closed while held.
//
// Stores are keyed by storeId alone. The options that open a store are the
// ones of the call that started its Open (the registry's defaults, overridden
// by that call's StoreOptions); options of later calls while it is open are
// ignored, and take effect when the store is opened again after disposal.
type Registry struct {
	opts  RegistryOptions
	inner *registry.Registry[string, *Store]
}

// NewRegistry returns a registry with the given defaults.
func NewRegistry(opts RegistryOptions) *Registry {
	r := &Registry{opts: opts}
	cfg := registry.Config{DefaultUnusedCacheTime: opts.UnusedCacheTime, Logger: opts.Logger}
	r.inner = registry.New(r.load, func(_ context.Context, s *Store) error { return s.Close() }, cfg)
	return r
}

// load opens a store with the StoreOptions of the call that created its
// registry entry (carried as the entry's Arg).
func (r *Registry) load(ctx context.Context, storeID string, ro registry.Options) (*Store, error) {
	so, _ := ro.Arg.(StoreOptions)
	schema := so.Schema
	if schema == nil {
		schema = r.opts.Schema
	}
	if schema == nil {
		return nil, fmt.Errorf("livestore: registry: store %q: no schema", storeID)
	}
	o := Options{StoreID: storeID, Logger: r.opts.Logger}
	if r.opts.BaseDir != "" {
		o.Dir = filepath.Join(r.opts.BaseDir, storeID)
	}
	if r.opts.Configure != nil {
		r.opts.Configure(storeID, &o)
	}
	return Open(ctx, schema, o)
}

func (r *Registry) prepare(so StoreOptions) (registry.Options, error) {
	if err := validStoreID(so.StoreID); err != nil {
		return registry.Options{}, err
	}
	return registry.Options{UnusedCacheTime: so.UnusedCacheTime, Arg: so}, nil
}

// validStoreID keeps ids usable as directory names.
func validStoreID(id string) error {
	if id == "" || len(id) > 128 || id == "." || id == ".." {
		return fmt.Errorf("livestore: invalid store id %q", id)
	}
	for _, c := range id {
		if !(c == '-' || c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fmt.Errorf("livestore: invalid store id %q: only letters, digits, '-', '_' and '.' are allowed", id)
		}
	}
	return nil
}

// Get returns the store so.StoreID, opening it if needed, and a release
// function to call when done with it (idempotent). The store stays open at
// least until release is called.
func (r *Registry) Get(ctx context.Context, so StoreOptions) (*Store, func(), error) {
	ro, err := r.prepare(so)
	if err != nil {
		return nil, func() {}, err
	}
	s, release, err := r.inner.Get(ctx, so.StoreID, ro)
	if errors.Is(err, registry.ErrClosed) {
		err = ErrRegistryClosed
	}
	return s, release, err
}

// Retain keeps store so.StoreID open (opening it in the background) until
// the returned function is called.
func (r *Registry) Retain(so StoreOptions) (release func()) {
	ro, err := r.prepare(so)
	if err != nil {
		return func() {}
	}
	return r.inner.Retain(so.StoreID, ro)
}

// Preload opens store so.StoreID ahead of use and returns when it is open or
// failed to open, or ctx is done. It reports no error: a failed preload is
// retried by the next Get. A preloaded store nobody takes is closed after its
// unused cache time.
func (r *Registry) Preload(ctx context.Context, so StoreOptions) {
	ro, err := r.prepare(so)
	if err != nil {
		return
	}
	r.inner.Preload(ctx, so.StoreID, ro)
}

// Close closes every store, including held ones, and aborts opens in
// progress. Later calls fail with ErrRegistryClosed.
func (r *Registry) Close(ctx context.Context) error {
	err := r.inner.Close(ctx)
	if errors.Is(err, registry.ErrClosed) {
		return ErrRegistryClosed
	}
	return err
}

// ErrRegistryClosed is returned by a closed Registry.
var ErrRegistryClosed = errors.New("livestore: registry is closed")
