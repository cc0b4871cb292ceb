// Package flock takes exclusive advisory locks (flock(2)) on lock files, so
// that one process at a time owns a directory or database. The kernel drops
// a lock when its holder exits, however it exits, so a crash never leaves a
// stale lock. The holder writes who it is (pid, host, since when) into the
// file, for the error the next process gets.
//
// Locks belong to open files, not to processes: a second Acquire of the same
// path fails even within one process. The locks are advisory and between
// processes only: they keep out a second owner of a directory, not readers,
// and they are no substitute for a mutex between goroutines.
package flock

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// HeldError is the error of [Acquire] when another open file holds the lock.
type HeldError struct {
	Path   string // the lock file
	Holder string // as the holder wrote it, e.g. "pid 42 on host since 2026-01-02T03:04:05Z"; may be empty
}

func (e *HeldError) Error() string {
	h := e.Holder
	if h == "" {
		h = "an unknown holder"
	}
	return fmt.Sprintf("%s is held by %s", e.Path, h)
}

// Lock is a held lock; Release it when done.
type Lock struct {
	f    *os.File
	path string
}

// Acquire takes the lock on path, creating the file if needed. It never
// waits: when another open file holds the lock it returns a *HeldError.
func Acquire(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &HeldError{Path: path, Holder: strings.TrimSpace(string(holder))}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	host, _ := os.Hostname()
	info := fmt.Sprintf("pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	// The holder line is informative only; a lock whose line could not be
	// written still excludes everyone else.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(info), 0)
	}
	return &Lock{f: f, path: path}, nil
}

// Path is the lock file's path.
func (l *Lock) Path() string { return l.path }

// Release clears the holder line and drops the lock. The file stays, so that
// a process waiting to open it never races with its removal. Release is a
// no-op on a nil or released Lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	// Closing the file drops the lock; the explicit unlock only makes the
	// order visible.
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("release lock %s: %w", l.path, err)
	}
	return nil
}
