package devtools_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/devtools"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// largeEvents returns a storage whose store "big" holds n events with args
// of size bytes each.
func largeEvents(t *testing.T, n, size int) *sqlitestore.Store {
	t.Helper()
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	text := strings.Repeat("<", size/6) // six bytes each as JSON
	for i := 0; i < n; {
		var batch []syncproto.Event
		for ; i < n && len(batch) < 10; i++ {
			batch = append(batch, syncproto.Event{Name: "v1.Big", Args: json.RawMessage(fmt.Sprintf(`{"i":%d,"text":%q}`, i+1, text)),
				SeqNum: int64(i + 1), ParentSeqNum: int64(i), ClientID: "c", SessionID: "s"})
		}
		if err := st.Append(context.Background(), "big", batch, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

type eventsPage struct {
	Events []struct {
		SeqNum      int64           `json:"seqNum"`
		Args        json.RawMessage `json:"args"`
		ArgsOmitted string          `json:"argsOmitted"`
	} `json:"events"`
	More      bool  `json:"more"`
	NextAfter int64 `json:"nextAfter"`
	Truncated bool  `json:"truncated"`
}

// get returns the body of a GET that must answer 200, and how many bytes
// the process allocated meanwhile.
func get(t *testing.T, url string) ([]byte, uint64) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	runtime.ReadMemStats(&after)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return body, after.TotalAlloc - before.TotalAlloc
}

func TestEventsResponseBounded(t *testing.T) {
	st := largeEvents(t, 20, 400_000)
	srv := httptest.NewServer(devtools.ServerHandler(st, devtools.Options{}))
	t.Cleanup(srv.Close)
	var seen []int64
	after := int64(0)
	for page := 0; page < 60; page++ {
		body, alloc := get(t, fmt.Sprintf("%s/api/stores/big/events?after=%d&limit=1000", srv.URL, after))
		if len(body) > devtools.DefaultMaxAnswerBytes {
			t.Fatalf("page %d: %d bytes, over %d", page, len(body), devtools.DefaultMaxAnswerBytes)
		}
		// The response, the chunk of events read and their encodings.
		if alloc > 32<<20 {
			t.Fatalf("page %d: %d bytes allocated", page, alloc)
		}
		var p eventsPage
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		if page == 0 {
			t.Logf("20 events of 400 KB as JSON: first page %d bytes, %d events, %.1f MiB allocated", len(body), len(p.Events), float64(alloc)/(1<<20))
		}
		for _, e := range p.Events {
			seen = append(seen, e.SeqNum)
			if e.ArgsOmitted != "" || len(e.Args) == 0 {
				t.Fatalf("event %d without args", e.SeqNum)
			}
		}
		if !p.More {
			break
		}
		if !p.Truncated || len(p.Events) == 0 || p.NextAfter != seen[len(seen)-1] {
			t.Fatalf("page %d: %d events, truncated %v, nextAfter %d", page, len(p.Events), p.Truncated, p.NextAfter)
		}
		after = p.NextAfter
	}
	if len(seen) != 20 || seen[0] != 1 || seen[19] != 20 {
		t.Fatalf("read %v", seen)
	}
}

func TestEventLargerThanResponse(t *testing.T) {
	st := largeEvents(t, 3, 1_500_000)
	srv := httptest.NewServer(devtools.ServerHandler(st, devtools.Options{MaxAnswerBytes: 64 << 10}))
	t.Cleanup(srv.Close)
	body, _ := get(t, srv.URL+"/api/stores/big/events")
	var p eventsPage
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if len(body) > 64<<10 || len(p.Events) != 1 || p.Events[0].SeqNum != 1 || !strings.Contains(p.Events[0].ArgsOmitted, "more than a response holds") ||
		!p.More || !p.Truncated || p.NextAfter != 1 {
		t.Fatalf("%d bytes: %s", len(body), body[:min(len(body), 400)])
	}
	// The rest of a short page: limit reached, more known without truncation.
	srv2 := httptest.NewServer(devtools.ServerHandler(largeEvents(t, 5, 100), devtools.Options{}))
	t.Cleanup(srv2.Close)
	body, _ = get(t, srv2.URL+"/api/stores/big/events?limit=2")
	p = eventsPage{}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 2 || !p.More || p.Truncated || p.NextAfter != 2 {
		t.Fatalf("limit 2: %s", body)
	}
	body, _ = get(t, srv2.URL+"/api/stores/big/events?after=2")
	p = eventsPage{}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 3 || p.More || p.Truncated || p.NextAfter != 5 {
		t.Fatalf("the rest: %s", body)
	}
}

// TestStoresResponseBounded lists more stores than fit one answer: the list
// is cut at the limit, stays valid JSON, and the cut is announced.
func TestStoresResponseBounded(t *testing.T) {
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const n = 400
	for i := range n {
		if err := st.CreateStore(t.Context(), fmt.Sprintf("store-%03d-%s", i, strings.Repeat("x", 100)), syncserver.NewBackendID()); err != nil {
			t.Fatal(err)
		}
	}
	list := func(maxBytes int) ([]syncserver.StoreInfo, int, string) {
		srv := httptest.NewServer(devtools.ServerHandler(st, devtools.Options{MaxAnswerBytes: maxBytes}))
		defer srv.Close()
		resp, err := http.Get(srv.URL + "/api/stores")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		var out []syncserver.StoreInfo
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("answer is not a JSON array: %v", err)
		}
		return out, len(body), resp.Header.Get("X-Livestore-Truncated")
	}
	all, _, note := list(0)
	if len(all) != n || note != "" {
		t.Fatalf("default limit: %d stores, note %q", len(all), note)
	}
	some, size, note := list(devtools.MinAnswerBytes)
	if size > devtools.MinAnswerBytes || len(some) == 0 || len(some) >= n {
		t.Fatalf("limit %d: %d bytes, %d stores", devtools.MinAnswerBytes, size, len(some))
	}
	if want := fmt.Sprintf("%d of %d stores listed", len(some), n); !strings.Contains(note, want) {
		t.Fatalf("truncation note %q, want it to say %q", note, want)
	}
	for i, s := range some {
		if s != all[i] {
			t.Fatalf("store %d: %+v, want %+v", i, s, all[i])
		}
	}
}
