package livestore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
)

func TestClosedStore(t *testing.T) {
	a := newTodoApp(t)
	s := openStore(t, a.schema, t.TempDir())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Commit(ctx, a.created.New(todoCreated{ID: "x"})); !errors.Is(err, livestore.ErrStoreClosed) {
		t.Fatalf("commit err = %v", err)
	}
	if _, err := livestore.Query[todo](ctx, s, a.todos.Select()); !errors.Is(err, livestore.ErrStoreClosed) {
		t.Fatalf("query err = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestDirectoryLock(t *testing.T) {
	a := newTodoApp(t)
	dir := t.TempDir()
	s := openStore(t, a.schema, dir)
	_, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: dir})
	var le *livestore.LockedError
	if !errors.Is(err, livestore.ErrLocked) || !errors.As(err, &le) || !strings.Contains(le.Holder, "pid ") {
		t.Fatalf("second open err = %v", err)
	}
	s.Close()
	s2, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: dir})
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	s2.Close()
}

func TestForeignAndCorruptFiles(t *testing.T) {
	a := newTodoApp(t)
	ctx := context.Background()

	garbage := t.TempDir()
	os.WriteFile(filepath.Join(garbage, livestore.DBFileName), []byte(strings.Repeat("not a database ", 100)), 0o644)
	if _, err := livestore.Open(ctx, a.schema, livestore.Options{Dir: garbage}); !errors.Is(err, livestore.ErrNotAStore) {
		t.Fatalf("garbage: err = %v", err)
	}

	foreign := t.TempDir()
	other := newTodoApp(t)
	_ = other
	// A SQLite database of some other program.
	writeForeignDB(t, filepath.Join(foreign, livestore.DBFileName))
	if _, err := livestore.Open(ctx, a.schema, livestore.Options{Dir: foreign}); !errors.Is(err, livestore.ErrNotAStore) {
		t.Fatalf("foreign: err = %v", err)
	}
}

func TestClientIDPersists(t *testing.T) {
	a := newTodoApp(t)
	dir := t.TempDir()
	s := openStore(t, a.schema, dir)
	id, sess := s.ClientID(), s.SessionID()
	if len(id) != 6 || len(sess) != 6 {
		t.Fatalf("ids %q %q", id, sess)
	}
	s.Close()
	s2 := openStore(t, a.schema, dir)
	if s2.ClientID() != id {
		t.Fatalf("client id %q → %q", id, s2.ClientID())
	}
	if s2.SessionID() == sess {
		t.Fatal("session id reused")
	}
}

func TestRematerializeOnTableChange(t *testing.T) {
	a := newTodoApp(t)
	dir := t.TempDir()
	s := openStore(t, a.schema, dir)
	for i := 0; i < 50; i++ {
		id := string(rune('a'+i%26)) + string(rune('a'+i/26))
		mustCommit(t, s, a.created.New(todoCreated{ID: id, Text: "t" + id}))
		if i%3 == 0 {
			mustCommit(t, s, a.completed.New(todoID{ID: id}))
		}
		if i%7 == 0 {
			mustCommit(t, s, a.deleted.New(todoDeleted{ID: id, DeletedAt: time.Date(2024, 1, 2, 3, 4, 5, 6e6, time.UTC)}))
		}
	}
	mustCommit(t, s, a.ui.Set("main", map[string]any{"filter": "active"}))
	before := dump(t, s)
	s.Close()

	// The same schema plus a column: state is rebuilt on Open.
	b := newTodoApp(t, livestore.Integer("priority").Default(0))
	var calls, lastDone, lastTotal int64
	s2, err := livestore.Open(context.Background(), b.schema, livestore.Options{Dir: dir, OnRematerialize: func(done, total int64) {
		calls++
		lastDone, lastTotal = done, total
	}})
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || lastDone != lastTotal || lastTotal == 0 {
		t.Fatalf("progress: calls=%d done=%d total=%d", calls, lastDone, lastTotal)
	}
	after := dump(t, s2)
	if after == before {
		t.Fatal("dump did not change with the new column")
	}
	s2.Close()

	// Back to the old schema: the rebuilt state equals the original byte for byte.
	s3, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if got := dump(t, s3); got != before {
		t.Fatalf("state after rebuild differs:\n--- before\n%s\n--- after\n%s", before, got)
	}
	// An explicit rematerialization is a no-op on equal state.
	if err := s3.Rematerialize(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, s3); got != before {
		t.Fatal("Rematerialize changed state")
	}
}
