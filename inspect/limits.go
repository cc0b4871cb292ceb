package inspect

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Defaults of [Limits].
const (
	// DefaultMaxBytes bounds an answer's size as JSON.
	DefaultMaxBytes = 1 << 20
	// DefaultTimeout bounds how long one call reads.
	DefaultTimeout = 5 * time.Second
	// MaxValueLength is the largest string or blob SQLite builds or reads
	// while running a query of [Dir.Query] (SQLITE_LIMIT_LENGTH): larger ones
	// fail with "string or blob too big", so that an expression such as
	// randomblob(1e9) cannot make SQLite allocate a gigabyte.
	MaxValueLength = 64 << 20
)

// Limits bounds one call of [Dir.Query] or [Dir.ScanEvents]. The zero value
// applies the defaults.
type Limits struct {
	// MaxRows is the most rows returned; 0 or less: no row limit.
	MaxRows int
	// MaxBytes bounds the size of the answer as JSON (the encoding of
	// [Result]); 0: DefaultMaxBytes; negative: no limit.
	MaxBytes int
	// Timeout bounds how long the call runs; SQLite is interrupted when it
	// passes. 0: DefaultTimeout; negative: no limit.
	Timeout time.Duration
}

func (l Limits) maxBytes() int {
	switch {
	case l.MaxBytes == 0:
		return DefaultMaxBytes
	case l.MaxBytes < 0:
		return int(^uint(0) >> 1)
	}
	return l.MaxBytes
}

// Which limit cut an answer short ([Result.TruncatedBy]).
const (
	LimitRows  = "rows"
	LimitBytes = "bytes"
)

// ErrTimeout is matched (errors.Is) by the error of a call stopped by its
// time limit.
var ErrTimeout = errors.New("time limit reached")

// withTimeout returns ctx bounded by the limit and a function that turns an
// error of the call into one naming the limit when the limit stopped it.
func withTimeout(ctx context.Context, limit time.Duration) (context.Context, context.CancelFunc, func(error) error) {
	if limit == 0 {
		limit = DefaultTimeout
	}
	if limit < 0 {
		ctx, cancel := context.WithCancel(ctx)
		return ctx, cancel, func(err error) error { return err }
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, limit)
	explain := func(err error) error {
		if err != nil && parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("stopped after %s: %w (narrow the query, or allow more time)", limit, ErrTimeout)
		}
		return err
	}
	return ctx, cancel, explain
}

// jsonTextSize is the length of s encoded as a JSON string by encoding/json
// (which escapes <, > and & too, and replaces invalid UTF-8).
func jsonTextSize(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
				n += 2
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			n += 6
		case r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}

// jsonValueSize is the length of a row value (nil, int64, float64, string or
// []byte) as encoding/json writes it; floats count as their longest form.
func jsonValueSize(v any) int {
	switch v := v.(type) {
	case nil:
		return len("null")
	case int64:
		var buf [24]byte
		return len(strconv.AppendInt(buf[:0], v, 10))
	case float64:
		return 24
	case string:
		return jsonTextSize(v)
	case []byte:
		return 2 + base64.StdEncoding.EncodedLen(len(v))
	}
	return 0
}
