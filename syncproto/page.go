package syncproto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// FormatCreatedAt renders t as the reference renders the createdAt of
// [SyncMetadata] (JavaScript's Date.prototype.toISOString): UTC, millisecond
// precision, "Z" suffix.
func FormatCreatedAt(t time.Time) string {
	return string(appendCreatedAt(nil, t))
}

func appendCreatedAt(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
}

// PageEncoder writes the pull pages ([PullResponse]) of one backend, byte for
// byte as [Marshal] writes them, from events encoded once. A server encodes
// each event as an item ([PageEncoder.Item]), groups items into pages (with
// [PageEncoder.Pages], or by its own reading loop keeping
// [PageEncoder.Overhead] plus the items and a comma between each two within
// [MaxPayloadBytes]) and assembles each page around its items
// ([PageEncoder.Page]). A page's bytes can then be sent to many clients (see
// [AppendChunk]).
//
// A PageEncoder is not safe for concurrent use: it keeps the metadata of
// the last item, which the events of one batch share.
type PageEncoder struct {
	backendJSON []byte
	overhead    int

	meta       []byte // encoded metadata of metaMillis
	metaMillis int64
}

// longestPageInfo is the longest encoded [PageInfo]: a page is measured with
// it so that any page info set afterwards fits.
const longestPageInfo = `{"_tag":"MoreKnown","remaining":9007199254740992}`

// NewPageEncoder returns an encoder of pages of backendID.
func NewPageEncoder(backendID string) (*PageEncoder, error) {
	backendJSON, err := marshal(backendID)
	if err != nil {
		return nil, fmt.Errorf("encode backend id: %w", err)
	}
	return &PageEncoder{
		backendJSON: backendJSON,
		overhead:    len(`{"batch":[],"pageInfo":,"backendId":}`) + len(longestPageInfo) + len(backendJSON),
		metaMillis:  -1,
	}, nil
}

// Overhead is the size of a page without items, measured with the longest
// page info: a page of items i1…in is at most Overhead + len(i1) + … +
// len(in) + n-1 bytes long.
func (e *PageEncoder) Overhead() int { return e.overhead }

// Item encodes one element of a page's batch: ev with the metadata of a
// batch stored at createdAt ([FormatCreatedAt]), as [PullItem] encodes it.
func (e *PageEncoder) Item(ev *Event, createdAt time.Time) ([]byte, error) {
	if ms := createdAt.UnixMilli(); ms != e.metaMillis || e.meta == nil {
		m := append(make([]byte, 0, 80), `{"_tag":"SyncMessage.SyncMetadata","createdAt":"`...)
		m = appendCreatedAt(m, createdAt)
		e.meta, e.metaMillis = append(m, `"}`...), ms
	}
	evJSON, err := marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode event %d: %w", ev.SeqNum, err)
	}
	b := make([]byte, 0, len(evJSON)+len(e.meta)+60)
	b = append(b, `{"eventEncoded":`...)
	b = append(b, evJSON...)
	b = append(b, `,"metadata":{"_tag":"Some","value":`...)
	b = append(b, e.meta...)
	return append(b, "}}"...), nil
}

// Page assembles a [PullResponse] around encoded items.
func (e *PageEncoder) Page(items [][]byte, info PageInfo) []byte {
	size := e.overhead
	for _, it := range items {
		size += len(it) + 1
	}
	b := make([]byte, 0, size)
	b = append(b, `{"batch":[`...)
	for j, it := range items {
		if j > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	b = append(b, `],"pageInfo":`...)
	b = appendPageInfo(b, info)
	b = append(b, `,"backendId":`...)
	b = append(b, e.backendJSON...)
	return append(b, '}')
}

// Pages cuts items into pages as the reference server does (at most
// [MaxEventsPerMessage] items and [MaxPayloadBytes] bytes each, see [Split])
// and assembles them; info gives the page info of the page after which sent
// of the len(items) items have been sent. An item too large for any page
// gives an *[OversizeError].
func (e *PageEncoder) Pages(items [][]byte, info func(sent, total int) PageInfo) ([][]byte, error) {
	split, err := Split(items, MaxEventsPerMessage, MaxPayloadBytes, e.overhead, func(b []byte) (int, error) { return len(b), nil })
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(split))
	sent := 0
	for i, page := range split {
		sent += len(page)
		out[i] = e.Page(page, info(sent, len(items)))
	}
	return out, nil
}

func appendPageInfo(dst []byte, p PageInfo) []byte {
	switch p.Kind {
	case MoreKnown:
		dst = append(dst, `{"_tag":"MoreKnown","remaining":`...)
		return append(strconv.AppendInt(dst, p.Remaining, 10), '}')
	case MoreUnknown:
		return append(dst, `{"_tag":"MoreUnknown"}`...)
	default:
		return append(dst, `{"_tag":"NoMore"}`...)
	}
}

// pushAccepted is the value of a successful push's Exit.
var pushAccepted = json.RawMessage(`{}`)

// ExitPushed returns the Exit answering a push that was stored: Success
// with the value {}.
func ExitPushed(requestID string) *Exit { return ExitSuccess(requestID, pushAccepted) }

// StringDefect returns a Defect whose defect is the string msg, as the
// reference reports a message it cannot route to a request.
func StringDefect(msg string) *Defect {
	b, _ := marshal(msg) // a string always encodes
	return &Defect{Defect: b}
}

// pagePrefix begins every encoded page; pageInfoKey follows its items.
const (
	pagePrefix  = `{"batch":[`
	pageInfoKey = `],"pageInfo":`
)

// AppendMergedPage appends to dst one page holding the items of pages, in
// order, with the page info and backend id of the last. The pages must be
// pages as [PageEncoder.Page] writes them, each with at least one item;
// ok is false (and dst returned unchanged) for anything else. Merging
// live pages that wait for the same client lets a server send them as one
// message; the caller keeps the merged page within [MaxEventsPerMessage]
// and [MaxPayloadBytes].
func AppendMergedPage(dst []byte, pages [][]byte) (out []byte, ok bool) {
	start := len(dst)
	dst = append(dst, pagePrefix...)
	for i, page := range pages {
		end := bytes.LastIndex(page, []byte(pageInfoKey))
		if !bytes.HasPrefix(page, []byte(pagePrefix)) || end <= len(pagePrefix) {
			return dst[:start], false
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, page[len(pagePrefix):end]...)
		if i == len(pages)-1 {
			dst = append(dst, page[end:]...)
		}
	}
	if len(pages) == 0 {
		return dst[:start], false
	}
	return dst, true
}
