package syncproto

import (
	"unicode/utf8"
)

// The fast paths below decode, in one pass and without reflection, the
// messages clients send most and that the server decodes for every push:
// Request envelopes and push payloads of the usual shape (known keys, each
// once, in any order; strings without escapes; integers as integers). They
// decide nothing themselves: on anything else they give up, and the general
// decoder (encoding/json) decodes the message, with its errors. Where they
// succeed they return what the general decoder returns (see
// FuzzFastDecode).

// maxFastDepth bounds the nesting the fast paths follow; deeper values are
// left to the general decoder.
const maxFastDepth = 256

// fastScanner reads one JSON text.
type fastScanner struct {
	b      []byte
	i      int
	spaced bool // whether space between tokens has been skipped
}

func (s *fastScanner) space() {
	i := s.i
	for i < len(s.b) {
		if c := s.b[i]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			break
		}
		i++
	}
	if i != s.i {
		s.i, s.spaced = i, true
	}
}

// next skips space and consumes c if it comes next.
func (s *fastScanner) next(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// end reports whether only space is left.
func (s *fastScanner) end() bool {
	s.space()
	return s.i == len(s.b)
}

// plainString reads a string without escapes or control characters and
// returns its contents.
func (s *fastScanner) plainString() ([]byte, bool) {
	if !s.next('"') {
		return nil, false
	}
	start, i := s.i, s.i
	for i < len(s.b) {
		c := s.b[i]
		if c == '"' {
			s.i = i + 1
			return s.b[start:i], true
		}
		if c == '\\' || c < 0x20 {
			return nil, false
		}
		i++
	}
	return nil, false
}

// int64 reads an integer written as one (no fraction or exponent) that
// fits an int64.
func (s *fastScanner) int64() (int64, bool) {
	s.space()
	neg := s.i < len(s.b) && s.b[s.i] == '-'
	if neg {
		s.i++
	}
	start := s.i
	var n uint64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		if s.i-start >= 18 {
			return 0, false // may overflow: leave it to the general decoder
		}
		n = n*10 + uint64(s.b[s.i]-'0')
		s.i++
	}
	digits := s.i - start
	if digits == 0 || digits > 1 && s.b[start] == '0' {
		return 0, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}

// value reads any JSON value, checking its syntax, and returns its text.
func (s *fastScanner) value() ([]byte, bool) {
	s.space()
	start := s.i
	if !s.skipValue(0) {
		return nil, false
	}
	return s.b[start:s.i], true
}

func (s *fastScanner) skipValue(depth int) bool {
	if depth > maxFastDepth || s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		s.i++
		return s.list('}', func() bool {
			s.space()
			if !s.skipString() || !s.next(':') {
				return false
			}
			s.space()
			return s.skipValue(depth + 1)
		})
	case c == '[':
		s.i++
		return s.list(']', func() bool {
			s.space()
			return s.skipValue(depth + 1)
		})
	case c == '"':
		return s.skipString()
	case c == '-' || c >= '0' && c <= '9':
		return s.skipNumber()
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
				s.i += len(lit)
				return true
			}
		}
		return false
	}
}

// skipString reads a string, checking its escapes.
func (s *fastScanner) skipString() bool {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return false
	}
	b, i := s.b, s.i+1
	for {
		// The run of plain bytes, in a local index: the common case.
		for i < len(b) && b[i] >= 0x20 && b[i] != '"' && b[i] != '\\' {
			i++
		}
		if i >= len(b) || b[i] < 0x20 {
			return false
		}
		if b[i] == '"' {
			s.i = i + 1
			return true
		}
		// An escape.
		if i+1 >= len(b) {
			return false
		}
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(b) {
				return false
			}
			for _, h := range b[i+2 : i+6] {
				if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
					return false
				}
			}
			i += 6
		default:
			return false
		}
	}
}

// skipNumber reads a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *fastScanner) skipNumber() bool {
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if digits() == 0 {
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// list reads the items of an object or array, after its opening bracket,
// up to close; item reads one and returns false to give up.
func (s *fastScanner) list(close byte, item func() bool) bool {
	if s.next(close) {
		return true
	}
	for {
		if !item() {
			return false
		}
		if s.next(close) {
			return true
		}
		if !s.next(',') {
			return false
		}
	}
}

// object reads an object whose keys are plain strings, calling field for
// each key to read its value; field returns false to give up.
func (s *fastScanner) object(field func(key []byte) bool) bool {
	if !s.next('{') {
		return false
	}
	return s.list('}', func() bool {
		key, ok := s.plainString()
		return ok && s.next(':') && field(key)
	})
}

// fields records which fields of an object were read.
type fields uint8

// first marks the field of bit as read, and reports whether it was not
// read before.
func (f *fields) first(bit fields) bool {
	if *f&bit != 0 {
		return false
	}
	*f |= bit
	return true
}

// fastRequest decodes a Request envelope of the usual shape; ok is false
// for anything else, including invalid UTF-8.
func fastRequest(data []byte) (req *Request, ok bool) {
	if !utf8.Valid(data) {
		return nil, false
	}
	s := &fastScanner{b: data}
	req = &Request{}
	var seen fields
	once := seen.first
	ok = s.object(func(key []byte) bool {
		switch string(key) {
		case "_tag":
			tag, ok := s.plainString()
			return once(1) && ok && string(tag) == "Request"
		case "id":
			id, ok := s.plainString()
			req.ID = string(id)
			return once(2) && ok
		case "tag":
			tag, ok := s.plainString()
			req.Tag = string(tag)
			return once(4) && ok
		case "payload":
			raw, ok := s.value()
			req.Payload = append([]byte(nil), raw...)
			return once(8) && ok
		case "headers":
			if !once(16) {
				return false
			}
			if s.next('[') && s.next(']') {
				req.Headers = [][2]string{}
				return true
			}
			return false
		case "traceId", "spanId":
			v, ok := s.plainString()
			if key[0] == 't' {
				req.TraceID = string(v)
				return once(32) && ok
			}
			req.SpanID = string(v)
			return once(64) && ok
		case "sampled":
			raw, ok := s.value()
			if !once(128) || !ok || string(raw) != "true" && string(raw) != "false" {
				return false
			}
			b := string(raw) == "true"
			req.Sampled = &b
			return true
		}
		return false
	})
	if !ok || !s.end() || seen&7 != 7 {
		return nil, false
	}
	return req, true
}

// fastPushRequest decodes a push payload of the usual shape; ok is false for
// anything else. Like the general decoder, it keeps no reference to raw.
func fastPushRequest(raw []byte) (p PushRequest, ok bool) {
	if !utf8.Valid(raw) {
		return PushRequest{}, false
	}
	s := &fastScanner{b: append([]byte(nil), raw...)}
	var seen fields
	once := seen.first
	ok = s.object(func(key []byte) bool {
		switch string(key) {
		case "storeId":
			id, ok := s.plainString()
			p.StoreID = string(id)
			return once(1) && ok
		case "payload":
			v, ok := s.value()
			p.Payload = nullToNil(v)
			return once(2) && ok
		case "batch":
			p.Batch = []Event{}
			return once(4) && s.events(&p.Batch)
		case "backendId":
			return once(8) && s.optionString(&p.BackendID)
		}
		return false
	})
	if !ok || !s.end() || seen&(1|4|8) != 1|4|8 {
		return PushRequest{}, false
	}
	return p, true
}

// events reads an array of events with all their fields.
func (s *fastScanner) events(out *[]Event) bool {
	if !s.next('[') {
		return false
	}
	// Events of a batch mostly share names, clients and sessions: their
	// strings are shared too.
	var prev Event
	str := func(v []byte, last string) string {
		if string(v) == last {
			return last
		}
		return string(v)
	}
	return s.list(']', func() bool {
		var ev Event
		var seen fields
		ok := s.object(func(key []byte) bool {
			var bit fields
			var ok bool
			switch string(key) {
			case "name":
				var v []byte
				v, ok = s.plainString()
				ev.Name, bit = str(v, prev.Name), 1
			case "args":
				ev.Args, ok = s.value()
				bit = 2
			case "seqNum":
				ev.SeqNum, ok = s.int64()
				bit = 4
			case "parentSeqNum":
				ev.ParentSeqNum, ok = s.int64()
				bit = 8
			case "clientId":
				var v []byte
				v, ok = s.plainString()
				ev.ClientID, bit = str(v, prev.ClientID), 16
			case "sessionId":
				var v []byte
				v, ok = s.plainString()
				ev.SessionID, bit = str(v, prev.SessionID), 32
			}
			return ok && seen.first(bit)
		})
		if !ok || seen|2 != 63 {
			return false
		}
		*out = append(*out, ev)
		prev = ev
		return true
	})
}

// optionString reads an Option of a string: {"_tag":"None"} or
// {"_tag":"Some","value":"…"}.
func (s *fastScanner) optionString(out **string) bool {
	var tag, value []byte
	var hasTag, hasValue bool
	ok := s.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "_tag":
			if hasTag {
				return false
			}
			tag, ok = s.plainString()
			hasTag = true
		case "value":
			if hasValue {
				return false
			}
			value, ok = s.plainString()
			hasValue = true
		}
		return ok
	})
	switch {
	case !ok || !hasTag:
		return false
	case string(tag) == "None" && !hasValue:
		*out = nil
		return true
	case string(tag) == "Some" && hasValue:
		v := string(value)
		*out = &v
		return true
	}
	return false
}
