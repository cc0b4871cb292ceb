package sqlitestore

import (
	"context"
	"errors"
	"fmt"

	"github.com/livestore-go/livestore/internal/sqlite"
)

// job is one write, run in a group transaction (see runGroup). Its result
// is final only once the group committed.
type job struct {
	ctx  context.Context
	fn   func(tx *tx) error
	err  error
	done chan struct{}
}

// write runs fn in the writer and waits until it is committed.
func (s *Store) write(ctx context.Context, fn func(tx *tx) error) error {
	if s.readOnly {
		return ErrReadOnly
	}
	j := &job{ctx: ctx, fn: fn, done: make(chan struct{})}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	select {
	case s.jobs <- j:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	// A queued job always runs to an answer, even if ctx ends meanwhile, so
	// that the caller learns whether it was committed.
	<-j.done
	return j.err
}

func (s *Store) writeLoop() {
	defer close(s.done)
	for {
		var first *job
		select {
		case first = <-s.jobs:
		case <-s.stop:
			// Jobs queued before Close still run.
			for {
				select {
				case j := <-s.jobs:
					s.runGroup([]*job{j})
				default:
					return
				}
			}
		}
		group := []*job{first}
	collect:
		for len(group) < s.maxJobs {
			select {
			case j := <-s.jobs:
				group = append(group, j)
			default:
				break collect
			}
		}
		s.runGroup(group)
		// The answers are out: a checkpoint here delays only the
		// next group. Its failure loses nothing (see checkpointer).
		_ = s.ckpt.finish(s.writer)
	}
}

// runGroup commits the jobs of group in one transaction and answers each.
// Most jobs succeed or are refused before they write (see refuse), so the
// group first runs without savepoints; a job failing after it wrote rolls
// the transaction back, and the group runs again with a savepoint per job,
// so that the failure costs only that job.
func (s *Store) runGroup(group []*job) {
	err := s.runFast(group)
	if errors.Is(err, errRetryWithSavepoints) {
		err = s.runWithSavepoints(group)
	}
	if err == nil {
		s.wroteLog(s.groupBytes)
	}
	for _, j := range group {
		if err != nil {
			j.err = fmt.Errorf("commit: %w", err)
		}
		close(j.done)
	}
}

// wroteLog counts n more bytes in the log and wakes the checkpointer
// past checkpointBytes.
func (s *Store) wroteLog(n int64) {
	s.logBytes += n + commitOverhead
	if s.logBytes >= checkpointBytes {
		s.logBytes = 0
		s.ckptWakes++
		s.ckpt.poke()
	}
}

// errRetryWithSavepoints is runFast's answer for a group to run again.
var errRetryWithSavepoints = errors.New("a write failed after writing; run the group with savepoints")

// runFast runs the jobs of group one after the other in one transaction,
// without savepoints.
func (s *Store) runFast(group []*job) error {
	conn := s.writer
	s.groupBytes = 0
	tx := &tx{conn: conn, insert: &s.fast, written: &s.groupBytes}
	if err := conn.Begin(); err != nil {
		return err
	}
	for _, j := range group {
		if j.err = j.ctx.Err(); j.err != nil {
			continue
		}
		j.err = j.fn(tx)
		var r *refusal
		if errors.As(j.err, &r) {
			j.err = r.err
			continue
		}
		if j.err != nil {
			conn.Rollback()
			return errRetryWithSavepoints
		}
	}
	if err := conn.Commit(); err != nil {
		conn.Rollback()
		return err
	}
	return nil
}

// runWithSavepoints runs each job of group in its own savepoint of one
// transaction.
func (s *Store) runWithSavepoints(group []*job) error {
	conn := s.writer
	s.groupBytes = 0
	tx := &tx{conn: conn, insert: &s.safe, written: &s.groupBytes}
	if err := conn.Begin(); err != nil {
		return err
	}
	for i, j := range group {
		if j.err = j.ctx.Err(); j.err != nil {
			continue
		}
		j.err = conn.Savepoint(func() error { return j.fn(tx) })
		var r *refusal
		if errors.As(j.err, &r) {
			j.err = r.err
		}
		if j.err == nil || conn.InTransaction() {
			continue
		}
		// SQLite may roll the whole transaction back on some errors
		// (SQLITE_FULL, I/O errors): the jobs before this one are
		// lost with it.
		for _, k := range group[:i] {
			if k.err == nil {
				k.err = fmt.Errorf("rolled back with a failed write of the same transaction: %w", j.err)
			}
		}
		if err := conn.Begin(); err != nil {
			return err
		}
	}
	if err := conn.Commit(); err != nil {
		conn.Rollback()
		return err
	}
	return nil
}

// tx is what a job writes with: the writer's connection and the event
// inserts for the way the group runs.
type tx struct {
	conn   *sqlite.Conn
	insert *insertQueries
	// written counts the bytes of the events the group inserted.
	written *int64
}

// refusal is the error of a job that refused to write before writing
// anything (a head that moved, a conflicting backend id): the other jobs
// of its transaction go on.
type refusal struct{ err error }

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// refuse marks err as a refusal (see refusal).
func refuse(err error) error { return &refusal{err: err} }
