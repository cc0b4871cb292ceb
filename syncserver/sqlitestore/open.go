package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"syscall"

	"github.com/livestore-go/livestore/internal/flock"
	"github.com/livestore-go/livestore/internal/sqlite"
)

// checkWritable fails when the server could start but never store a push:
// SQLite opens a file it cannot write read-only without complaint, and
// needs to create its -wal and -shm files beside it.
func checkWritable(path string) error {
	op := "open " + path
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return storageErr(op, fmt.Errorf("directory %s: %w", dir, err))
	}
	if !fi.IsDir() {
		return storageErr(op, fmt.Errorf("%s is not a directory", dir))
	}
	probe, err := os.CreateTemp(dir, ".livestore-write-check-*")
	if err != nil {
		return storageErr(op, fmt.Errorf("directory %s is not writable: %w", dir, err))
	}
	name := probe.Name()
	probe.Close()
	if err := os.Remove(name); err != nil {
		return storageErr(op, fmt.Errorf("directory %s: remove write check: %w", dir, err))
	}
	for _, p := range []string{path, path + "-wal", path + "-shm", path + ".lock"} {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return storageErr(op, fmt.Errorf("file %s is not writable: %w", p, err))
		}
		f.Close()
	}
	return nil
}

func acquire(path string) (*flock.Lock, error) {
	l, err := flock.Acquire(path + ".lock")
	var held *flock.HeldError
	if errors.As(err, &held) {
		return nil, &LockedError{Path: path, Holder: held.Holder}
	}
	if err != nil {
		return nil, storageErr("open "+path, err)
	}
	return l, nil
}

// readOnlyConns is the number of read connections of [OpenReadOnly].
const readOnlyConns = 2

// OpenReadOnly opens the database file at path for reading only, for tools
// that inspect or export a server's data, even while the server runs. It
// never creates, migrates or locks anything, and never changes the file
// (SQLite may create its -wal and -shm side files where it can); writes to the returned Store fail with a *syncserver.StorageError
// of kind StorageReadOnly (matching [ErrReadOnly]). It fails when the file
// is missing or unreadable, and with [ErrNotStorage] when the file is not a
// sync server's database.
func OpenReadOnly(path string) (*Store, error) {
	op := "open " + path + " read-only"
	fi, err := os.Stat(path)
	if err != nil {
		return nil, storageErr(op, err)
	}
	if fi.IsDir() {
		return nil, storageErr(op, fmt.Errorf("%s is a directory, not a database file", path))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, storageErr(op, err)
	}
	f.Close()
	_, err = os.Stat(path + "-wal")
	noWAL := errors.Is(err, os.ErrNotExist)
	target := path
	if noWAL && syscall.Access(filepath.Dir(path), 2 /* W_OK */) != nil {
		// SQLite reads a WAL-mode file only if it can create the -shm file
		// beside it, or is told the file cannot change. Without a -wal no
		// server is writing, and in a directory no one can write to, none
		// can start.
		target = (&url.URL{Scheme: "file", Path: path}).String() + "?immutable=1"
	}
	readers, err := sqlite.OpenPool(target, readOnlyConns, sqlite.OpenOptions{ReadOnly: true})
	if err != nil {
		return nil, storageErr(op, err)
	}
	s := &Store{path: path, readOnly: true, readers: readers}
	if err := s.checkTables(noWAL); err != nil {
		readers.Close()
		return nil, err
	}
	return s, nil
}

// checkTables makes sure the file is a sync storage and loads its secret.
func (s *Store) checkTables(noWAL bool) error {
	tables := map[string]bool{}
	err := s.read(context.Background(), func(conn *sqlite.Conn) error {
		err := conn.Query("SELECT name FROM sqlite_master WHERE type = 'table'", nil, func(r *sqlite.Row) error {
			tables[r.Text(0)] = true
			return nil
		})
		if err != nil || !tables["meta"] {
			return err
		}
		return conn.Query("SELECT value FROM meta WHERE key = ?", []any{secretKey}, func(r *sqlite.Row) error {
			s.secret = r.Bytes(0)
			return nil
		})
	})
	if sqlite.IsNotADatabase(err) {
		return fmt.Errorf("sqlitestore: %s is %w: not a SQLite database (%v)", s.path, ErrNotStorage, err)
	}
	if err != nil {
		return storageErr("open "+s.path+" read-only", err)
	}
	if tables["stores"] && tables["events"] {
		return nil
	}
	hint := ""
	if noWAL {
		hint = fmt.Sprintf("; if it is a copy of a server's %s, copy %s-wal with it (recent writes, even the tables, may be only there)",
			filepath.Base(s.path), filepath.Base(s.path))
	}
	return fmt.Errorf("sqlitestore: %s is %w (no stores and events tables)%s", s.path, ErrNotStorage, hint)
}

// ReadOnly reports whether the Store was opened with [OpenReadOnly].
func (s *Store) ReadOnly() bool { return s.readOnly }
