package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/livestore-go/livestore/inspect"
)

// Bounds of an answer, the defaults of [Options].
const (
	// DefaultMaxAnswerBytes bounds one tool answer as sent (its structured
	// content and the copy of it as text).
	DefaultMaxAnswerBytes = 1 << 20
	// MinAnswerBytes is the smallest MaxAnswerBytes accepted.
	MinAnswerBytes = 16 << 10
	// DefaultQueryTimeout bounds one tool call's reading.
	DefaultQueryTimeout = inspect.DefaultTimeout
)

// answerReserve is what an answer holds besides the tool's output: the
// JSON-RPC envelope, the content list and the output's fixed fields.
const answerReserve = 2 << 10

// limits are the bounds every tool applies.
type limits struct {
	answerBytes int
	timeout     time.Duration
}

func newLimits(opts Options) (limits, error) {
	l := limits{answerBytes: opts.MaxAnswerBytes, timeout: opts.QueryTimeout}
	if l.answerBytes == 0 {
		l.answerBytes = DefaultMaxAnswerBytes
	}
	if l.answerBytes < MinAnswerBytes {
		return limits{}, fmt.Errorf("mcp: MaxAnswerBytes %d: want at least %d", l.answerBytes, MinAnswerBytes)
	}
	if l.timeout == 0 {
		l.timeout = DefaultQueryTimeout
	}
	if l.timeout < 0 {
		return limits{}, fmt.Errorf("mcp: QueryTimeout %s: want a positive duration", l.timeout)
	}
	return l, nil
}

// budget is how many bytes the tool's output may take as JSON. The SDK sends
// the output twice, as structured content and as its text, and escaping the
// JSON as text at most doubles it, so a third of the answer is the output's.
func (l limits) budget() int { return (l.answerBytes - answerReserve) / 3 }

// call bounds the time of one tool call.
func (l limits) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, l.timeout)
}

// sizeOf is the length of v as JSON.
func sizeOf(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return 0
	}
	return len(b)
}

// capNote tells the reader of a shortened page why it ended and how to read on.
func (l limits) capNote(next string) string {
	return fmt.Sprintf("the answer reached its size limit (%d bytes); %s", l.answerBytes, next)
}
