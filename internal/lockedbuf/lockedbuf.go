// Package lockedbuf provides a byte buffer that several goroutines may
// write to at once, for collecting the output of child processes and
// loggers, optionally bounded to its first bytes.
package lockedbuf

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer whose Write and String may be called
// concurrently. The zero value is an empty, unbounded buffer ready to use.
type Buffer struct {
	// Max, if positive, bounds the buffer: once it holds Max bytes, later
	// writes are dropped (and still reported written), so that it keeps the
	// beginning of the output, where a failure usually shows.
	Max int

	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer, or as much of it as Max leaves room for.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Max > 0 {
		room := max(b.Max-b.buf.Len(), 0)
		b.buf.Write(p[:min(len(p), room)])
		return len(p), nil
	}
	return b.buf.Write(p)
}

// String returns what has been written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
