package syncproto_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

func encodeItems(t *testing.T, enc *syncproto.PageEncoder, events []syncproto.Event, createdAt []time.Time) [][]byte {
	t.Helper()
	items := make([][]byte, len(events))
	for i := range events {
		var err error
		if items[i], err = enc.Item(&events[i], createdAt[i%len(createdAt)]); err != nil {
			t.Fatal(err)
		}
	}
	return items
}

// A page assembled from items is the encoding of the PullResponse it
// stands for, whatever the page info, the backend id and the events'
// characters, and whether events share their createdAt or not.
func TestPageEncoderMatchesMarshal(t *testing.T) {
	events := chain(0, 5)
	events[1].Args = json.RawMessage(`{"text":"<b>&amp;</b> \u2028 ü 😀"}`)
	events[2].Name = "v1.Ünïcode"
	events[3].ClientID = `quote"back\slash`
	events[4].Args = nil
	times := []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 678_900_000, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.FixedZone("CET", 3600)),
		time.Date(1999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
	}
	for _, backend := range []string{"b1", `odd "backend" <id>`} {
		enc, err := syncproto.NewPageEncoder(backend)
		if err != nil {
			t.Fatal(err)
		}
		for _, shared := range []bool{true, false} {
			at := times
			if shared {
				at = times[:1]
			}
			items := encodeItems(t, enc, events, at)
			want := syncproto.PullResponse{BackendID: backend}
			for i, ev := range events {
				meta := &syncproto.SyncMetadata{CreatedAt: syncproto.FormatCreatedAt(at[i%len(at)])}
				want.Batch = append(want.Batch, syncproto.PullItem{Event: ev, Metadata: meta})
			}
			for _, info := range []syncproto.PageInfo{{Kind: syncproto.NoMore}, {Kind: syncproto.MoreUnknown}, {Kind: syncproto.MoreKnown, Remaining: 1234}} {
				want.PageInfo = info
				got := enc.Page(items, info)
				if w := mustMarshal(t, want); string(got) != w {
					t.Errorf("backend %q, shared %v, %v:\ngot  %s\nwant %s", backend, shared, info.Kind, got, w)
				}
				bound := enc.Overhead() + len(items) - 1
				for _, it := range items {
					bound += len(it)
				}
				if len(got) > bound {
					t.Errorf("page of %d bytes passes the bound of %d from Overhead", len(got), bound)
				}
			}
		}
		empty := syncproto.PullResponse{BackendID: backend, PageInfo: syncproto.PageInfo{Kind: syncproto.NoMore}}
		if got, w := string(enc.Page(nil, empty.PageInfo)), mustMarshal(t, empty); got != w {
			t.Errorf("empty page %s, want %s", got, w)
		}
	}
}

func TestFormatCreatedAt(t *testing.T) {
	for in, want := range map[time.Time]string{
		time.Date(2026, 1, 2, 3, 4, 5, 6_789_000, time.UTC):                      "2026-01-02T03:04:05.006Z",
		time.Date(2026, 1, 2, 0, 30, 0, 0, time.FixedZone("X", 2*3600)):          "2026-01-01T22:30:00.000Z",
		time.Date(2026, 12, 31, 23, 59, 59, 999_999_999, time.UTC):               "2026-12-31T23:59:59.999Z",
		time.Date(2025, 6, 7, 8, 9, 10, 0, time.FixedZone("Y", -(9*3600+30*60))): "2025-06-07T17:39:10.000Z",
	} {
		if got := syncproto.FormatCreatedAt(in); got != want {
			t.Errorf("FormatCreatedAt(%v) = %s, want %s", in, got, want)
		}
	}
}

// Pages cuts as the reference does: 100 events a page, fewer when the
// bytes run out, every page within the byte limit, and the page infos
// the caller computes from what has been sent.
func TestPageEncoderPages(t *testing.T) {
	enc, err := syncproto.NewPageEncoder("backend-1")
	if err != nil {
		t.Fatal(err)
	}
	at := []time.Time{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	remaining := func(sent, total int) syncproto.PageInfo {
		if sent == total {
			return syncproto.PageInfo{Kind: syncproto.NoMore}
		}
		return syncproto.PageInfo{Kind: syncproto.MoreKnown, Remaining: int64(total - sent)}
	}
	pages, err := enc.Pages(encodeItems(t, enc, chain(0, 250), at), remaining)
	if err != nil {
		t.Fatal(err)
	}
	if got := pageSizes(t, pages); fmt.Sprint(got) != "[100 100 50]" {
		t.Fatalf("pages of %v events", got)
	}

	big := chain(0, 120)
	for i := range big {
		big[i].Args = json.RawMessage(`{"text":"` + strings.Repeat("x", 20_000+i) + `"}`)
	}
	bigItems := encodeItems(t, enc, big, at)
	pages, err = enc.Pages(bigItems, remaining)
	if err != nil {
		t.Fatal(err)
	}
	next := int64(1)
	for i, p := range pages {
		if len(p) > syncproto.MaxPayloadBytes {
			t.Errorf("page %d has %d bytes", i, len(p))
		}
		res, err := syncproto.DecodePullResponse(p)
		if err != nil {
			t.Fatal(err)
		}
		size := enc.Overhead() - 1
		for _, it := range res.Batch {
			if it.Event.SeqNum != next {
				t.Fatalf("page %d: event %d, want %d", i, it.Event.SeqNum, next)
			}
			size += len(bigItems[next-1]) + 1
			next++
		}
		if want := remaining(int(next-1), len(big)); res.PageInfo != want {
			t.Errorf("page %d: info %+v, want %+v", i, res.PageInfo, want)
		}
		// A page is cut only where the next event would not have fitted.
		if i+1 < len(pages) && len(res.Batch) < syncproto.MaxEventsPerMessage && size+1+len(bigItems[next-1]) <= syncproto.MaxPayloadBytes {
			t.Errorf("page %d of %d events (%d bytes) was cut early", i, len(res.Batch), len(p))
		}
	}
	if next != int64(len(big))+1 {
		t.Fatalf("pages hold %d events, want %d", next-1, len(big))
	}

	huge := chain(0, 2)
	huge[1].Args = json.RawMessage(`"` + strings.Repeat("y", syncproto.MaxPayloadBytes) + `"`)
	var oe *syncproto.OversizeError
	if _, err := enc.Pages(encodeItems(t, enc, huge, at), remaining); !errors.As(err, &oe) || oe.Index != 1 {
		t.Fatalf("huge event: %v, want an OversizeError for item 1", err)
	}
}

func pageSizes(t *testing.T, pages [][]byte) []int {
	t.Helper()
	out := make([]int, len(pages))
	for i, p := range pages {
		res, err := syncproto.DecodePullResponse(p)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = len(res.Batch)
	}
	return out
}

// Merged pages are the page of all their items, with the last page's
// info, whatever the items hold.
func TestAppendMergedPage(t *testing.T) {
	events := chain(0, 6)
	events[1].Args = json.RawMessage(`{"text":"],\"pageInfo\":{} [\"batch\""}`)
	events[3].ClientID = `],"pageInfo":`
	enc, err := syncproto.NewPageEncoder(`backend "],"pageInfo":`)
	if err != nil {
		t.Fatal(err)
	}
	items := encodeItems(t, enc, events, []time.Time{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	noMore := syncproto.PageInfo{Kind: syncproto.NoMore}
	pages := [][]byte{enc.Page(items[:1], noMore), enc.Page(items[1:4], noMore), enc.Page(items[4:], noMore)}
	got, ok := syncproto.AppendMergedPage([]byte("x"), pages)
	if want := "x" + string(enc.Page(items, noMore)); !ok || string(got) != want {
		t.Fatalf("merged (ok %v):\n%s\nwant\n%s", ok, got, want)
	}
	if _, err := syncproto.DecodePullResponses([]byte("[" + string(got[1:]) + "]")); err != nil {
		t.Fatalf("merged page does not decode: %v", err)
	}
	chunk, ok := syncproto.AppendMergedChunk([]byte("x"), "7", pages)
	if want := "x" + string(syncproto.AppendChunk(nil, "7", enc.Page(items, noMore))); !ok || string(chunk) != want {
		t.Fatalf("merged chunk (ok %v):\n%s\nwant\n%s", ok, chunk, want)
	}
	if chunk, ok := syncproto.AppendMergedChunk([]byte("x"), "7", [][]byte{[]byte("{}")}); ok || string(chunk) != "x" {
		t.Fatalf("merged chunk of a non-page: %q, ok %v; want x unchanged, not ok", chunk, ok)
	}
	for _, bad := range [][][]byte{nil, {[]byte(`{"batch":[],"pageInfo":{"_tag":"NoMore"},"backendId":"b"}`)}, {pages[0], []byte(`{"other":1}`)}} {
		if got, ok := syncproto.AppendMergedPage([]byte("x"), bad); ok || string(got) != "x" {
			t.Errorf("merging %q: got %q, ok %v; want x unchanged, not ok", bad, got, ok)
		}
	}
}
