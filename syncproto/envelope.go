package syncproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// ClientMessage is a message from client to server: *[Request], *[Ack],
// *[Interrupt], *[Ping] or *[Eof].
type ClientMessage interface{ clientMessage() }

// ServerMessage is a message from server to client: *[Chunk], *[Exit],
// *[Defect] or *[Pong].
type ServerMessage interface{ serverMessage() }

// Request starts a procedure call. ID is chosen by the client; the reference
// client uses decimal integer strings "0", "1", … and the reference server
// requires that form (see [ValidRequestID]).
type Request struct {
	ID      string
	Tag     string
	Payload json.RawMessage
	// Headers are name/value pairs; the reference client sends [].
	Headers [][2]string
	TraceID string
	SpanID  string
	Sampled *bool
}

// Ack acknowledges one Chunk of a stream; the server sends the next page of
// a pull only after it.
type Ack struct{ RequestID string }

// Interrupt cancels a running request.
type Interrupt struct{ RequestID string }

// Ping asks for a [Pong].
type Ping struct{}

// Eof says the client sends no more requests.
type Eof struct{}

// Chunk carries stream elements (one encoded [PullResponse] per Chunk in
// this protocol).
type Chunk struct {
	RequestID string
	Values    []json.RawMessage
}

// Exit ends a request. Exactly one of Value (Success) or Cause (Failure) is
// meaningful: Success is true for a successful end. A successful stream ends
// without a value (Value nil).
type Exit struct {
	RequestID string
	Success   bool
	Value     json.RawMessage
	Cause     *Cause
}

// Cause is Effect's encoded failure cause.
type Cause struct {
	// Tag is "Fail", "Die", "Interrupt", "Empty", "Sequential" or "Parallel".
	Tag string
	// Error is the tagged error of a Fail.
	Error json.RawMessage
	// Defect is the encoded defect of a Die.
	Defect json.RawMessage
	// FiberID is the encoded fiber id of an Interrupt.
	FiberID json.RawMessage
	// Left and Right are the parts of Sequential and Parallel causes.
	Left, Right *Cause
}

// Defect reports a failure that is not tied to one request (for example a
// message that is not JSON). The reference client fails every open request.
type Defect struct{ Defect json.RawMessage }

// Pong answers a [Ping].
type Pong struct{}

func (*Request) clientMessage()   {}
func (*Ack) clientMessage()       {}
func (*Interrupt) clientMessage() {}
func (*Ping) clientMessage()      {}
func (*Eof) clientMessage()       {}
func (*Chunk) serverMessage()     {}
func (*Exit) serverMessage()      {}
func (*Defect) serverMessage()    {}
func (*Pong) serverMessage()      {}

// Fiber id the reference server reports for an interruption a client asked for.
var clientInterruptFiberID = json.RawMessage(`{"_tag":"Runtime","id":-499,"startTimeMillis":0}`)

// ExitSuccess returns a successful Exit; value nil means no value (a stream's end).
func ExitSuccess(requestID string, value json.RawMessage) *Exit {
	return &Exit{RequestID: requestID, Success: true, Value: value}
}

// ExitFail returns an Exit failing with err encoded by [EncodeError].
func ExitFail(requestID string, err error) *Exit {
	return &Exit{RequestID: requestID, Cause: &Cause{Tag: "Fail", Error: EncodeError(err)}}
}

// ExitDie returns an Exit failing with a defect whose text is msg.
func ExitDie(requestID, msg string) *Exit {
	b, _ := marshal(msg)
	return &Exit{RequestID: requestID, Cause: &Cause{Tag: "Die", Defect: b}}
}

// ExitInterrupted returns the Exit the reference sends for a request the
// client interrupted.
func ExitInterrupted(requestID string) *Exit {
	return &Exit{RequestID: requestID, Cause: &Cause{Tag: "Interrupt", FiberID: clientInterruptFiberID}}
}

// Err returns nil for a successful Exit and otherwise the Go error of its
// cause: the decoded tagged error of a Fail (see [DecodeError]), a
// *[DefectError] for a Die, [ErrInterrupted] for an interruption.
func (e *Exit) Err() error {
	if e.Success {
		return nil
	}
	if e.Cause == nil {
		return &DefectError{Message: "failure without a cause"}
	}
	return e.Cause.Err()
}

// Err converts the cause to a Go error; composite causes yield their first
// failure.
func (c *Cause) Err() error {
	switch c.Tag {
	case "Fail":
		return DecodeError(c.Error)
	case "Die":
		return &DefectError{Message: DefectMessage(c.Defect)}
	case "Interrupt":
		return ErrInterrupted
	case "Sequential", "Parallel":
		var errs []error
		for _, part := range []*Cause{c.Left, c.Right} {
			if part != nil && part.Tag != "Empty" {
				errs = append(errs, part.Err())
			}
		}
		if len(errs) > 0 {
			return errs[0]
		}
	}
	return &DefectError{Message: "empty failure cause"}
}

// MarshalJSON encodes the request envelope.
func (r *Request) MarshalJSON() ([]byte, error) {
	return AppendRequest(nil, r)
}

// MarshalJSON encodes the Ack envelope.
func (a *Ack) MarshalJSON() ([]byte, error) {
	return marshal(struct {
		Tag       string `json:"_tag"`
		RequestID string `json:"requestId"`
	}{"Ack", a.RequestID})
}

// MarshalJSON encodes the Interrupt envelope.
func (i *Interrupt) MarshalJSON() ([]byte, error) {
	return marshal(struct {
		Tag       string `json:"_tag"`
		RequestID string `json:"requestId"`
	}{"Interrupt", i.RequestID})
}

// MarshalJSON encodes {"_tag":"Ping"}.
func (*Ping) MarshalJSON() ([]byte, error) { return []byte(`{"_tag":"Ping"}`), nil }

// MarshalJSON encodes {"_tag":"Eof"}.
func (*Eof) MarshalJSON() ([]byte, error) { return []byte(`{"_tag":"Eof"}`), nil }

// MarshalJSON encodes {"_tag":"Pong"}.
func (*Pong) MarshalJSON() ([]byte, error) { return []byte(`{"_tag":"Pong"}`), nil }

// MarshalJSON encodes the Chunk envelope.
func (c *Chunk) MarshalJSON() ([]byte, error) {
	return marshal(struct {
		Tag       string            `json:"_tag"`
		RequestID string            `json:"requestId"`
		Values    []json.RawMessage `json:"values"`
	}{"Chunk", c.RequestID, c.Values})
}

// AppendChunk appends the encoding of a Chunk holding one already-encoded
// value to dst. It lets a server encode a page once and send it under many
// request ids.
func AppendChunk(dst []byte, requestID string, value json.RawMessage) []byte {
	dst = appendChunkStart(dst, requestID)
	dst = append(dst, value...)
	return append(dst, "]}"...)
}

// AppendMergedChunk is [AppendChunk] of the page [AppendMergedPage] makes
// of pages, written in place; ok is false (and dst returned unchanged)
// when AppendMergedPage fails.
func AppendMergedChunk(dst []byte, requestID string, pages [][]byte) (out []byte, ok bool) {
	start := len(dst)
	dst, ok = AppendMergedPage(appendChunkStart(dst, requestID), pages)
	if !ok {
		return dst[:start], false
	}
	return append(dst, "]}"...), true
}

func appendChunkStart(dst []byte, requestID string) []byte {
	dst = append(dst, `{"_tag":"Chunk","requestId":`...)
	dst = strconv.AppendQuote(dst, requestID)
	return append(dst, `,"values":[`...)
}

// MarshalJSON encodes the Exit envelope.
func (e *Exit) MarshalJSON() ([]byte, error) {
	type success struct {
		Tag   string          `json:"_tag"`
		Value json.RawMessage `json:"value,omitempty"`
	}
	type failure struct {
		Tag   string `json:"_tag"`
		Cause *Cause `json:"cause"`
	}
	var exit any
	if e.Success {
		exit = success{"Success", e.Value}
	} else {
		cause := e.Cause
		if cause == nil {
			cause = &Cause{Tag: "Empty"}
		}
		exit = failure{"Failure", cause}
	}
	return marshal(struct {
		Tag       string `json:"_tag"`
		RequestID string `json:"requestId"`
		Exit      any    `json:"exit"`
	}{"Exit", e.RequestID, exit})
}

// MarshalJSON encodes the cause in Effect's encoded form.
func (c *Cause) MarshalJSON() ([]byte, error) {
	switch c.Tag {
	case "Fail":
		return marshal(struct {
			Tag   string          `json:"_tag"`
			Error json.RawMessage `json:"error"`
		}{c.Tag, orNull(c.Error)})
	case "Die":
		return marshal(struct {
			Tag    string          `json:"_tag"`
			Defect json.RawMessage `json:"defect"`
		}{c.Tag, orNull(c.Defect)})
	case "Interrupt":
		fiber := c.FiberID
		if fiber == nil {
			fiber = json.RawMessage(`{"_tag":"None"}`)
		}
		return marshal(struct {
			Tag     string          `json:"_tag"`
			FiberID json.RawMessage `json:"fiberId"`
		}{c.Tag, fiber})
	case "Sequential", "Parallel":
		return marshal(struct {
			Tag   string `json:"_tag"`
			Left  *Cause `json:"left"`
			Right *Cause `json:"right"`
		}{c.Tag, orEmpty(c.Left), orEmpty(c.Right)})
	default:
		return []byte(`{"_tag":"Empty"}`), nil
	}
}

// UnmarshalJSON decodes an encoded cause.
func (c *Cause) UnmarshalJSON(b []byte) error {
	var w struct {
		Tag     string          `json:"_tag"`
		Error   json.RawMessage `json:"error"`
		Defect  json.RawMessage `json:"defect"`
		FiberID json.RawMessage `json:"fiberId"`
		Left    *Cause          `json:"left"`
		Right   *Cause          `json:"right"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	switch w.Tag {
	case "Fail", "Die", "Interrupt", "Empty", "Sequential", "Parallel":
	default:
		return fmt.Errorf("unknown cause tag %q", w.Tag)
	}
	*c = Cause{Tag: w.Tag, Error: w.Error, Defect: w.Defect, FiberID: w.FiberID, Left: w.Left, Right: w.Right}
	return nil
}

// MarshalJSON encodes the Defect envelope.
func (d *Defect) MarshalJSON() ([]byte, error) {
	return marshal(struct {
		Tag    string          `json:"_tag"`
		Defect json.RawMessage `json:"defect"`
	}{"Defect", orNull(d.Defect)})
}

func orNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}

func orEmpty(c *Cause) *Cause {
	if c == nil {
		return &Cause{Tag: "Empty"}
	}
	return c
}

// ValidRequestID reports whether id has the form the reference server
// accepts: an optional minus sign and 1–40 decimal digits.
func ValidRequestID(id string) bool {
	digits := id
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 40 {
		return false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return false
		}
	}
	return true
}

// A MessageError describes a message that could not be decoded. RequestID is
// set when the message named one (so the error can be answered for that
// request); Syntax is set when the message is not JSON at all.
type MessageError struct {
	RequestID string
	Syntax    bool
	// Tag is the unknown "_tag" of a message matching ErrUnknownTag.
	Tag string
	Err error
}

func (e *MessageError) Error() string { return "decode message: " + e.Err.Error() }

func (e *MessageError) Unwrap() error { return e.Err }

// ErrInvalidUTF8 is matched (errors.Is) by the error for a client message
// that is not valid UTF-8.
var ErrInvalidUTF8 = errors.New("message is not valid UTF-8")

// ErrUnknownTag is matched (errors.Is) by the error for a message whose
// "_tag" is not a known envelope.
var ErrUnknownTag = errors.New("unknown message tag")

type envelope struct {
	Tag       *string         `json:"_tag"`
	ID        json.RawMessage `json:"id"`
	RPC       *string         `json:"tag"`
	Payload   json.RawMessage `json:"payload"`
	Headers   json.RawMessage `json:"headers"`
	TraceID   string          `json:"traceId"`
	SpanID    string          `json:"spanId"`
	Sampled   *bool           `json:"sampled"`
	RequestID json.RawMessage `json:"requestId"`
	Values    json.RawMessage `json:"values"`
	Exit      json.RawMessage `json:"exit"`
	Defect    json.RawMessage `json:"defect"`
}

func decodeEnvelope(data []byte) (*envelope, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if !json.Valid(trimmed) {
			return nil, &MessageError{Syntax: true, Err: errors.New("message is not valid JSON")}
		}
		return nil, &MessageError{Err: errors.New("message is not a JSON object")}
	}
	var env envelope
	if err := json.Unmarshal(trimmed, &env); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, &MessageError{Syntax: true, Err: err}
		}
		return nil, &MessageError{Err: err}
	}
	if env.Tag == nil {
		return nil, &MessageError{Err: fmt.Errorf(`%w: missing "_tag"`, ErrUnknownTag)}
	}
	return &env, nil
}

// idText returns the text of an id field: the string itself or, for any other
// JSON value, its JSON text.
func idText(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	return string(raw), false
}

// DecodeClientMessage decodes one client message. Errors are *[MessageError];
// a Request whose id is not a string, or whose procedure tag is missing, or
// that is not valid UTF-8 ([ErrInvalidUTF8]) anywhere, is reported with its
// RequestID set so it can be answered. The Request's ID is
// not checked against [ValidRequestID]: that is the server's decision.
func DecodeClientMessage(data []byte) (ClientMessage, error) {
	// Acks and Pings are most of what clients send; their usual form is
	// recognised without a JSON decoder.
	if id, ok := bytes.CutPrefix(data, []byte(`{"_tag":"Ack","requestId":"`)); ok {
		if id, ok = bytes.CutSuffix(id, []byte(`"}`)); ok && ValidRequestID(string(id)) {
			return &Ack{RequestID: string(id)}, nil
		}
	}
	if string(data) == `{"_tag":"Ping"}` {
		return &Ping{}, nil
	}
	if req, ok := fastRequest(data); ok {
		return req, nil
	}
	return decodeClientMessage(data)
}

// decodeClientMessage is DecodeClientMessage with encoding/json.
func decodeClientMessage(data []byte) (ClientMessage, error) {
	env, err := decodeEnvelope(data)
	if err != nil {
		return nil, err
	}
	// encoding/json turns invalid UTF-8 in strings into U+FFFD and keeps
	// raw values (args) as they are; either way what the client meant is
	// lost or cannot be sent back in a text frame, so the raw bytes decide.
	if at := firstInvalidUTF8(data); at >= 0 {
		me := &MessageError{Err: fmt.Errorf("%w at byte %d", ErrInvalidUTF8, at)}
		if id, _ := idText(env.ID); *env.Tag == "Request" && id != "" && utf8.Valid(env.ID) {
			me.RequestID = id
		}
		return nil, me
	}
	switch *env.Tag {
	case "Request":
		id, isString := idText(env.ID)
		if !isString {
			if id == "" {
				return nil, &MessageError{Err: errors.New(`request without "id"`)}
			}
			return nil, &MessageError{RequestID: id, Err: fmt.Errorf("invalid request id %s: must be a string", id)}
		}
		if env.RPC == nil {
			return nil, &MessageError{RequestID: id, Err: errors.New(`request without "tag"`)}
		}
		req := &Request{ID: id, Tag: *env.RPC, Payload: env.Payload, TraceID: env.TraceID, SpanID: env.SpanID, Sampled: env.Sampled}
		if len(env.Headers) > 0 && string(env.Headers) != "null" {
			if err := json.Unmarshal(env.Headers, &req.Headers); err != nil {
				return nil, &MessageError{RequestID: id, Err: fmt.Errorf("request headers: %w", err)}
			}
		}
		return req, nil
	case "Ack", "Interrupt":
		id, isString := idText(env.RequestID)
		if !isString {
			return nil, &MessageError{Err: fmt.Errorf(`%s without a string "requestId"`, *env.Tag)}
		}
		if *env.Tag == "Ack" {
			return &Ack{RequestID: id}, nil
		}
		return &Interrupt{RequestID: id}, nil
	case "Ping":
		return &Ping{}, nil
	case "Eof":
		return &Eof{}, nil
	}
	return nil, &MessageError{Tag: *env.Tag, Err: fmt.Errorf("%w %q", ErrUnknownTag, *env.Tag)}
}

// chunkPrefix starts every Chunk the reference and this module's server send;
// such messages skip the generic envelope decoding.
const chunkPrefix = `{"_tag":"Chunk","requestId":"`

// CutChunk recognises a Chunk written with its fields in the usual order
// ({"_tag":"Chunk","requestId":"…","values":[…]}), as the reference and this
// module's server write them, and returns its request id and the raw JSON
// array of its values, without decoding or validating the values. ok is
// false for any other message; decode those with [DecodeServerMessage].
// Clients use it to decode pages once, straight from the array (see
// [DecodePullResponses]).
func CutChunk(data []byte) (requestID string, values []byte, ok bool) {
	rest, found := bytes.CutPrefix(data, []byte(chunkPrefix))
	if !found {
		return "", nil, false
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return "", nil, false
	}
	id := string(rest[:end])
	const mid = `","values":`
	if !bytes.HasPrefix(rest[end:], []byte(mid+"[")) {
		return "", nil, false
	}
	start := len(chunkPrefix) + end + len(mid) // the '['
	trimmed := bytes.TrimRight(data, " \t\r\n")
	if !bytes.HasSuffix(trimmed, []byte("]}")) || len(trimmed)-1 <= start {
		return "", nil, false
	}
	return id, trimmed[start : len(trimmed)-1], true
}

// DecodeServerMessage decodes one server message. Errors are *[MessageError].
func DecodeServerMessage(data []byte) (ServerMessage, error) {
	if id, values, ok := CutChunk(data); ok {
		c := &Chunk{RequestID: id}
		if json.Unmarshal(values, &c.Values) == nil && len(c.Values) > 0 {
			return c, nil
		}
	}
	env, err := decodeEnvelope(data)
	if err != nil {
		return nil, err
	}
	switch *env.Tag {
	case "Chunk":
		id, ok := idText(env.RequestID)
		if !ok {
			return nil, &MessageError{Err: errors.New(`Chunk without a string "requestId"`)}
		}
		c := &Chunk{RequestID: id}
		if err := json.Unmarshal(env.Values, &c.Values); err != nil || len(c.Values) == 0 {
			return nil, &MessageError{RequestID: id, Err: errors.New(`Chunk without a non-empty "values" array`)}
		}
		return c, nil
	case "Exit":
		id, ok := idText(env.RequestID)
		if !ok {
			return nil, &MessageError{Err: errors.New(`Exit without a string "requestId"`)}
		}
		var w struct {
			Tag   string          `json:"_tag"`
			Value json.RawMessage `json:"value"`
			Cause *Cause          `json:"cause"`
		}
		if err := json.Unmarshal(env.Exit, &w); err != nil {
			return nil, &MessageError{RequestID: id, Err: fmt.Errorf("exit: %w", err)}
		}
		switch w.Tag {
		case "Success":
			return &Exit{RequestID: id, Success: true, Value: w.Value}, nil
		case "Failure":
			if w.Cause == nil {
				return nil, &MessageError{RequestID: id, Err: errors.New("exit failure without a cause")}
			}
			return &Exit{RequestID: id, Cause: w.Cause}, nil
		}
		return nil, &MessageError{RequestID: id, Err: fmt.Errorf("exit with unknown tag %q", w.Tag)}
	case "Defect":
		return &Defect{Defect: env.Defect}, nil
	case "Pong":
		return &Pong{}, nil
	}
	return nil, &MessageError{Tag: *env.Tag, Err: fmt.Errorf("%w %q", ErrUnknownTag, *env.Tag)}
}
