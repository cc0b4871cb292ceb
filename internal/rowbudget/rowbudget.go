// Package rowbudget collects the rows of a query into an answer bounded by
// a number of rows and a number of bytes of JSON, and says which bound cut
// the answer short. The devtools SQL view and the MCP query tool answer
// through it.
//
// It runs no queries and writes no answers: callers pass [Collector.Add] as
// the row callback of their query and encode the rows themselves.
package rowbudget

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ErrFull is returned by [Collector.Add] when the answer holds no more
// rows; returned from a query's row callback it stops the query.
var ErrFull = errors.New("answer full")

// Which bound cut an answer short ([Collector.TruncatedBy]).
const (
	ByRows  = "rows"
	ByBytes = "bytes"
)

// Collector gathers rows while they fit. It is not safe for concurrent use.
type Collector struct {
	maxRows     int
	free        int
	rows        [][]any
	truncatedBy string
}

// New returns a collector keeping at most maxRows rows (no bound when 0 or
// less) whose JSON takes at most maxBytes, counting each row's encoding and
// the comma that separates it from the next.
func New(maxRows, maxBytes int) *Collector {
	return &Collector{maxRows: maxRows, free: maxBytes, rows: [][]any{}}
}

// Add keeps row if it fits, or returns [ErrFull] and records the bound that
// refused it. A row that cannot be encoded as JSON is an error.
func (c *Collector) Add(row []any) error {
	if c.maxRows > 0 && len(c.rows) == c.maxRows {
		c.truncatedBy = ByRows
		return ErrFull
	}
	b, err := json.Marshal(row)
	if err != nil {
		return fmt.Errorf("encode row %d: %w", len(c.rows)+1, err)
	}
	size := len(b) + 1
	if size > c.free {
		c.truncatedBy = ByBytes
		return ErrFull
	}
	c.free -= size
	c.rows = append(c.rows, row)
	return nil
}

// Rows returns the rows kept, never nil.
func (c *Collector) Rows() [][]any { return c.rows }

// TruncatedBy is [ByRows] or [ByBytes] when a row was refused, "" when
// every row offered was kept.
func (c *Collector) TruncatedBy() string { return c.truncatedBy }
