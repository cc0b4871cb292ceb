package livestore

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/livestore-go/livestore/internal/flock"
)

// ErrLocked is matched (errors.Is) by the error Open returns when another
// process, or another Store in this process, holds the directory.
var ErrLocked = errors.New("store directory is locked")

// LockedError tells who holds a store directory.
type LockedError struct {
	Dir    string
	Holder string // as the holder wrote it: pid, host, since when
}

func (e *LockedError) Error() string {
	h := e.Holder
	if h == "" {
		h = "unknown holder"
	}
	return fmt.Sprintf("store directory %s is locked by %s", e.Dir, h)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// dirLock is the exclusive lock on <dir>/LOCK that makes one Store the
// owner of a directory.
type dirLock struct{ l *flock.Lock }

func lockDir(dir string) (*dirLock, error) {
	l, err := flock.Acquire(filepath.Join(dir, "LOCK"))
	var held *flock.HeldError
	if errors.As(err, &held) {
		return nil, &LockedError{Dir: dir, Holder: held.Holder}
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return &dirLock{l: l}, nil
}

func (l *dirLock) unlock() error {
	if l == nil {
		return nil
	}
	return l.l.Release()
}
