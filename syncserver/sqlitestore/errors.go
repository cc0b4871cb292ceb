package sqlitestore

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/livestore-go/livestore/internal/sqlite"
	"github.com/livestore-go/livestore/syncserver"
)

// ErrClosed is matched (errors.Is) by the errors of calls on a closed Store.
var ErrClosed = errors.New("sqlitestore: store is closed")

// ErrReadOnly is matched (errors.Is) by the errors of writes to a Store
// opened with [OpenReadOnly]; they are *syncserver.StorageError values of
// kind StorageReadOnly.
var ErrReadOnly = errors.New("sqlitestore: store was opened read-only")

// ErrNotStorage is matched (errors.Is) by the error of [OpenReadOnly] for a
// file that is not a sync server's database.
var ErrNotStorage = errors.New("not a livestore sync storage")

// ErrLocked is matched (errors.Is) by the error of [Open] for a file another
// owner holds.
var ErrLocked = errors.New("sqlitestore: database is in use")

// LockedError is the error of [Open] for a file another process, or another
// Open in this process, holds.
type LockedError struct {
	Path   string // the database file
	Holder string // as the holder wrote it: "pid N on HOST since TIME"; may be empty
}

func (e *LockedError) Error() string {
	h := e.Holder
	if h == "" {
		h = "an unknown process"
	}
	return fmt.Sprintf("sqlitestore: %s is in use by %s (lock %s.lock); one server owns a database file, stop the other one or use another data directory",
		e.Path, h, e.Path)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// storageErr wraps a failure of op in a *syncserver.StorageError with the
// kind its cause tells (see syncserver.WrapStorageError).
func storageErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return syncserver.WrapStorageError("sqlitestore: "+op, err, kindOf)
}

func kindOf(err error) syncserver.StorageErrorKind {
	switch {
	case sqlite.IsFull(err), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return syncserver.StorageFull
	case sqlite.IsReadOnly(err), errors.Is(err, ErrReadOnly), errors.Is(err, syscall.EROFS),
		errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return syncserver.StorageReadOnly
	}
	return syncserver.StorageUnavailable
}
