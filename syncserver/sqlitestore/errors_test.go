package sqlitestore

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/livestore-go/livestore/internal/sqlite"
	"github.com/livestore-go/livestore/syncserver"
)

// SQLite's own refusal to write (SQLITE_READONLY), from a connection opened
// read-only, is classified StorageReadOnly; an error SQLite does not
// classify is StorageUnavailable.
func TestStorageErrKinds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sync.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := sqlite.Open(path, sqlite.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = insertStore(conn, "x", "id", time.Now())
	if !sqlite.IsReadOnly(err) {
		t.Fatalf("insert on a read-only connection: %v", err)
	}
	err = storageErr(`create store "x"`, err)
	var se *syncserver.StorageError
	if !errors.As(err, &se) || se.Kind != syncserver.StorageReadOnly || se.Op != `sqlitestore: create store "x"` {
		t.Fatalf("classified as %#v", err)
	}
	err = storageErr("read", conn.Exec("SELECT * FROM no_such_table"))
	if syncserver.StorageErrorKindOf(err) != syncserver.StorageUnavailable {
		t.Fatalf("missing table classified as %v", syncserver.StorageErrorKindOf(err))
	}
}
