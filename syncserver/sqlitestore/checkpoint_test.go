package sqlitestore_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncserver/sqlitestore"
	"github.com/livestore-go/livestore/syncserver/storagetest"
)

// appendBytes appends batches of 100 events with args of about 1 KiB to
// store until about n bytes were appended, and returns the head.
func appendBytes(t *testing.T, s *sqlitestore.Store, store string, head int64, n int) int64 {
	t.Helper()
	args := json.RawMessage(`{"p":"` + strings.Repeat("x", 1000) + `"}`)
	for written := 0; written < n; written += 100 * len(args) {
		batch := storagetest.Chain(head, 100, "c")
		for i := range batch {
			batch[i].Args = args
		}
		if err := s.Append(context.Background(), store, batch, time.Now()); err != nil {
			t.Fatal(err)
		}
		head += 100
	}
	return head
}

// Commits do not copy the log into the database file themselves: the
// writer wakes the checkpointer once it has written about CheckpointBytes.
func TestWriterWakesCheckpointer(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	head := appendBytes(t, s, "a", 0, sqlitestore.CheckpointBytes/2)
	if n := s.CheckpointWakes(); n != 0 {
		t.Fatalf("checkpointer woken %d times after half of CheckpointBytes, want 0", n)
	}
	appendBytes(t, s, "a", head, sqlitestore.CheckpointBytes)
	if n := s.CheckpointWakes(); n != 1 {
		t.Fatalf("checkpointer woken %d times after 1.5 CheckpointBytes, want 1", n)
	}
}

// The checkpointer copies the log while the writer goes on; the writer
// copies what it committed meanwhile after its next transaction, and the
// log starts again from its beginning at the one after, so that it does
// not grow with the data.
func TestCheckpointRestartsLog(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	head := appendBytes(t, s, "a", 0, sqlitestore.CheckpointBytes/4)
	if err := s.CopyLog(); err != nil {
		t.Fatal(err)
	}
	logFrames, copied, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if logFrames < 100 || copied != logFrames {
		t.Fatalf("checkpointer copied %d of %d frames, want all of at least 100", copied, logFrames)
	}
	head = appendBytes(t, s, "a", head, 1) // the writer copies this one after commit
	head = appendBytes(t, s, "a", head, 1) // and this one starts the log again
	again, _, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if again >= logFrames/4 {
		t.Fatalf("log has %d frames after two more appends, want it restarted (it had %d)", again, logFrames)
	}
	events, err := s.Read(context.Background(), "a", 0, head, 10000)
	if err != nil || len(events) != int(head) {
		t.Fatalf("read %d events (%v), want %d", len(events), err, head)
	}
}
