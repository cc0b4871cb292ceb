package syncproto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// The encoders in this file write the bytes encoding/json writes for the
// same values (with HTML escaping off, as marshal does), in one pass and
// without reflection: a client encodes every event it pushes, and
// encoding/json, which re-validates the output of each MarshalJSON it calls,
// walks the bytes of a push several times over.

// AppendEvent appends the JSON encoding of e to dst. Its args must be valid
// JSON (or empty, encoded as null); they are written compacted.
func AppendEvent(dst []byte, e *Event) ([]byte, error) {
	dst = append(dst, `{"name":`...)
	dst = appendString(dst, e.Name)
	dst = append(dst, `,"args":`...)
	dst, err := appendRaw(dst, e.Args)
	if err != nil {
		return dst, fmt.Errorf("event %s args: %w", strconv.Quote(e.Name), err)
	}
	dst = append(dst, `,"seqNum":`...)
	dst = strconv.AppendInt(dst, e.SeqNum, 10)
	dst = append(dst, `,"parentSeqNum":`...)
	dst = strconv.AppendInt(dst, e.ParentSeqNum, 10)
	dst = append(dst, `,"clientId":`...)
	dst = appendString(dst, e.ClientID)
	dst = append(dst, `,"sessionId":`...)
	dst = appendString(dst, e.SessionID)
	return append(dst, '}'), nil
}

// AppendPushRequest appends the JSON encoding of p (the payload of a
// [TagPush] request) to dst.
func AppendPushRequest(dst []byte, p *PushRequest) ([]byte, error) {
	dst, err := appendPushHead(dst, p.StoreID, p.Payload)
	if err != nil {
		return dst, err
	}
	for i := range p.Batch {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, err = AppendEvent(dst, &p.Batch[i]); err != nil {
			return dst, err
		}
	}
	return appendPushTail(dst, p.BackendID), nil
}

// appendPushHead appends a push payload up to the first event.
func appendPushHead(dst []byte, storeID string, payload json.RawMessage) ([]byte, error) {
	dst = append(dst, `{"storeId":`...)
	dst = appendString(dst, storeID)
	if len(payload) > 0 {
		var err error
		dst = append(dst, `,"payload":`...)
		if dst, err = appendRaw(dst, payload); err != nil {
			return dst, fmt.Errorf("push payload: %w", err)
		}
	}
	return append(dst, `,"batch":[`...), nil
}

// appendPushTail appends a push payload after the last event.
func appendPushTail(dst []byte, backendID *string) []byte {
	dst = append(dst, `],"backendId":`...)
	if backendID == nil {
		dst = append(dst, `{"_tag":"None"}`...)
	} else {
		dst = append(dst, `{"_tag":"Some","value":`...)
		dst = appendString(dst, *backendID)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// EncodePush encodes batch as the payloads of the push requests
// [SplitPush] cuts it into, encoding each event once: what a client sends
// for one push.
func EncodePush(batch []Event, storeID string, payload json.RawMessage, backendID *string) ([][]byte, error) {
	size := 64 + len(storeID) + len(payload)
	for i := range batch {
		e := &batch[i]
		size += 96 + len(e.Name) + len(e.Args) + len(e.ClientID) + len(e.SessionID)
	}
	// buf holds the head and the events, comma-separated: the whole payload
	// but its tail when the batch fits one request.
	buf, err := appendPushHead(make([]byte, 0, size), storeID, payload)
	if err != nil {
		return nil, fmt.Errorf("encode push: %w", err)
	}
	head := len(buf)
	overhead := head + len(appendPushTail(nil, backendID))
	ends := make([]int, len(batch)) // where each event's encoding ends in buf
	for i := range batch {
		if i > 0 {
			buf = append(buf, ',')
		}
		if buf, err = AppendEvent(buf, &batch[i]); err != nil {
			return nil, fmt.Errorf("encode push: %w", err)
		}
		ends[i] = len(buf)
	}
	start := func(i int) int {
		if i == 0 {
			return head
		}
		return ends[i-1] + 1
	}
	index := make([]int, len(batch))
	for i := range index {
		index[i] = i
	}
	parts, err := Split(index, MaxEventsPerMessage, MaxPayloadBytes, overhead, func(i int) (int, error) { return ends[i] - start(i), nil })
	if err != nil {
		return nil, fmt.Errorf("encode push: %w", err)
	}
	if len(parts) == 1 {
		return [][]byte{appendPushTail(buf, backendID)}, nil
	}
	out := make([][]byte, len(parts))
	for k, part := range parts {
		from, to := start(part[0]), ends[part[len(part)-1]]
		b := make([]byte, 0, overhead+to-from)
		b = append(b, buf[:head]...)
		b = append(b, buf[from:to]...)
		out[k] = appendPushTail(b, backendID)
	}
	return out, nil
}

// AppendRequest appends the JSON encoding of the Request envelope r to dst.
func AppendRequest(dst []byte, r *Request) ([]byte, error) {
	dst = appendRequestHead(dst, r)
	dst, err := appendRaw(dst, r.Payload)
	if err != nil {
		return dst, fmt.Errorf("request payload: %w", err)
	}
	return appendRequestTail(dst, r), nil
}

// AppendEncodedRequest is [AppendRequest] for a payload this package
// encoded ([Marshal], [AppendPushRequest], [EncodePush]): compact, valid
// JSON, which it copies without checking it again.
func AppendEncodedRequest(dst []byte, r *Request) []byte {
	dst = appendRequestHead(dst, r)
	if len(r.Payload) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, r.Payload...)
	}
	return appendRequestTail(dst, r)
}

func appendRequestHead(dst []byte, r *Request) []byte {
	dst = append(dst, `{"_tag":"Request","id":`...)
	dst = appendString(dst, r.ID)
	dst = append(dst, `,"tag":`...)
	dst = appendString(dst, r.Tag)
	return append(dst, `,"payload":`...)
}

func appendRequestTail(dst []byte, r *Request) []byte {
	dst = append(dst, `,"headers":[`...)
	for i, h := range r.Headers {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '[')
		dst = appendString(dst, h[0])
		dst = append(dst, ',')
		dst = appendString(dst, h[1])
		dst = append(dst, ']')
	}
	dst = append(dst, ']')
	if r.TraceID != "" {
		dst = append(dst, `,"traceId":`...)
		dst = appendString(dst, r.TraceID)
	}
	if r.SpanID != "" {
		dst = append(dst, `,"spanId":`...)
		dst = appendString(dst, r.SpanID)
	}
	if r.Sampled != nil {
		dst = append(dst, `,"sampled":`...)
		dst = strconv.AppendBool(dst, *r.Sampled)
	}
	return append(dst, '}')
}

// appendRaw appends raw JSON compacted, as encoding/json writes a
// json.RawMessage: null when empty, an error when not valid JSON. Text
// that is already compact (what encoders write) is checked in one pass and
// copied; anything else goes through json.Compact.
func appendRaw(dst []byte, raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 {
		return append(dst, "null"...), nil
	}
	if s := (fastScanner{b: raw}); s.skipValue(0) && s.i == len(raw) && !s.spaced {
		return append(dst, raw...), nil
	}
	buf := bytes.NewBuffer(dst)
	if err := json.Compact(buf, raw); err != nil {
		return dst, err
	}
	return buf.Bytes(), nil
}

// appendString appends s as a JSON string. Strings of printable ASCII
// without quotes or backslashes, which is what names and ids are, are
// copied; anything else is left to encoding/json, whose escapes (of control
// characters, U+2028, U+2029 and invalid UTF-8) it then matches.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b, _ := marshal(s) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
