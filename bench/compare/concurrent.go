package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livestore-go/livestore"
)

// Workload 7: many goroutines commit single events at once, each commit
// durable when it returns. livestore-go groups concurrent commits into one
// transaction (group commit); the floor does the least that gives the same
// guarantees: queued commits share one transaction, each in a savepoint so
// that a failing one fails alone, and one fsync. JS has one thread and so
// no concurrent committers.

// concurrently runs commit(i) for i in [0, n) on workers goroutines and
// returns the time until the last returned.
func concurrently(a childArgs, commit func(i int) error) (time.Duration, error) {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	t0 := a.begin()
	for g := 0; g < a.workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(a.n); i = next.Add(1) - 1 {
				if err := commit(int(i)); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	d := a.end(t0)
	if len(errs) > 0 {
		return d, fmt.Errorf("%d of %d committers failed, first: %w", len(errs), a.workers, errs[0])
	}
	return d, nil
}

// goConcurrent commits the todos from a.workers goroutines, one event each.
func goConcurrent(ctx context.Context, app *benchApp, s *livestore.Store, a childArgs) (result, error) {
	d, err := concurrently(a, func(i int) error {
		return s.Commit(ctx, app.todoCreated.New(todoArgs{ID: todoID(i), Text: todoText}))
	})
	if err != nil {
		return result{}, err
	}
	n, err := app.count(ctx, s)
	return result{MS: ms(d), Check: checkCount(n, a.n)}, err
}

// floorConcurrent commits the todos from a.workers goroutines through the
// floor's group commit.
func (f *floorDB) concurrent(a childArgs) (result, error) {
	g := &floorGroup{f: f, lock: make(chan struct{}, 1)}
	d, err := concurrently(a, func(i int) error { return g.commit(todoCreatedEvent(todoID(i), todoText)) })
	if err != nil {
		return result{}, err
	}
	n, err := f.count()
	return result{MS: ms(d), Check: checkCount(n, a.n)}, err
}

// floorGroup is the floor's group commit: whichever caller takes lock
// commits every queued call in one transaction.
type floorGroup struct {
	f     *floorDB
	lock  chan struct{} // the write lock: holding it is a send
	mu    sync.Mutex
	queue []*floorCall // guarded by mu
}

type floorCall struct {
	ev   floorEvent
	err  error
	done chan struct{}
}

// commit queues ev and returns once the transaction holding it committed.
func (g *floorGroup) commit(ev floorEvent) error {
	c := &floorCall{ev: ev, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	g.mu.Unlock()
	for {
		select {
		case <-c.done:
			return c.err
		case g.lock <- struct{}{}:
			g.lead()
			<-g.lock
		}
	}
}

// lead commits the queued calls, each in a savepoint, in one transaction.
func (g *floorGroup) lead() {
	g.mu.Lock()
	calls := g.queue
	g.queue = nil
	g.mu.Unlock()
	if len(calls) == 0 {
		return
	}
	f := g.f
	head := f.head
	err := f.c.Begin()
	for _, c := range calls {
		if err != nil {
			break
		}
		c.err = f.c.Savepoint(func() error { return f.write(c.ev, head) })
		if c.err == nil {
			head++
		}
	}
	if err == nil {
		err = f.c.Commit()
	}
	if err != nil {
		f.c.Rollback()
		for _, c := range calls {
			c.err = err
		}
	} else {
		f.head = head
	}
	for _, c := range calls {
		close(c.done)
	}
}
