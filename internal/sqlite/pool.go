package sqlite

import (
	"context"
	"errors"
	"sync"
)

// ErrPoolClosed is returned by Take on a closed Pool.
var ErrPoolClosed = errors.New("sqlite: pool closed")

// Pool is a fixed set of connections to one database, for readers.
type Pool struct {
	conns  chan *Conn
	n      int
	done   chan struct{}
	once   sync.Once
	closed error
}

// OpenPool opens n connections to path with opts.
func OpenPool(path string, n int, opts OpenOptions) (*Pool, error) {
	p := &Pool{conns: make(chan *Conn, n), done: make(chan struct{})}
	for i := 0; i < n; i++ {
		c, err := Open(path, opts)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.n++
		p.conns <- c
	}
	return p, nil
}

// Take waits for a free connection; give it back with Put.
func (p *Pool) Take(ctx context.Context) (*Conn, error) {
	select {
	case <-p.done:
		return nil, ErrPoolClosed
	default:
	}
	select {
	case c := <-p.conns:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.done:
		return nil, ErrPoolClosed
	}
}

// Put returns a connection taken with Take.
func (p *Pool) Put(c *Conn) { p.conns <- c }

// Close waits for every connection to be returned and closes them.
func (p *Pool) Close() error {
	p.once.Do(func() {
		close(p.done)
		var errs []error
		for i := 0; i < p.n; i++ {
			errs = append(errs, (<-p.conns).Close())
		}
		p.closed = errors.Join(errs...)
	})
	return p.closed
}
