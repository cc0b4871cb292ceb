package syncserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

// Storage keeps the event logs of all stores. Implementations must be safe
// for concurrent use. The server serialises the pushes it receives for one
// store, but several server processes may share one Storage (see [Watcher]),
// so Append must check the head and write in one atomic step.
//
// A store exists only once a push to it was accepted (or it was created with
// [StoreCreator.CreateStore]): reading a store that does not exist, or
// refusing a push to it, writes nothing, so clients cannot fill the storage
// with empty stores.
//
// Failures other than the documented protocol errors
// (*syncproto.ServerAheadError, *BackendIDConflictError) and ctx's errors are
// *[StorageError] values, classified where the implementation can tell.
type Storage interface {
	// BackendID returns the store's backend id. It never writes: for a
	// store that does not exist it returns the id the store will get when
	// its first push is accepted (see [DeriveBackendID]), so that a client
	// pulling an empty store keeps its cursor valid across that push. The id
	// never changes for the life of the store's data.
	BackendID(ctx context.Context, storeID string) (string, error)

	// Head returns the seqNum of the store's last event; 0 for an empty or
	// missing store.
	Head(ctx context.Context, storeID string) (int64, error)

	// Append stores batch (non-empty, already checked to form a chain) with
	// createdAt, if and only if the store's head equals
	// batch[0].ParentSeqNum (0 for a missing store, which Append then
	// creates, with the id BackendID reported, in the same atomic step).
	// Otherwise it stores nothing and returns a
	// *syncproto.ServerAheadError{MinimumExpectedNum: head, ProvidedNum:
	// batch[0].ParentSeqNum}. When Append returns nil the batch is durable.
	Append(ctx context.Context, storeID string, batch []syncproto.Event, createdAt time.Time) error

	// Read returns, in order, at most limit events with after < seqNum <=
	// upTo; none for a missing store.
	Read(ctx context.Context, storeID string, after, upTo int64, limit int) ([]StoredEvent, error)

	// Count returns the number of events with after < seqNum <= upTo; 0 for
	// a missing store.
	Count(ctx context.Context, storeID string, after, upTo int64) (int64, error)
}

// StoredEvent is an event as stored, with the time its batch was stored.
type StoredEvent struct {
	syncproto.Event
	CreatedAt time.Time
}

// Watcher is implemented by a Storage that several server processes share.
// The server calls Watch once, for its lifetime, so that live pulls learn of
// events other processes appended.
type Watcher interface {
	// Watch blocks until ctx is done, calling changed(storeID, head) after
	// another process may have appended to storeID; head is the new head, or
	// 0 if unknown. changed("", 0) means any store may have changed (for
	// example after the watch was re-established). Calls are sequential.
	Watch(ctx context.Context, changed func(storeID string, head int64)) error
}

// FormatCreatedAt renders t as the reference does (JavaScript's
// Date.prototype.toISOString): UTC, millisecond precision, "Z" suffix. It is
// [syncproto.FormatCreatedAt], the form of createdAt in pulled events.
func FormatCreatedAt(t time.Time) string {
	return syncproto.FormatCreatedAt(t)
}

// StoreLister is implemented by a Storage that can list its stores
// (sqlitestore.Store and pgstore.Store do), for tools such as the command
// line's export and inspect, the MCP server and devtools.
type StoreLister interface {
	// Stores lists the stores that exist (see [Storage]), ordered by
	// store id.
	Stores(ctx context.Context) ([]StoreInfo, error)
}

// StoreInfo summarises one store of a Storage, for tools such as devtools.
// Listings hold only stores that exist (see [Storage]).
type StoreInfo struct {
	StoreID   string    `json:"storeId"`
	BackendID string    `json:"backendId"`
	Head      int64     `json:"head"`
	CreatedAt time.Time `json:"createdAt"`
}

// StoreCreator is implemented by a Storage that can create a store with a
// given backend id. Moving a store to another storage (livestore export and
// import) keeps its backend id this way, so its clients keep syncing instead
// of treating the new server as a different one.
type StoreCreator interface {
	// CreateStore creates storeID, empty, with backendID. It does nothing
	// if the store exists with that backend id, and returns a
	// *BackendIDConflictError if it exists with another one.
	CreateStore(ctx context.Context, storeID, backendID string) error
}

// BackendIDConflictError is the error of [StoreCreator.CreateStore] for a
// store that exists with a different backend id.
type BackendIDConflictError struct {
	StoreID  string
	Existing string // the store's backend id
	Wanted   string // the one asked for
}

func (e *BackendIDConflictError) Error() string {
	return "store " + e.StoreID + " exists with backend id " + e.Existing + ", not " + e.Wanted
}

// StorageErrorKind classifies a storage failure, so that clients, /health
// and logs can say what is wrong without exposing the storage's messages.
type StorageErrorKind int

// The kinds of [StorageError].
const (
	// StorageUnavailable: the storage could not be reached or failed in
	// another way (the default).
	StorageUnavailable StorageErrorKind = iota
	// StorageFull: the disk, or a configured size limit, is full.
	StorageFull
	// StorageReadOnly: the storage refuses writes (read-only file,
	// directory or database).
	StorageReadOnly
)

func (k StorageErrorKind) String() string {
	switch k {
	case StorageFull:
		return "full"
	case StorageReadOnly:
		return "read-only"
	default:
		return "unavailable"
	}
}

// StorageError is a classified storage failure. Storage implementations
// wrap the errors they can classify in it; the server treats any other
// storage error as [StorageUnavailable].
type StorageError struct {
	Kind StorageErrorKind
	Op   string // what was being done, e.g. "append to store todos"
	Err  error
}

func (e *StorageError) Error() string {
	return fmt.Sprintf("%s: storage %s: %v", e.Op, e.Kind, e.Err)
}

func (e *StorageError) Unwrap() error { return e.Err }

// WrapStorageError is for Storage implementations: it wraps a failure of
// op in a *[StorageError] of the kind kindOf tells. nil stays nil, an error
// that already is a *StorageError is returned as it is, and context errors,
// which are not failures of the storage, keep their identity (wrapped with
// op).
func WrapStorageError(op string, err error, kindOf func(error) StorageErrorKind) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	var se *StorageError
	if errors.As(err, &se) {
		return err
	}
	return &StorageError{Kind: kindOf(err), Op: op, Err: err}
}

// StorageErrorKindOf returns the kind of err: that of the [StorageError] it
// wraps, else [StorageUnavailable].
func StorageErrorKindOf(err error) StorageErrorKind {
	var se *StorageError
	if errors.As(err, &se) {
		return se.Kind
	}
	return StorageUnavailable
}
