package sqlitestore_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncserver/sqlitestore"
	"github.com/livestore-go/livestore/syncserver/storagetest"
)

// groupAppends queues appends while the writer is held, so that they are
// committed as one group, and returns their errors.
func groupAppends(t *testing.T, s *sqlitestore.Store, appends []storagetest.Append) []error {
	release, queued := s.HoldWriter()
	errs := make([]error, len(appends))
	var wg sync.WaitGroup
	for i, a := range appends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Append(context.Background(), a.StoreID, a.Batch, time.Now())
		}()
	}
	for queued() < len(appends) {
		time.Sleep(time.Millisecond)
	}
	release()
	wg.Wait()
	return errs
}

// One append failing in a group costs only its own push.
func TestGroupedAppends(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	storagetest.Grouped(t, s, func(appends []storagetest.Append) []error { return groupAppends(t, s, appends) })
}

// crashEnv makes the test binary, started by TestAppendsSurviveCrash, append
// to the file it names until killed (see storagetest.AppendUntilKilled).
const crashEnv = "SQLITESTORE_TEST_CRASH"

func appendUntilKilled(path string) {
	s, err := sqlitestore.Open(path, sqlitestore.Options{})
	if err != nil {
		os.Exit(1)
	}
	if err := storagetest.AppendUntilKilled(context.Background(), s, os.Stdout); err != nil {
		os.Exit(2)
	}
}

// Every append acknowledged before the process died is in the file after
// it is opened again, and the logs are whole.
func TestAppendsSurviveCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sync.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	seen := storagetest.KillAfterAppends(t, cmd, 300)
	s := openAt(t, path, sqlitestore.Options{})
	if n := storagetest.CheckAfterCrash(t, s, seen); n < 300 {
		t.Fatalf("the child acknowledged %d appends before it was killed; want at least 300", n)
	}
}
