package pgstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// appendJob is one Append: its statement's arguments, and its result once
// done is closed.
type appendJob struct {
	ctx     context.Context
	storeID string
	n       int   // events
	first   int64 // the batch's first parentSeqNum
	last    int64 // its last seqNum
	create  bool  // use createQ rather than appendQ
	// The columns of the batch, as the statements take them.
	seq, parent              []int64
	names, clients, sessions []string
	args                     []*string
	createdAt                time.Time
	backendID                string // for a batch based on e0
	note                     string // the notification's payload

	err      error
	done     chan struct{}
	answered bool // done is closed (touched by the writer only)
}

// answer lets j's caller take its result, once.
func (j *appendJob) answer() {
	if !j.answered {
		j.answered = true
		close(j.done)
	}
}

func (j *appendJob) op() string { return fmt.Sprintf("append to store %q", j.storeID) }

// newAppendJob lays batch out as the append statements take it.
func (s *Store) newAppendJob(ctx context.Context, storeID string, batch []syncproto.Event, createdAt time.Time) (*appendJob, error) {
	n := len(batch)
	j := &appendJob{
		ctx: ctx, storeID: storeID, n: n, first: batch[0].ParentSeqNum, last: batch[n-1].SeqNum,
		seq: make([]int64, n), parent: make([]int64, n),
		names: make([]string, n), clients: make([]string, n), sessions: make([]string, n),
		args: make([]*string, n), createdAt: createdAt, done: make(chan struct{}),
	}
	for i, ev := range batch {
		j.seq[i], j.parent[i], j.names[i], j.clients[i], j.sessions[i] = ev.SeqNum, ev.ParentSeqNum, ev.Name, ev.ClientID, ev.SessionID
		if len(ev.Args) > 0 && string(ev.Args) != "null" {
			a := string(ev.Args)
			j.args[i] = &a
		}
	}
	note, err := json.Marshal(notification{StoreID: storeID, Head: j.last})
	if err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", j.op(), err)
	}
	j.note = string(note)
	// Most batches extend an existing store; one based on e0 most likely
	// creates one (see appendAlone for the other cases).
	if j.create = j.first == 0; j.create {
		if j.backendID, err = syncserver.BackendIDFor(s.secret, storeID); err != nil {
			return nil, storageErr(j.op(), err)
		}
	}
	return j, nil
}

// writer groups the appends of concurrent pushes: each of its goroutines
// takes the appends queued meanwhile and commits them in one transaction.
type writer struct {
	jobs     chan *appendJob
	maxGroup int
	mu       sync.RWMutex // orders sends on jobs before close
	closed   bool
	wg       sync.WaitGroup
}

// writers is the number of groups one Store commits at a time: while one
// waits for its commit, the next is sent.
const writers = 2

// groupTimeout bounds a group's statements. A group does not end with the
// context of one of its appends: the others would fail with it.
const groupTimeout = time.Minute

func (s *Store) startWriter(maxGroup int) {
	s.w = &writer{jobs: make(chan *appendJob, maxGroup), maxGroup: maxGroup}
	for range writers {
		s.w.wg.Add(1)
		go s.writeLoop()
	}
}

// stopWriter makes later appends fail, lets the queued ones run and waits
// for the writer's goroutines.
func (s *Store) stopWriter() {
	if s.w == nil {
		return
	}
	s.w.mu.Lock()
	if !s.w.closed {
		s.w.closed = true
		close(s.w.jobs)
	}
	s.w.mu.Unlock()
	s.w.wg.Wait()
}

// errClosed is the error of an append after Close.
var errClosed = errors.New("pgstore: store is closed")

// enqueue hands j to the writer and waits for its result.
func (s *Store) enqueue(j *appendJob) error {
	s.w.mu.RLock()
	if s.w.closed {
		s.w.mu.RUnlock()
		return storageErr(j.op(), errClosed)
	}
	select {
	case s.w.jobs <- j:
		s.w.mu.RUnlock()
	case <-j.ctx.Done():
		s.w.mu.RUnlock()
		return j.ctx.Err()
	}
	// A queued append always runs to an answer, so that the caller learns
	// whether it was stored.
	<-j.done
	return j.err
}

func (s *Store) writeLoop() {
	defer s.w.wg.Done()
	for first := range s.w.jobs {
		group := []*appendJob{first}
	collect:
		for len(group) < s.w.maxGroup {
			select {
			case j, ok := <-s.w.jobs:
				if !ok {
					break collect
				}
				group = append(group, j)
			default:
				break collect
			}
		}
		s.runGroup(group)
	}
}

// runGroup commits the appends of group in one transaction and answers
// each. An append that wrote nothing (its head moved, or the store was not
// as it guessed) is settled alone; if one failed, the transaction stored
// nothing and each append runs alone, so that the failure is only its own.
func (s *Store) runGroup(group []*appendJob) {
	defer func() {
		for _, j := range group {
			j.answer()
		}
	}()
	live := make([]*appendJob, 0, len(group))
	for _, j := range group {
		if j.err = j.ctx.Err(); j.err == nil {
			live = append(live, j)
		}
	}
	if len(live) == 0 {
		return
	}
	// The same order in every process, so that groups on shared stores
	// cannot deadlock.
	slices.SortFunc(live, func(a, b *appendJob) int { return cmp.Compare(a.storeID, b.storeID) })
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	// The appends the transaction stored are answered as soon as it is
	// committed, before the notifications' results come back.
	wrote, stmtFailed, err := s.appendGroup(ctx, live, func(wrote []bool) {
		for i, j := range live {
			if wrote[i] {
				j.answer()
			}
		}
	})
	for i, j := range live {
		switch {
		case stmtFailed:
			j.err = s.appendAlone(ctx, j, false)
		case err != nil:
			j.err = storageErr(j.op(), err)
		case !wrote[i]:
			j.err = s.appendAlone(ctx, j, true)
		}
	}
}

// appendGroup runs the appends of jobs in one transaction, then sends
// their notifications, all in one round trip. wrote[i] reports whether
// jobs[i]'s events were inserted; committed, if not nil, is told so as
// soon as the transaction is committed. stmtFailed reports that an append
// statement failed: the transaction then stored nothing.
//
// The notifications are sent after the commit, in one transaction of
// their own: PostgreSQL serialises the commits of transactions that
// notify, which would cost concurrent appends their shared fsync; one
// transaction for the group's notifications costs one commit, not one
// per append. A notification
// lost between the two (the process stopped) delays the live pulls of
// other processes until the store's next append.
func (s *Store) appendGroup(ctx context.Context, jobs []*appendJob, committed func(wrote []bool)) (wrote []bool, stmtFailed bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	defer conn.Release()
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	for _, j := range jobs {
		if j.create {
			b.Queue(s.createQ, j.storeID, j.first, j.last, j.seq, j.parent, j.names, j.args, j.clients, j.sessions, j.createdAt, j.backendID)
		} else {
			b.Queue(s.appendQ, j.storeID, j.first, j.last, j.seq, j.parent, j.names, j.args, j.clients, j.sessions, j.createdAt)
		}
	}
	b.Queue("COMMIT")
	notes, stores, heads := make([]string, len(jobs)), make([]string, len(jobs)), make([]int64, len(jobs))
	for i, j := range jobs {
		notes[i], stores[i], heads[i] = j.note, j.storeID, j.last
	}
	b.Queue(s.notifyQ, s.channel, notes, stores, heads)
	br := conn.SendBatch(ctx, b)
	wrote = make([]bool, len(jobs))
	err = func() error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		for i, j := range jobs {
			tag, err := br.Exec()
			if err != nil {
				stmtFailed = true
				return err
			}
			wrote[i] = tag.RowsAffected() == int64(j.n)
		}
		if _, err := br.Exec(); err != nil {
			return err
		}
		if committed != nil {
			committed(wrote)
		}
		// Committed: a failed notification does not undo the appends.
		_, _ = br.Exec()
		return nil
	}()
	_ = br.Close()
	if status := conn.Conn().PgConn().TxStatus(); status != 'I' {
		// The failed transaction is still open: end it, or drop the
		// connection.
		if _, rerr := conn.Exec(ctx, "ROLLBACK"); rerr != nil {
			_ = conn.Conn().Close(ctx)
		}
	}
	return wrote, stmtFailed, err
}

// appendAlone appends j in a transaction of its own. tried says a first
// attempt, with j.create, already wrote nothing.
func (s *Store) appendAlone(ctx context.Context, j *appendJob, tried bool) error {
	retried := false
	for {
		if !tried {
			wrote, _, err := s.appendGroup(ctx, []*appendJob{j}, nil)
			if err != nil {
				return storageErr(j.op(), err)
			}
			if wrote[0] {
				return nil
			}
		}
		tried = false
		// Nothing was written: the head moved, the store exists (created
		// by someone else, or empty by CreateStore), or it does not. The
		// other statement is tried once when the head says it might
		// succeed.
		var head int64
		err := s.pool.QueryRow(ctx, s.headQ, j.storeID).Scan(&head)
		missing := errors.Is(err, pgx.ErrNoRows)
		if err != nil && !missing {
			return storageErr(fmt.Sprintf("head of store %q", j.storeID), err)
		}
		if !retried && head == j.first && j.create != missing {
			j.create, retried = missing, true
			continue
		}
		return &syncproto.ServerAheadError{MinimumExpectedNum: head, ProvidedNum: j.first}
	}
}
