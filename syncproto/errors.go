package syncproto

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ServerAheadError is the failure of a push whose first event's parentSeqNum
// is not the server's head: the client must pull, rebase and push again.
// On the wire: {"_tag":"ServerAheadError","minimumExpectedNum":7,"providedNum":5}.
type ServerAheadError struct {
	// MinimumExpectedNum is the server's head when the push was checked.
	MinimumExpectedNum int64
	// ProvidedNum is the parentSeqNum of the push's first event.
	ProvidedNum int64
}

func (e *ServerAheadError) Error() string {
	return fmt.Sprintf("server ahead: head is %d, push was based on %d", e.MinimumExpectedNum, e.ProvidedNum)
}

// MarshalJSON encodes the error in its tagged wire form.
func (e *ServerAheadError) MarshalJSON() ([]byte, error) {
	return marshal(struct {
		Tag                string `json:"_tag"`
		MinimumExpectedNum int64  `json:"minimumExpectedNum"`
		ProvidedNum        int64  `json:"providedNum"`
	}{"ServerAheadError", e.MinimumExpectedNum, e.ProvidedNum})
}

// BackendIDMismatchError is the failure of a push or pull that names a
// backendId other than the server's: the server's data was reset or replaced.
// On the wire: {"_tag":"BackendIdMismatchError","expected":"…","received":"…"}.
type BackendIDMismatchError struct {
	// Expected is the server's backendId.
	Expected string
	// Received is the backendId the client sent.
	Received string
}

func (e *BackendIDMismatchError) Error() string {
	return fmt.Sprintf("backend id mismatch: server has %q, client sent %q", e.Expected, e.Received)
}

// MarshalJSON encodes the error in its tagged wire form.
func (e *BackendIDMismatchError) MarshalJSON() ([]byte, error) {
	return marshal(struct {
		Tag      string `json:"_tag"`
		Expected string `json:"expected"`
		Received string `json:"received"`
	}{"BackendIdMismatchError", e.Expected, e.Received})
}

// UnknownError is any other failure of a push or pull. In the reference its
// fields are "cause" (an encoded defect: a string, or {"name","message"} for a
// JavaScript Error), an optional "note" and an optional "payload".
type UnknownError struct {
	// Message is the cause's message.
	Message string
	// Note is an optional remark added by the sender.
	Note string
}

func (e *UnknownError) Error() string {
	if e.Note != "" {
		return fmt.Sprintf("sync error: %s (%s)", e.Message, e.Note)
	}
	return "sync error: " + e.Message
}

// MarshalJSON encodes the error as the reference does for an Error cause:
// {"_tag":"UnknownError","cause":{"name":"Error","message":"…"}}.
func (e *UnknownError) MarshalJSON() ([]byte, error) {
	return marshal(struct {
		Tag   string      `json:"_tag"`
		Cause errorDefect `json:"cause"`
		Note  string      `json:"note,omitempty"`
	}{"UnknownError", errorDefect{Name: "Error", Message: e.Message}, e.Note})
}

// DefectError is an unexpected failure reported by the peer: an Exit whose
// cause is a defect ("Die"), or a Defect message. The reference server uses
// it for requests it cannot decode.
type DefectError struct {
	Message string
}

func (e *DefectError) Error() string { return "sync protocol defect: " + e.Message }

// ErrInterrupted is returned for a request that the server ended with an
// interruption (for example after the client sent Interrupt).
var ErrInterrupted = errors.New("sync request interrupted")

// errorDefect is how the reference encodes a JavaScript Error as a defect.
type errorDefect struct {
	Name    string `json:"name"`
	Message string `json:"message"`
}

// EncodeDefect encodes msg as a defect value: {"name":"Error","message":msg}.
func EncodeDefect(name, msg string) json.RawMessage {
	b, _ := marshal(errorDefect{Name: name, Message: msg})
	return b
}

// DefectMessage returns the human-readable text of an encoded defect: the
// string itself, the "message" of an object, or else the JSON text.
func DefectMessage(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var d struct {
		Name    *string `json:"name"`
		Message *string `json:"message"`
	}
	if json.Unmarshal(raw, &d) == nil && d.Message != nil {
		if d.Name != nil && *d.Name != "" && *d.Name != "Error" {
			return *d.Name + ": " + *d.Message
		}
		return *d.Message
	}
	return string(raw)
}

// EncodeError encodes err as a tagged wire error. The three protocol error
// types keep their shape (found with errors.As); any other error becomes an
// [UnknownError] carrying its message.
func EncodeError(err error) json.RawMessage {
	var (
		ahead    *ServerAheadError
		mismatch *BackendIDMismatchError
		unknown  *UnknownError
		b        []byte
	)
	switch {
	case errors.As(err, &ahead):
		b, _ = ahead.MarshalJSON()
	case errors.As(err, &mismatch):
		b, _ = mismatch.MarshalJSON()
	case errors.As(err, &unknown):
		b, _ = unknown.MarshalJSON()
	default:
		b, _ = (&UnknownError{Message: err.Error()}).MarshalJSON()
	}
	return b
}

// DecodeError decodes a tagged wire error into *ServerAheadError,
// *BackendIDMismatchError or *UnknownError. An error of another tag, or one
// that does not decode, becomes an *UnknownError describing it.
func DecodeError(raw json.RawMessage) error {
	var head struct {
		Tag string `json:"_tag"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return &UnknownError{Message: "undecodable error: " + string(raw)}
	}
	switch head.Tag {
	case "ServerAheadError":
		var e struct {
			MinimumExpectedNum int64 `json:"minimumExpectedNum"`
			ProvidedNum        int64 `json:"providedNum"`
		}
		if err := json.Unmarshal(raw, &e); err == nil {
			return &ServerAheadError{MinimumExpectedNum: e.MinimumExpectedNum, ProvidedNum: e.ProvidedNum}
		}
	case "BackendIdMismatchError":
		var e struct {
			Expected string `json:"expected"`
			Received string `json:"received"`
		}
		if err := json.Unmarshal(raw, &e); err == nil {
			return &BackendIDMismatchError{Expected: e.Expected, Received: e.Received}
		}
	case "UnknownError":
		var e struct {
			Cause json.RawMessage `json:"cause"`
			Note  string          `json:"note"`
		}
		if err := json.Unmarshal(raw, &e); err == nil {
			msg := "unknown error"
			if len(e.Cause) > 0 && string(e.Cause) != "null" {
				msg = DefectMessage(e.Cause)
			}
			return &UnknownError{Message: msg, Note: e.Note}
		}
	}
	return &UnknownError{Message: "unrecognised error: " + string(raw)}
}
