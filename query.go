package livestore

import (
	"context"
	"fmt"

	"github.com/livestore-go/livestore/internal/sqlite"
)

// Reader is what queries read from: a *Store (outside commits, on its read
// connections) or a *MaterializeContext (inside a commit, seeing the writes
// made so far).
type Reader interface {
	readRows(ctx context.Context, query string, args []any, fn func(*sqlite.Row) error) error
	decoderCache() *decoderCache
}

// Query runs stmt and decodes every row into a T (see the rules on decoding
// in the package documentation).
func Query[T any](ctx context.Context, r Reader, stmt Statement) ([]T, error) {
	q, args, err := stmt.Build()
	if err != nil {
		return nil, fmt.Errorf("livestore: query: %w", err)
	}
	out := []T{}
	dec := newRowDecoder[T](r.decoderCache())
	err = r.readRows(ctx, q, args, func(row *sqlite.Row) error {
		return dec.decode(row, &out)
	})
	if err != nil {
		return nil, fmt.Errorf("livestore: query: %w", err)
	}
	return out, nil
}

// First runs stmt and returns its first row, or fallback and false when there
// is none.
func First[T any](ctx context.Context, r Reader, stmt Statement, fallback T) (T, bool, error) {
	rows, err := Query[T](ctx, r, stmt)
	if err != nil {
		return fallback, false, err
	}
	if len(rows) == 0 {
		return fallback, false, nil
	}
	return rows[0], true, nil
}

func (s *Store) decoderCache() *decoderCache { return &s.decoders }

func (mc *MaterializeContext) decoderCache() *decoderCache { return &mc.store.decoders }

func (s *Store) readRows(ctx context.Context, query string, args []any, fn func(*sqlite.Row) error) error {
	return s.withReader(ctx, func(c *sqlite.Conn) error { return c.Query(query, args, fn) })
}

// withReader runs read on a read connection, interrupted when ctx ends.
func (s *Store) withReader(ctx context.Context, read func(c *sqlite.Conn) error) error {
	c, release, err := s.reader(ctx)
	if err != nil {
		return err
	}
	defer release()
	restore := c.SetInterrupt(ctx)
	defer restore()
	return read(c)
}

// reader hands out a read connection (the write connection for in-memory
// stores, under the write lock).
func (s *Store) reader(ctx context.Context) (*sqlite.Conn, func(), error) {
	if s.readers == nil {
		if err := s.acquireWrite(ctx); err != nil {
			return nil, nil, err
		}
		return s.w, s.releaseWrite, nil
	}
	select {
	case <-s.done:
		return nil, nil, ErrStoreClosed
	default:
	}
	select {
	case c := <-s.readers:
		select {
		case <-s.done:
			s.readers <- c
			return nil, nil, ErrStoreClosed
		default:
		}
		return c, func() { s.readers <- c }, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-s.done:
		return nil, nil, ErrStoreClosed
	}
}
