package livestore

import (
	"errors"
	"fmt"
)

// ErrStoreClosed is returned by every operation on a closed store.
var ErrStoreClosed = errors.New("livestore: store is closed")

// ErrNotAStore is matched (errors.Is) when Open finds a file that is not a
// livestore database, or is corrupted.
var ErrNotAStore = errors.New("livestore: not a livestore database")

// UnknownEventError reports an event name the schema does not define, or an
// event without a materializer.
type UnknownEventError struct {
	Name   string
	Reason string
}

func (e *UnknownEventError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("livestore: unknown event %q", e.Name)
	}
	return fmt.Sprintf("livestore: event %q: %s", e.Name, e.Reason)
}

// MaterializerError reports a materializer that failed (or panicked), or
// whose writes SQLite rejected. The commit that met it changed nothing.
type MaterializerError struct {
	Event  string
	SeqNum string
	Err    error
}

func (e *MaterializerError) Error() string {
	return fmt.Sprintf("livestore: materialize %s (%s): %v", e.Event, e.SeqNum, e.Err)
}

func (e *MaterializerError) Unwrap() error { return e.Err }
