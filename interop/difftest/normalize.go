package difftest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// longString is the length above which a string is replaced by its length
// and hash, keeping transcripts of large payloads readable.
const longString = 256

var expZeros = regexp.MustCompile(`e([+-])0+`)

var isoTime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

// normalize turns a received item into a Message whose Text is stable across
// runs and servers. It learns backend ids from pull pages and mismatch errors
// of c's store as a side effect.
func (r *run) normalize(c *conn, item received) Message {
	if item.closed != nil {
		return Message{Closed: true, Text: fmt.Sprintf("%q", closeText(item.closed))}
	}
	v, err := decodeJSON(item.data)
	if err != nil {
		return Message{Tag: "(not JSON)", Text: fmt.Sprintf("%q", "@text "+string(item.data))}
	}
	r.learnBackendIDs(c.store, v)
	var notes []string
	v = r.rewrite("", v, &notes)

	m := Message{Text: marshal(v), Notes: notes}
	if o, ok := v.(map[string]any); ok {
		m.Tag, _ = o["_tag"].(string)
		m.RequestID, _ = o["requestId"].(string)
	}
	return m
}

// normalizeSent is how a sent message appears in the transcript: as written
// in the script, with long strings shortened like received ones.
func (r *run) normalizeSent(text string) string {
	v, err := decodeJSON([]byte(text))
	if err != nil || len(text) <= longString {
		if len(text) > 4*longString {
			return fmt.Sprintf("%q", shorten(text))
		}
		return text
	}
	var notes []string
	return marshal(shortenStrings(v, &notes))
}

func decodeJSON(data []byte) (any, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value")
	}
	return v, nil
}

// learnBackendIDs records the backend id of store from the places a server
// states its own: pull pages and BackendIdMismatchError.expected.
func (r *run) learnBackendIDs(store string, v any) {
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if tag, _ := x["_tag"].(string); tag == "BackendIdMismatchError" {
				if id, ok := x["expected"].(string); ok {
					r.learnBackend(store, id)
				}
			}
			if _, isPage := x["pageInfo"]; isPage {
				if id, ok := x["backendId"].(string); ok {
					r.learnBackend(store, id)
				}
			}
			for k, e := range x {
				walk(k, e)
			}
		case []any:
			for _, e := range x {
				walk(key, e)
			}
		}
	}
	walk("", v)
}

func (r *run) learnBackend(store, id string) {
	if _, known := r.backends[id]; known {
		return
	}
	sym := store
	for n := 2; ; n++ { // a second id for one store (server reset) gets its own name
		if _, taken := r.symBack[sym]; !taken {
			break
		}
		sym = store + "v" + strconv.Itoa(n)
	}
	r.backends[id] = sym
	r.symBack[sym] = id
}

// rewrite replaces run-specific and implementation-specific values by
// tokens; key is v's key in its parent. Free-form texts that are replaced
// (error causes, defects) are appended to notes.
func (r *run) rewrite(key string, v any, notes *[]string) any {
	if key == "fiberId" {
		return "@fiberId"
	}
	switch x := v.(type) {
	case map[string]any:
		switch tag, _ := x["_tag"].(string); {
		case (tag == "Sequential" || tag == "Parallel" || tag == "Interrupt") && onlyInterrupts(x):
			// Effect's shape of an interruption cause is incidental.
			return map[string]any{"_tag": "Interrupt", "fiberId": "@fiberId"}
		case tag == "Die" || (tag == "Defect" && key == ""):
			*notes = append(*notes, "defect: "+r.noteText(x["defect"]))
			return map[string]any{"_tag": tag, "defect": "@defect"}
		case tag == "UnknownError":
			*notes = append(*notes, "UnknownError: "+r.noteText(x))
			return map[string]any{"_tag": tag, "cause": "@cause"}
		}
		for k, e := range x {
			x[k] = r.rewrite(k, e, notes)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = r.rewrite(key, e, notes)
		}
		return x
	case json.Number:
		return canonicalNumber(x)
	case string:
		switch key {
		case "createdAt":
			if isoTime.MatchString(x) {
				return "@createdAt"
			}
		case "traceId", "spanId":
			return "@" + key
		}
		if sym, ok := r.backends[x]; ok {
			return BackendID(sym)
		}
		if strings.Contains(x, r.prefix+"_") {
			x = storeIDRE(r.prefix).ReplaceAllString(x, "@storeId($1)")
		}
		return shorten(x)
	default:
		return x
	}
}

// onlyInterrupts reports whether a cause tree holds interruptions and nothing else.
func onlyInterrupts(cause map[string]any) bool {
	found := false
	var walk func(v any) bool
	walk = func(v any) bool {
		c, ok := v.(map[string]any)
		if !ok {
			return false
		}
		switch c["_tag"] {
		case "Empty":
			return true
		case "Interrupt":
			found = true
			return true
		case "Sequential", "Parallel":
			return walk(c["left"]) && walk(c["right"])
		}
		return false
	}
	return walk(cause) && found
}

// noteText renders a replaced value for a golden-file note, on one line.
func (r *run) noteText(v any) string {
	s, ok := v.(string)
	if !ok {
		s = marshal(v)
	}
	s = storeIDRE(r.prefix).ReplaceAllString(s, "@storeId($1)")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

// shortenStrings applies shorten to every string inside v.
func shortenStrings(v any, notes *[]string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = shortenStrings(e, notes)
		}
	case []any:
		for i, e := range x {
			x[i] = shortenStrings(e, notes)
		}
	case string:
		return shorten(x)
	}
	return v
}

// shorten replaces a string longer than longString by its length and hash.
func shorten(s string) string {
	if len(s) <= longString {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return fmt.Sprintf("@string(len=%d sha256=%s)", len(s), hex.EncodeToString(sum[:8]))
}

// canonicalNumber spells a number as JavaScript's JSON.stringify does for the
// same double, so that 1.0, 1e0 and 1 compare equal: every JS client reads
// them alike, and the reference re-encodes numbers that way itself.
func canonicalNumber(n json.Number) any {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return n
	}
	if f == 0 {
		return json.Number("0") // JSON.stringify(-0) is "0"
	}
	if a := math.Abs(f); a >= 1e21 || a < 1e-6 {
		s := strconv.FormatFloat(f, 'e', -1, 64) // "1e-07"; JS writes "1e-7"
		return json.Number(expZeros.ReplaceAllString(s, "e$1"))
	}
	return json.Number(strconv.FormatFloat(f, 'f', -1, 64))
}

func storeIDRE(prefix string) *regexp.Regexp {
	return regexp.MustCompile(regexp.QuoteMeta(prefix) + `_([A-Za-z0-9]+)`)
}

// marshal encodes v compactly with sorted keys and without HTML escaping.
func marshal(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprintf("%q", fmt.Sprint(v))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// sortMessages orders the messages of one step so that only the order within
// a request matters: first those without a request id (Pong, Defect) in
// arrival order, then by request id, then a close.
func sortMessages(ms []Message) []Message {
	out := append([]Message(nil), ms...)
	rank := func(m Message) int {
		switch {
		case m.Closed:
			return 2
		case m.RequestID == "":
			return 0
		default:
			return 1
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra < rb
		}
		if a.RequestID == b.RequestID {
			return false
		}
		na, errA := strconv.ParseUint(a.RequestID, 10, 64)
		nb, errB := strconv.ParseUint(b.RequestID, 10, 64)
		if errA == nil && errB == nil {
			return na < nb
		}
		return a.RequestID < b.RequestID
	})
	return out
}
