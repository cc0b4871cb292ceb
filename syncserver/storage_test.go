package syncserver_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/livestore-go/livestore/syncserver"
)

func TestWrapStorageError(t *testing.T) {
	full := func(error) syncserver.StorageErrorKind { return syncserver.StorageFull }
	if err := syncserver.WrapStorageError("x: read", nil, full); err != nil {
		t.Fatalf("nil wrapped as %v", err)
	}
	disk := errors.New("no space left on device")
	err := syncserver.WrapStorageError("x: append", disk, full)
	var se *syncserver.StorageError
	if !errors.As(err, &se) || se.Kind != syncserver.StorageFull || se.Op != "x: append" || !errors.Is(err, disk) {
		t.Fatalf("wrapped as %#v", err)
	}
	if again := syncserver.WrapStorageError("x: outer", fmt.Errorf("tx: %w", err), full); again.Error() != "tx: "+err.Error() {
		t.Fatalf("a StorageError was wrapped again: %v", again)
	}
	for _, ctxErr := range []error{context.Canceled, context.DeadlineExceeded} {
		err := syncserver.WrapStorageError("x: read", ctxErr, full)
		if !errors.Is(err, ctxErr) || errors.As(err, &se) || err.Error() != "x: read: "+ctxErr.Error() {
			t.Fatalf("%v wrapped as %#v", ctxErr, err)
		}
	}
}
