package syncproto

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Bounds on the text fields of an event, enforced by [CheckEvent]. The
// reference's clients use short names ("v1.TodoCreated") and 6-character
// ids; the bounds leave ample room while keeping every event storable in
// every storage (PostgreSQL's text refuses NUL) and printable in logs.
const (
	// MaxNameBytes bounds an event's name.
	MaxNameBytes = 256
	// MaxIDBytes bounds an event's clientId and sessionId.
	MaxIDBytes = 256
)

// ErrInvalidEvent is matched (errors.Is) by the errors of [CheckEvent] and
// [CheckBatch] for an event whose fields break the rules.
var ErrInvalidEvent = errors.New("invalid event")

// EventError is the error of the batch and event checks: which event of a
// batch breaks which rule. It matches (errors.Is) its Kind:
// [ErrBrokenChain], [ErrInvalidEvent] or [ErrEventTooLarge].
type EventError struct {
	Index int    // position of the event in its batch
	Name  string // the event's name
	Rule  string // what is wrong, e.g. "has an empty name"
	Kind  error  // ErrBrokenChain, ErrInvalidEvent or ErrEventTooLarge
}

// Error reads like "event 3 (v1.TodoCreated) has an empty name".
func (e *EventError) Error() string { return EventLabel(e.Index, e.Name) + " " + e.Rule }

// Unwrap returns Kind.
func (e *EventError) Unwrap() error { return e.Kind }

func eventError(kind error, i int, name, format string, args ...any) error {
	return &EventError{Index: i, Name: name, Rule: fmt.Sprintf(format, args...), Kind: kind}
}

// CheckBatch checks a pushed batch: its events chain ([CheckChain]) and each
// is well-formed ([CheckEvent] with maxArgsDepth). Errors name the first
// offending event by index and name, and the rule it breaks.
func CheckBatch(batch []Event, maxArgsDepth int) error {
	if err := CheckChain(batch); err != nil {
		return err
	}
	for i := range batch {
		if err := CheckEvent(i, &batch[i], maxArgsDepth); err != nil {
			return err
		}
	}
	return nil
}

// CheckEvent checks the fields of the event at index i of a batch: a name of
// 1 to [MaxNameBytes] bytes, a clientId and a sessionId of at most
// [MaxIDBytes] bytes, none of them holding control characters (U+0000 to
// U+001F and U+007F) or invalid UTF-8; args nested at most maxArgsDepth
// levels (objects and arrays; see [JSONDepth]). The error is an
// *[EventError] of kind [ErrInvalidEvent].
func CheckEvent(i int, ev *Event, maxArgsDepth int) error {
	fail := func(format string, args ...any) error {
		return eventError(ErrInvalidEvent, i, ev.Name, format, args...)
	}
	switch {
	case ev.Name == "":
		return fail("has an empty name")
	case len(ev.Name) > MaxNameBytes:
		return fail("has a name of %d bytes; the limit is %d", len(ev.Name), MaxNameBytes)
	case !printable(ev.Name):
		return fail("has a name with a control character or invalid UTF-8")
	case len(ev.ClientID) > MaxIDBytes:
		return fail("has a clientId of %d bytes; the limit is %d", len(ev.ClientID), MaxIDBytes)
	case !printable(ev.ClientID):
		return fail("has a clientId with a control character or invalid UTF-8")
	case len(ev.SessionID) > MaxIDBytes:
		return fail("has a sessionId of %d bytes; the limit is %d", len(ev.SessionID), MaxIDBytes)
	case !printable(ev.SessionID):
		return fail("has a sessionId with a control character or invalid UTF-8")
	}
	if d := JSONDepth(ev.Args); d > maxArgsDepth {
		return fail("has args nested %d levels deep; the limit is %d", d, maxArgsDepth)
	}
	return nil
}

// EventLabel names the event at index i of a batch for error messages:
// `event 3 (v1.TodoCreated)`. A name that is long or not printable is
// quoted and cut, so that the message stays readable.
func EventLabel(i int, name string) string {
	const show = 64
	if len(name) <= show && name != "" && printable(name) {
		return "event " + strconv.Itoa(i) + " (" + name + ")"
	}
	cut := name
	if len(cut) > show {
		cut = cut[:show]
	}
	q := strconv.QuoteToASCII(cut)
	if len(cut) < len(name) {
		q += "…"
	}
	return "event " + strconv.Itoa(i) + " (name " + q + ")"
}

// printable reports whether s is valid UTF-8 without control characters
// (U+0000 to U+001F, U+007F).
func printable(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			return false
		}
		i += n
	}
	return true
}

// JSONDepth returns the deepest nesting of objects and arrays in the JSON
// text raw: 0 for a scalar, 1 for {} or [1], 2 for {"a":[]}. It scans the
// bytes once without recursion (brackets inside strings do not count), so
// that it is safe on any input; it does not validate the JSON.
func JSONDepth(raw []byte) int {
	depth, deepest := 0, 0
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '"':
			// Skip the string, honouring escapes.
			for i++; i < len(raw) && raw[i] != '"'; i++ {
				if raw[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
			deepest = max(deepest, depth)
		case '}', ']':
			depth--
		}
	}
	return deepest
}

// firstInvalidUTF8 returns the offset of the first byte of data that is not
// part of a valid UTF-8 sequence, or -1 if data is valid UTF-8.
func firstInvalidUTF8(data []byte) int {
	if utf8.Valid(data) {
		return -1
	}
	for i := 0; i < len(data); {
		if data[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// MaxPulledEventBytes returns the largest encoded event (the length of
// [Marshal] of the [Event]) that a pull page of a store with backendID can
// carry: [MaxPayloadBytes] less the page's [PageEncoder.Overhead] and the
// event's item wrapper with its metadata. A server that accepts a larger
// event could never send it.
func MaxPulledEventBytes(backendID string) (int, error) {
	enc, err := NewPageEncoder(backendID)
	if err != nil {
		return 0, fmt.Errorf("measure pull page: %w", err)
	}
	var ev Event
	// createdAt has the same length for every year from 0 to 9999.
	item, err := enc.Item(&ev, time.Unix(0, 0))
	if err != nil {
		return 0, fmt.Errorf("measure pull item: %w", err)
	}
	empty, err := marshal(ev)
	if err != nil {
		return 0, fmt.Errorf("measure event: %w", err)
	}
	return MaxPayloadBytes - enc.Overhead() - (len(item) - len(empty)), nil
}

// ErrEventTooLarge is matched (errors.Is) by the error of [CheckEventSize].
var ErrEventTooLarge = errors.New("event too large")

// CheckEventSize checks that the event at index i of a batch encodes
// ([Marshal]) to at most limit bytes, typically [MaxPulledEventBytes]. It
// encodes the event only when a cheap upper bound of its size passes limit.
// The error is an *[EventError] of kind [ErrEventTooLarge].
func CheckEventSize(i int, ev *Event, limit int) error {
	// Quoting at most doubles a string without control characters or
	// invalid UTF-8 (as CheckEvent ensures), encoding compacts args, two
	// int64 take at most 40 bytes and 128 covers field names and punctuation.
	bound := 2*(len(ev.Name)+len(ev.ClientID)+len(ev.SessionID)) + max(len(ev.Args), 4) + 40 + 128
	if bound <= limit {
		return nil
	}
	b, err := marshal(ev)
	if err != nil {
		return eventError(ErrInvalidEvent, i, ev.Name, "cannot be encoded: %v", err)
	}
	if len(b) > limit {
		return eventError(ErrEventTooLarge, i, ev.Name, "is %d bytes encoded; a pull page carries at most %d", len(b), limit)
	}
	return nil
}
