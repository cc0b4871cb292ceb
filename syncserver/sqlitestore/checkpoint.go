package sqlitestore

import (
	"fmt"
	"sync/atomic"

	"github.com/livestore-go/livestore/internal/sqlite"
)

// Checkpoints (copying the write-ahead log back into the database file)
// run on their own connection and goroutine, not in the writer: SQLite's
// automatic checkpoint runs inside the commit that crosses its threshold,
// so that one push in about a hundred waited several milliseconds for
// thousands of page writes and two more fsyncs. The writer estimates how
// much it added to the log and wakes the checkpointer past checkpointBytes;
// the checkpointer copies the log while the writer goes on, and the writer
// copies the rest between two transactions (see finish).

const (
	// checkpointBytes is how much the writer adds to the log (estimated)
	// before it wakes the checkpointer: about SQLite's default of 1,000
	// pages of 4 KiB.
	checkpointBytes = 4 << 20
	// commitOverhead estimates the log bytes of a commit besides its
	// events' bytes: the pages a commit changes besides the new rows
	// (interior pages, the store's row, the database header).
	commitOverhead = 3 * 4096
)

// checkpointer copies the log into the database file when woken.
type checkpointer struct {
	conn *sqlite.Conn
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	// copied is set once a copy made while the writer went on is done,
	// for the writer to finish it.
	copied atomic.Bool
}

// newCheckpointer opens the checkpointer's connection to path and starts
// it; stop it with close.
func newCheckpointer(path string) (*checkpointer, error) {
	conn, err := sqlite.Open(path, sqlite.OpenOptions{})
	if err != nil {
		return nil, fmt.Errorf("open checkpoint connection: %w", err)
	}
	c := &checkpointer{
		conn: conn,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go c.loop()
	return c, nil
}

// poke wakes the checkpointer without waiting.
func (c *checkpointer) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// close stops the checkpointer and closes its connection.
func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	return c.conn.Close()
}

func (c *checkpointer) loop() {
	defer close(c.done)
	for {
		select {
		case <-c.wake:
		case <-c.stop:
			return
		}
		// A failed checkpoint loses nothing (what it did not copy stays
		// in the log, which stays readable) and is tried again at the
		// next wakeup; a log that cannot be copied makes commits fail
		// with their own errors.
		_ = c.run()
	}
}

// run copies what the log holds into the database file without holding
// the writer up, then asks the writer to finish (see finish).
func (c *checkpointer) run() error {
	if _, _, err := checkpoint(c.conn, "PASSIVE"); err != nil {
		return err
	}
	c.copied.Store(true)
	return nil
}

// finish is the writer's part, run between its transactions: after the
// checkpointer's copy, it copies the few frames committed meanwhile, so
// that the log starts again from its beginning at the next commit. (A
// checkpoint on another connection could do that only by waiting for a
// moment the writer is idle, which a busy writer rarely leaves.)
func (c *checkpointer) finish(writer *sqlite.Conn) error {
	if !c.copied.Swap(false) {
		return nil
	}
	_, _, err := checkpoint(writer, "PASSIVE")
	return err
}

// checkpoint runs one checkpoint in mode on conn and returns the log's size in
// frames and how many of them are now in the database file.
func checkpoint(conn *sqlite.Conn, mode string) (logFrames, copied int64, err error) {
	err = conn.Query("PRAGMA wal_checkpoint("+mode+")", nil, func(r *sqlite.Row) error {
		logFrames, copied = r.Int64(1), r.Int64(2)
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("checkpoint (%s): %w", mode, err)
	}
	return logFrames, copied, nil
}
