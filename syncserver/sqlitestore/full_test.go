package sqlitestore_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
	"github.com/livestore-go/livestore/syncserver/storagetest"
)

// bulky returns n chained events with about 200 bytes of args each.
func bulky(after int64, n int) []syncproto.Event {
	batch := storagetest.Chain(after, n, "c")
	pad := strings.Repeat("x", 200)
	for i := range batch {
		batch[i].Args = []byte(fmt.Sprintf(`{"n":%d,"pad":%q}`, batch[i].SeqNum, pad))
	}
	return batch
}

// Past MaxBytes appends fail with StorageFull, store nothing, and what was
// acknowledged before stays; without the bound the file grows again.
func TestMaxBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sync.db")
	s, err := sqlitestore.Open(path, sqlitestore.Options{MaxBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var head int64
	var full error
	for range 1000 {
		if full = s.Append(ctx, "big", bulky(head, 20), time.Now()); full != nil {
			break
		}
		head += 20
	}
	storageKind(t, full, syncserver.StorageFull)
	if !strings.Contains(full.Error(), `append to store "big": storage full`) {
		t.Errorf("error %q does not say what failed", full)
	}
	if head < 256<<10/1000 || head > 256<<10/200 {
		t.Errorf("a 256 KiB bound took %d events of 200 bytes", head)
	}
	if got, err := s.Head(ctx, "big"); err != nil || got != head {
		t.Fatalf("head = %d, %v; want %d, the last acknowledged", got, err, head)
	}
	if n, err := s.Count(ctx, "big", 0, 1<<40); err != nil || n != head {
		t.Fatalf("count = %d, %v; want %d", n, err, head)
	}
	// A new store cannot be created either, and is not half created.
	storageKind(t, s.Append(ctx, "other", bulky(0, 20), time.Now()), syncserver.StorageFull)
	if stores, _ := s.Stores(ctx); len(stores) != 1 {
		t.Fatalf("stores after a full append = %+v", stores)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, path, sqlitestore.Options{})
	if err := s.Append(ctx, "big", bulky(head, 20), time.Now()); err != nil {
		t.Fatalf("append without the bound: %v", err)
	}
}

// Appends of different stores share transactions; when one of them fills
// the database, none that was acknowledged is lost and none that failed is
// stored.
func TestMaxBytesConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sync.db")
	s, err := sqlitestore.Open(path, sqlitestore.Options{MaxBytes: 512 << 10})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const writers = 8
	acked := make([]int64, writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			store := fmt.Sprintf("w%d", w)
			for {
				err := s.Append(ctx, store, bulky(acked[w], 3+w), time.Now())
				if err != nil {
					errs <- err
					return
				}
				acked[w] += int64(3 + w)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if syncserver.StorageErrorKindOf(err) != syncserver.StorageFull {
			t.Errorf("writer stopped by %v, want a StorageFull error", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, sqlitestore.Options{})
	for w := range writers {
		store := fmt.Sprintf("w%d", w)
		head, err := s.Head(ctx, store)
		if err != nil || head != acked[w] {
			t.Errorf("store %s: head %d, %v; %d acknowledged", store, head, err, acked[w])
		}
		if n, _ := s.Count(ctx, store, 0, 1<<40); n != acked[w] {
			t.Errorf("store %s: %d events, %d acknowledged", store, n, acked[w])
		}
	}
}

// A really full disk (a small tmpfs) fails appends with StorageFull, and
// what was acknowledged before survives.
func TestDiskFull(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=512k"); err != nil {
		t.Fatalf("mount a tmpfs (this test needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	path := filepath.Join(dir, "sync.db")
	s, err := sqlitestore.Open(path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var head int64
	var full error
	for range 1000 {
		if full = s.Append(ctx, "big", bulky(head, 20), time.Now()); full != nil {
			break
		}
		head += 20
	}
	storageKind(t, full, syncserver.StorageFull)
	if head == 0 {
		t.Fatal("nothing fitted on the disk")
	}
	if got, err := s.Head(ctx, "big"); err != nil || got != head {
		t.Fatalf("head = %d, %v; want %d, the last acknowledged", got, err, head)
	}
	if n, err := s.Count(ctx, "big", 0, 1<<40); err != nil || n != head {
		t.Fatalf("count = %d, %v; want %d", n, err, head)
	}
	s.Close()
	r, err := sqlitestore.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, err := r.Count(ctx, "big", 0, 1<<40); err != nil || n != head {
		t.Fatalf("count after reopening = %d, %v; want %d", n, err, head)
	}
}
