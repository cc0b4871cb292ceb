// Package eventlog holds the types of a client's event log: sequence
// numbers ([SeqNum], with their string form e5.1r2), events as the log
// stores them ([Event]) and what a client has recorded of its sync server
// ([SyncStatus]).
//
// The log is append-only except for the part after the upstream head: events
// not yet confirmed by the sync server may be rolled back and re-numbered by a
// rebase.
//
// The tables that store the log, and every SQL statement on them, are not
// here: they live in the module's internal/clientdb, beside the store's
// other bookkeeping tables.
package eventlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SeqNum is a client-side event sequence number. Global numbers come from the
// sync server's total order; Client numbers order client-only events committed
// after global event Global; RebaseGeneration counts how often the local
// pending events were rebased, which tells apart events that share Global and
// Client but were committed on different bases.
//
// String forms: e5 (synced), e5.1 (client-only event after e5), e5r1 (e5 after
// one rebase), e5.1r2.
type SeqNum struct {
	Global           int64 `json:"global"`
	Client           int64 `json:"client"`
	RebaseGeneration int64 `json:"rebaseGeneration"`
}

// Root is the parent of the first event of every log.
var Root = SeqNum{}

// String renders s as e<global>[.<client>][r<generation>].
func (s SeqNum) String() string {
	var b strings.Builder
	b.WriteByte('e')
	b.WriteString(strconv.FormatInt(s.Global, 10))
	if s.Client != 0 {
		b.WriteByte('.')
		b.WriteString(strconv.FormatInt(s.Client, 10))
	}
	if s.RebaseGeneration != 0 {
		b.WriteByte('r')
		b.WriteString(strconv.FormatInt(s.RebaseGeneration, 10))
	}
	return b.String()
}

// ErrBadSeqNum is returned (wrapped) by ParseSeqNum for malformed input.
var ErrBadSeqNum = errors.New("malformed sequence number")

// ParseSeqNum parses the string form produced by SeqNum.String.
func ParseSeqNum(text string) (SeqNum, error) {
	bad := func() (SeqNum, error) { return SeqNum{}, fmt.Errorf("%w: %q", ErrBadSeqNum, text) }
	rest, ok := strings.CutPrefix(text, "e")
	if !ok || rest == "" {
		return bad()
	}
	var s SeqNum
	var err error
	if i := strings.IndexByte(rest, 'r'); i >= 0 {
		if s.RebaseGeneration, err = parseNonNeg(rest[i+1:]); err != nil {
			return bad()
		}
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '.'); i >= 0 {
		if s.Client, err = parseNonNeg(rest[i+1:]); err != nil {
			return bad()
		}
		rest = rest[:i]
	}
	if s.Global, err = parseNonNeg(rest); err != nil {
		return bad()
	}
	return s, nil
}

func parseNonNeg(s string) (int64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, ErrBadSeqNum
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, ErrBadSeqNum
	}
	return n, nil
}

// Compare orders sequence numbers by position in the log: by Global, then
// Client. The rebase generation does not affect the position.
func (s SeqNum) Compare(o SeqNum) int {
	switch {
	case s.Global < o.Global:
		return -1
	case s.Global > o.Global:
		return 1
	case s.Client < o.Client:
		return -1
	case s.Client > o.Client:
		return 1
	}
	return 0
}

// IsClientOnly reports whether s numbers a client-only event.
func (s SeqNum) IsClientOnly() bool { return s.Client != 0 }

// MaxNumber is the largest global or client sequence number: JavaScript
// clients hold sequence numbers as numbers, which are exact up to 2^53-1
// (the sync protocol's syncproto.MaxSeqNum).
const MaxNumber = 1<<53 - 1

// ErrSeqNumExhausted is matched (errors.Is) by the errors of [SeqNum.NextSynced]
// and [SeqNum.NextClientOnly] when the next number would pass [MaxNumber].
var ErrSeqNumExhausted = errors.New("sequence numbers exhausted")

// NextSynced is the sequence number of a synced event committed when the
// local head is s: the next global number, client part 0. It fails with
// [ErrSeqNumExhausted] after global number [MaxNumber] (or a head beyond it),
// so that numbers never wrap.
func (s SeqNum) NextSynced() (SeqNum, error) {
	if s.Global < 0 || s.Global >= MaxNumber {
		return SeqNum{}, fmt.Errorf("%w: no global sequence number after %s (the largest is %d)", ErrSeqNumExhausted, s, int64(MaxNumber))
	}
	return SeqNum{Global: s.Global + 1, RebaseGeneration: s.RebaseGeneration}, nil
}

// NextClientOnly is the sequence number of a client-only event committed when
// the local head is s. It fails with [ErrSeqNumExhausted] after client
// number [MaxNumber].
func (s SeqNum) NextClientOnly() (SeqNum, error) {
	if s.Client < 0 || s.Client >= MaxNumber {
		return SeqNum{}, fmt.Errorf("%w: no client sequence number after %s (the largest is %d)", ErrSeqNumExhausted, s, int64(MaxNumber))
	}
	return SeqNum{Global: s.Global, Client: s.Client + 1, RebaseGeneration: s.RebaseGeneration}, nil
}

// UnmarshalJSON accepts the object form and, for convenience, the string form.
func (s *SeqNum) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var text string
		if err := json.Unmarshal(b, &text); err != nil {
			return err
		}
		v, err := ParseSeqNum(text)
		if err != nil {
			return err
		}
		*s = v
		return nil
	}
	type plain SeqNum
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("sequence number: %w", err)
	}
	*s = SeqNum(p)
	return nil
}
