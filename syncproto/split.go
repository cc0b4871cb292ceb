package syncproto

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Marshal encodes v as JSON the way the reference (JSON.stringify) does:
// without escaping <, > and &, and without a trailing newline. Use it for
// every message sent, so that byte sizes measured for splitting match what is
// sent.
func Marshal(v any) ([]byte, error) {
	return marshal(v)
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return b[:len(b)-1], nil
}

// OversizeError reports a single item that alone exceeds the byte limit of a
// message, so no split can carry it.
type OversizeError struct {
	Index    int // position of the item in the input
	Size     int // encoded size of a message holding only that item
	MaxBytes int
}

func (e *OversizeError) Error() string {
	return fmt.Sprintf("item %d needs a message of %d bytes, more than the limit of %d", e.Index, e.Size, e.MaxBytes)
}

// Split cuts items into consecutive pages of at most maxItems items, each
// fitting a message of at most maxBytes bytes. The message for a page is a
// JSON wrapper whose encoding with an empty array is overhead bytes long; each
// item adds size(item) bytes plus one comma between items. That arithmetic is
// exact for a wrapper holding one JSON array, which is what both push payloads
// and pull pages are. An empty input gives no pages.
func Split[T any](items []T, maxItems, maxBytes, overhead int, size func(T) (int, error)) ([][]T, error) {
	maxItems = max(maxItems, 1)
	var (
		pages [][]T
		start int
		bytes = overhead
	)
	for i, it := range items {
		n, err := size(it)
		if err != nil {
			return nil, fmt.Errorf("measure item %d: %w", i, err)
		}
		if overhead+n > maxBytes {
			return nil, &OversizeError{Index: i, Size: overhead + n, MaxBytes: maxBytes}
		}
		count := i - start
		next := bytes + n
		if count > 0 {
			next++ // comma
		}
		if count == maxItems || next > maxBytes {
			pages = append(pages, items[start:i:i])
			start, next = i, overhead+n
		}
		bytes = next
	}
	if start < len(items) {
		pages = append(pages, items[start:len(items):len(items)])
	}
	return pages, nil
}

// SplitPush cuts a batch into the push requests the reference client sends:
// at most [MaxEventsPerMessage] events and [MaxPayloadBytes] bytes of encoded
// push payload each. An event too large for any request gives an
// *[OversizeError].
func SplitPush(batch []Event, storeID string, payload json.RawMessage, backendID *string) ([][]Event, error) {
	empty, err := AppendPushRequest(nil, &PushRequest{StoreID: storeID, Payload: payload, BackendID: backendID})
	if err != nil {
		return nil, fmt.Errorf("split push: %w", err)
	}
	var scratch []byte
	size := func(e Event) (int, error) {
		var err error
		scratch, err = AppendEvent(scratch[:0], &e)
		return len(scratch), err
	}
	return Split(batch, MaxEventsPerMessage, MaxPayloadBytes, len(empty), size)
}
