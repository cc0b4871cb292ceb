package storagetest_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/livestore-go/livestore/syncserver/sqlitestore"
	"github.com/livestore-go/livestore/syncserver/storagetest"
)

// ackLog keeps the lines AppendUntilKilled writes and ends its context
// after enough of them, where a crash test kills the process instead.
type ackLog struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	stopAt int
	stop   context.CancelFunc
}

func (l *ackLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if strings.Count(l.buf.String(), "\n") >= l.stopAt {
		l.stop()
	}
	return len(p), nil
}

// A crash test's child process appends with AppendUntilKilled and writes a
// line per acknowledged append; the parent kills it, opens the storage
// again and checks the lines with CheckAfterCrash.
func ExampleAppendUntilKilled() {
	dir, err := os.MkdirTemp("", "crash-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	s, err := sqlitestore.Open(filepath.Join(dir, "sync.db"), sqlitestore.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	acks := &ackLog{stopAt: 40, stop: cancel}
	err = storagetest.AppendUntilKilled(ctx, s, acks)
	fmt.Println("error:", err)
	fmt.Println("at least 40 acknowledged:", strings.Count(acks.buf.String(), "\n") >= 40)
	fmt.Println("first line names a store:", strings.HasPrefix(acks.buf.String(), "crash-"))
	// Output:
	// error: <nil>
	// at least 40 acknowledged: true
	// first line names a store: true
}
