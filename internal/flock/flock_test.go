package flock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAcquire(t *testing.T) {
	path := filepath.Join(t.TempDir(), "LOCK")
	l, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.HasPrefix(string(b), fmt.Sprintf("pid %d on ", os.Getpid())) {
		t.Fatalf("lock file holds %q, %v", b, err)
	}
	// A second open file, even in this process, is refused with the holder.
	_, err = Acquire(path)
	var held *HeldError
	if !errors.As(err, &held) || held.Path != path || held.Holder != strings.TrimSpace(string(b)) {
		t.Fatalf("second Acquire: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Fatalf("released lock file still holds %q", b)
	}
	again, err := Acquire(path)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	again.Release()
}

func TestAcquireMissingDir(t *testing.T) {
	if _, err := Acquire(filepath.Join(t.TempDir(), "no", "LOCK")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Acquire in a missing directory: %v", err)
	}
}
