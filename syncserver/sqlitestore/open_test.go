package sqlitestore_test

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
	"github.com/livestore-go/livestore/syncserver/storagetest"
)

// readOnlyMount mounts a tmpfs at a new directory, lets fill write into it,
// then remounts it read-only: a real read-only file system. It needs root
// (CAP_SYS_ADMIN), which the test environment has.
func readOnlyMount(t *testing.T, fill func(dir string)) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=8m"); err != nil {
		t.Fatalf("mount a tmpfs (these tests need root): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	fill(dir)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, "size=8m"); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
	return dir
}

// chattr sets or clears file attributes; +i (immutable) refuses writes even
// to root, and needs CAP_LINUX_IMMUTABLE.
func chattr(t *testing.T, flag, path string) {
	t.Helper()
	if out, err := exec.Command("chattr", flag, path).CombinedOutput(); err != nil {
		t.Fatalf("chattr %s %s (these tests need root): %v %s", flag, path, err, out)
	}
}

func immutable(t *testing.T, path string) {
	t.Helper()
	chattr(t, "+i", path)
	t.Cleanup(func() { chattr(t, "-i", path) })
}

// makeStorage writes a small storage at path and closes it.
func makeStorage(t *testing.T, path string) {
	t.Helper()
	s, err := sqlitestore.Open(path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(t.Context(), "todos", storagetest.Chain(0, 5, "c"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenNotWritable(t *testing.T) {
	for _, tc := range []struct {
		name string
		path func(t *testing.T) string
		want string
	}{
		{"read-only file system, empty", func(t *testing.T) string {
			return filepath.Join(readOnlyMount(t, func(string) {}), "sync.db")
		}, "is not writable"},
		{"read-only file system, existing storage", func(t *testing.T) string {
			dir := readOnlyMount(t, func(dir string) { makeStorage(t, filepath.Join(dir, "sync.db")) })
			return filepath.Join(dir, "sync.db")
		}, "is not writable"},
		{"immutable directory", func(t *testing.T) string {
			dir := t.TempDir()
			immutable(t, dir)
			return filepath.Join(dir, "sync.db")
		}, "directory"},
		{"immutable file", func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "sync.db")
			makeStorage(t, path)
			immutable(t, path)
			return path
		}, "sync.db is not writable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path(t)
			s, err := sqlitestore.Open(path, sqlitestore.Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			storageKind(t, err, syncserver.StorageReadOnly)
			if !strings.Contains(err.Error(), "not writable") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say what is not writable", err)
			}
		})
	}
	_, err := sqlitestore.Open(filepath.Join(t.TempDir(), "missing", "sync.db"), sqlitestore.Options{})
	if err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Fatalf("Open in a missing directory: %v", err)
	}
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestOpenReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sync.db")
	makeStorage(t, path)
	before := fileHash(t, path)

	r, err := sqlitestore.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	stores, err := r.Stores(ctx)
	if err != nil || len(stores) != 1 || stores[0].StoreID != "todos" || stores[0].Head != 5 {
		t.Fatalf("stores = %+v, %v", stores, err)
	}
	evs, err := r.Read(ctx, "todos", 0, 100, 100)
	if err != nil || len(evs) != 5 {
		t.Fatalf("read %d events, %v", len(evs), err)
	}
	if _, err := r.BackendID(ctx, "not-there"); err != nil {
		t.Fatal(err)
	}
	err = r.Append(ctx, "todos", storagetest.Chain(5, 1, "c"), time.Now())
	storageKind(t, err, syncserver.StorageReadOnly)
	if !errors.Is(err, sqlitestore.ErrReadOnly) {
		t.Fatalf("append: %v", err)
	}
	storageKind(t, r.CreateStore(ctx, "new", "id"), syncserver.StorageReadOnly)
	// No lock: a server can open the file meanwhile.
	w := openAt(t, path, sqlitestore.Options{})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if after := fileHash(t, path); after != before {
		t.Fatal("the file changed under a read-only open")
	}
}

// A read-only tool works on read-only media, where Open cannot.
func TestOpenReadOnlyOnReadOnlyMount(t *testing.T) {
	dir := readOnlyMount(t, func(dir string) { makeStorage(t, filepath.Join(dir, "sync.db")) })
	r, err := sqlitestore.OpenReadOnly(filepath.Join(dir, "sync.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if head, err := r.Head(t.Context(), "todos"); err != nil || head != 5 {
		t.Fatalf("head = %d, %v", head, err)
	}
}

func TestOpenReadOnlyRefuses(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a database\n", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	// A server's file copied without its -wal: the tables are still in the
	// WAL, the copy has only the header.
	live := filepath.Join(dir, "live", "sync.db")
	if err := os.Mkdir(filepath.Dir(live), 0o755); err != nil {
		t.Fatal(err)
	}
	s := openAt(t, live, sqlitestore.Options{})
	if err := s.Append(t.Context(), "todos", storagetest.Chain(0, 1, "c"), time.Now()); err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(dir, "copy", "sync.db")
	if err := os.Mkdir(filepath.Dir(copied), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(live)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copied, b, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "nothing.db"), "no such file"},
		{"directory", dir, "is a directory"},
		{"not a database", notDB, "not a livestore sync storage"},
		{"copy without its WAL", copied, "copy sync.db-wal with it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := sqlitestore.OpenReadOnly(tc.path)
			if err == nil {
				r.Close()
				t.Fatal("OpenReadOnly succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "nothing.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("OpenReadOnly created the missing file")
	}
}

func TestLockInProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sync.db")
	s, err := sqlitestore.Open(path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sqlitestore.Open(path, sqlitestore.Options{})
	var locked *sqlitestore.LockedError
	if !errors.Is(err, sqlitestore.ErrLocked) || !errors.As(err, &locked) ||
		!strings.Contains(err.Error(), fmt.Sprintf("pid %d ", os.Getpid())) {
		t.Fatalf("second Open: %v; want a LockedError naming pid %d", err, os.Getpid())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	openAt(t, path, sqlitestore.Options{})
}

// holdEnv makes the test binary, started by TestLockAcrossProcesses, open
// the file it names, say so, and keep it until killed or stdin closes.
const holdEnv = "SQLITESTORE_TEST_HOLD"

func holdLock(path string) {
	s, err := sqlitestore.Open(path, sqlitestore.Options{})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("holding")
	_, _ = io.Copy(io.Discard, os.Stdin)
	s.Close()
}

func TestLockAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sync.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "holding\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("holder said %q, %v", line, err)
	}

	_, err = sqlitestore.Open(path, sqlitestore.Options{})
	if !errors.Is(err, sqlitestore.ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d ", cmd.Process.Pid)) {
		t.Fatalf("Open while another process holds the file: %v; want it to name pid %d", err, cmd.Process.Pid)
	}
	// The holder dies without closing anything: the kernel drops its lock.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	openAt(t, path, sqlitestore.Options{})
}
