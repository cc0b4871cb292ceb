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

// CheckChain reports whether batch is a well-formed run of events: every
// event's ParentSeqNum is the SeqNum of the event before it, and SeqNums
// increase. The first event's ParentSeqNum is not checked here (that is the
// server's head check), only that it is not negative and below its SeqNum.
// An empty batch is well-formed.
func CheckChain(batch []Event) error {
	for i, ev := range batch {
		if ev.ParentSeqNum < 0 {
			return fmt.Errorf("%w: event %d (%s) has negative parentSeqNum %d", ErrBrokenChain, i, ev.Name, ev.ParentSeqNum)
		}
		if ev.SeqNum <= ev.ParentSeqNum {
			return fmt.Errorf("%w: event %d (%s) has seqNum %d not above its parentSeqNum %d", ErrBrokenChain, i, ev.Name, ev.SeqNum, ev.ParentSeqNum)
		}
		if i > 0 && ev.ParentSeqNum != batch[i-1].SeqNum {
			return fmt.Errorf("%w: event %d (%s) has parentSeqNum %d, want %d (the seqNum of event %d)", ErrBrokenChain, i, ev.Name, ev.ParentSeqNum, batch[i-1].SeqNum, i-1)
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
