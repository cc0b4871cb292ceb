package syncproto

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Event is an event in its global form, as the sync server stores and sends
// it. SeqNum is the event's position in the store's log (the first event has
// 1); ParentSeqNum is the position of the event before it (0 is the root).
// Args is the JSON encoding of the event's arguments; nil means JSON null.
type Event struct {
	Name         string          `json:"name"`
	Args         json.RawMessage `json:"args"`
	SeqNum       int64           `json:"seqNum"`
	ParentSeqNum int64           `json:"parentSeqNum"`
	ClientID     string          `json:"clientId"`
	SessionID    string          `json:"sessionId"`
}

// MaxSeqNum is the largest sequence number: JavaScript clients hold
// sequence numbers as numbers, which are exact up to 2^53-1.
const MaxSeqNum = 1<<53 - 1

// DefaultMaxArgsDepth is the default bound on the nesting depth of an
// event's args (objects and arrays), enforced at push so that every client
// can decode every event it pulls.
const DefaultMaxArgsDepth = 64

// ErrBrokenChain is matched (errors.Is) by the error of [CheckChain].
var ErrBrokenChain = errors.New("events do not form a chain")

// CheckChain reports whether batch is a well-formed run of events numbered
// as clients number them: each event's SeqNum is its ParentSeqNum + 1, each
// ParentSeqNum after the first is the SeqNum of the event before it,
// ParentSeqNums are not negative and SeqNums are at most [MaxSeqNum]. The
// first event's ParentSeqNum is not compared with anything here (that is the
// server's head check). An empty batch is well-formed. Errors name the first
// offending event by index and name, and the rule it breaks (an
// *[EventError] of kind [ErrBrokenChain]).
func CheckChain(batch []Event) error {
	for i := range batch {
		ev := &batch[i]
		switch {
		case i > 0 && ev.ParentSeqNum != batch[i-1].SeqNum:
			return eventError(ErrBrokenChain, i, ev.Name, "has parentSeqNum %d; it must be %d, the seqNum of event %d", ev.ParentSeqNum, batch[i-1].SeqNum, i-1)
		case ev.ParentSeqNum < 0:
			return eventError(ErrBrokenChain, i, ev.Name, "has parentSeqNum %d; it must not be negative", ev.ParentSeqNum)
		case ev.SeqNum > MaxSeqNum:
			return eventError(ErrBrokenChain, i, ev.Name, "has seqNum %d; the largest sequence number is %d", ev.SeqNum, int64(MaxSeqNum))
		case ev.SeqNum <= ev.ParentSeqNum || ev.SeqNum-ev.ParentSeqNum != 1:
			// SeqNum > ParentSeqNum >= 0 here, so the subtraction cannot overflow.
			return eventError(ErrBrokenChain, i, ev.Name, "has seqNum %d and parentSeqNum %d; seqNum must be parentSeqNum+1", ev.SeqNum, ev.ParentSeqNum)
		}
	}
	return nil
}

// wireEvent decodes an event strictly: required fields must be present and of
// the right type, as the reference's schema demands.
type wireEvent struct {
	Name         *string         `json:"name"`
	Args         json.RawMessage `json:"args"`
	SeqNum       *int64          `json:"seqNum"`
	ParentSeqNum *int64          `json:"parentSeqNum"`
	ClientID     *string         `json:"clientId"`
	SessionID    *string         `json:"sessionId"`
}

func (w *wireEvent) event() (Event, error) {
	switch {
	case w.Name == nil:
		return Event{}, errors.New(`missing field "name"`)
	case w.SeqNum == nil:
		return Event{}, errors.New(`missing field "seqNum"`)
	case w.ParentSeqNum == nil:
		return Event{}, errors.New(`missing field "parentSeqNum"`)
	case w.ClientID == nil:
		return Event{}, errors.New(`missing field "clientId"`)
	case w.SessionID == nil:
		return Event{}, errors.New(`missing field "sessionId"`)
	}
	return Event{
		Name:         *w.Name,
		Args:         w.Args,
		SeqNum:       *w.SeqNum,
		ParentSeqNum: *w.ParentSeqNum,
		ClientID:     *w.ClientID,
		SessionID:    *w.SessionID,
	}, nil
}

func decodeEvents(raw []wireEvent) ([]Event, error) {
	out := make([]Event, len(raw))
	for i := range raw {
		ev, err := raw[i].event()
		if err != nil {
			return nil, fmt.Errorf("batch[%d]: %w", i, err)
		}
		out[i] = ev
	}
	return out, nil
}
