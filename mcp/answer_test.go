package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// callSized calls a tool that must succeed, decodes its structured output
// into out and returns the size of the whole result as sent.
func callSized(t *testing.T, cs *sdkmcp.ClientSession, tool string, args map[string]any, out any) int {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &sdkmcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	if res.IsError {
		t.Fatalf("%s: tool error: %s", tool, text(res))
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(sc, out); err != nil {
		t.Fatalf("%s: decode: %v", tool, err)
	}
	return len(b)
}

// allocated runs fn and returns how many bytes the Go heap allocated
// meanwhile (in this process: client, transport and server).
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestQueryAnswerBounded(t *testing.T) {
	dir := newClientStore(t)
	cs := connect(t, Options{StoreDirs: []string{dir}})
	rows := func(n int, value string) string {
		return fmt.Sprintf(`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < %d) SELECT i, %s AS v FROM c`, n, value)
	}
	// The handler alone, without the SDK's copies of the answer.
	lim, err := newLimits(Options{})
	if err != nil {
		t.Fatal(err)
	}
	tools := &clientStoreTools{dirs: []string{dir}, lim: lim}
	for _, tc := range []struct {
		value    string
		wantRows bool
	}{
		// 300 rows of 1 MB blobs: not one row fits, and none is copied.
		{"zeroblob(1000000)", false},
		// Rows of 10 KB blobs, and of text that JSON escapes: the answer
		// fills up to the cap and stays under it.
		{"zeroblob(10000)", true},
		{`replace(printf('%.3000c', 'x'), 'x', '<"\')`, true},
	} {
		sql := rows(300, tc.value)
		var out queryOutput
		size := callSized(t, cs, "client_store_query", map[string]any{"dir": dir, "sql": sql, "limit": 1000}, &out)
		var err error
		alloc := allocated(func() { _, _, err = tools.query(t.Context(), nil, queryInput{Dir: dir, SQL: sql, Limit: 1000}) })
		t.Logf("300 rows of %s: answer %d bytes, %d rows; the handler allocated %.2f MiB", tc.value, size, len(out.Rows), float64(alloc)/(1<<20))
		if err != nil {
			t.Fatal(err)
		}
		if size > DefaultMaxAnswerBytes || !out.Truncated || out.TruncatedBy != "bytes" || !strings.Contains(out.Note, "substr") {
			t.Fatalf("answer %d bytes: %d rows, truncated %v by %q, note %q", size, len(out.Rows), out.Truncated, out.TruncatedBy, out.Note)
		}
		if tc.wantRows != (len(out.Rows) > 0) || tc.wantRows && size < DefaultMaxAnswerBytes/2 {
			t.Fatalf("answer %d bytes with %d rows", size, len(out.Rows))
		}
		if alloc > 2<<20 {
			t.Fatalf("the handler allocated %d bytes", alloc)
		}
	}

	var out queryOutput
	call(t, cs, "client_store_query", map[string]any{"dir": dir, "sql": rows(300, "i"), "limit": 10}, &out)
	if len(out.Rows) != 10 || out.TruncatedBy != "rows" || !strings.Contains(out.Note, "LIMIT/OFFSET") {
		t.Fatalf("row limit: %+v", out)
	}
}

func TestQueryTimeLimit(t *testing.T) {
	dir := newClientStore(t)
	cs := connect(t, Options{StoreDirs: []string{dir}, QueryTimeout: 300 * time.Millisecond})
	start := time.Now()
	msg := callFail(t, cs, "client_store_query", map[string]any{"dir": dir,
		"sql": `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c`})
	if !strings.Contains(msg, "stopped after 300ms: time limit reached") || time.Since(start) > 5*time.Second {
		t.Fatalf("endless query: %q after %s", msg, time.Since(start))
	}
	var out queryOutput
	call(t, cs, "client_store_query", map[string]any{"dir": dir, "sql": "SELECT count(*) FROM todos"}, &out)
	if fmt.Sprint(out.Rows) != "[[4]]" {
		t.Fatalf("after the timeout: %v", out.Rows)
	}
}

func TestAnswerLimitOptions(t *testing.T) {
	dir := newClientStore(t)
	for _, opts := range []Options{
		{StoreDirs: []string{dir}, MaxAnswerBytes: MinAnswerBytes - 1},
		{StoreDirs: []string{dir}, MaxAnswerBytes: -1},
		{StoreDirs: []string{dir}, QueryTimeout: -time.Second},
	} {
		if _, err := NewServer(opts); err == nil {
			t.Errorf("NewServer(%+v) succeeded", opts)
		}
	}
}

// bigStorage returns a storage with store "big" of n events whose args
// hold size bytes of text each.
func bigStorage(t *testing.T, n, size int) *sqlitestore.Store {
	t.Helper()
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	text := strings.Repeat("x", size)
	for i := 0; i < n; {
		var batch []syncproto.Event
		for ; i < n && len(batch) < 20; i++ {
			batch = append(batch, syncproto.Event{
				Name: "v1.Big", Args: json.RawMessage(fmt.Sprintf(`{"i":%d,"text":%q}`, i+1, text)),
				SeqNum: int64(i + 1), ParentSeqNum: int64(i), ClientID: "c", SessionID: "s",
			})
		}
		if err := st.Append(t.Context(), "big", batch, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func TestReadEventsAnswerBounded(t *testing.T) {
	const maxAnswer = 256 << 10
	st := bigStorage(t, 30, 20_000)
	cs := connect(t, Options{Storage: st, MaxAnswerBytes: maxAnswer})
	lim, err := newLimits(Options{MaxAnswerBytes: maxAnswer})
	if err != nil {
		t.Fatal(err)
	}
	tools := &storageTools{st: st, lim: lim}
	var seen []int64
	after := int64(0)
	for page := 0; ; page++ {
		var out readEventsOutput
		size := callSized(t, cs, "read_events", map[string]any{"storeId": "big", "after": after, "limit": 1000}, &out)
		if size > maxAnswer {
			t.Fatalf("page %d: answer %d bytes, over %d", page, size, maxAnswer)
		}
		var err error
		alloc := allocated(func() {
			_, _, err = tools.readEvents(t.Context(), nil, readEventsInput{StoreID: "big", After: after, Limit: 1000})
		})
		if err != nil {
			t.Fatal(err)
		}
		// The chunks read hold at most about one answer's worth of events beyond the answer.
		if alloc > 8*maxAnswer {
			t.Fatalf("page %d: the handler allocated %d bytes", page, alloc)
		}
		if page == 0 {
			t.Logf("page of %d events of 20 KB: answer %d bytes; the handler allocated %.2f MiB", len(out.Events), size, float64(alloc)/(1<<20))
		}
		for _, e := range out.Events {
			seen = append(seen, e.SeqNum)
			if e.ArgsOmitted != "" {
				t.Fatalf("event %d: args omitted", e.SeqNum)
			}
		}
		if !out.More {
			break
		}
		if len(out.Events) == 0 || !strings.Contains(out.Note, "size limit") || out.NextAfter != seen[len(seen)-1] {
			t.Fatalf("page %d: %d events, nextAfter %d, note %q", page, len(out.Events), out.NextAfter, out.Note)
		}
		after = out.NextAfter
	}
	if len(seen) != 30 || seen[0] != 1 || seen[29] != 30 {
		t.Fatalf("read %d events: %v", len(seen), seen)
	}

	// An event larger than an answer comes without its args, and paging goes on.
	cs = connect(t, Options{Storage: bigStorage(t, 3, 400_000)})
	var out readEventsOutput
	size := callSized(t, cs, "read_events", map[string]any{"storeId": "big"}, &out)
	if size > DefaultMaxAnswerBytes || len(out.Events) == 0 || out.Events[0].Args != nil || !strings.Contains(out.Events[0].ArgsOmitted, "bytes as JSON") {
		t.Fatalf("400 KB events: answer %d bytes, %+v", size, out)
	}
	if len(out.Events) == 3 {
		t.Fatalf("all three 400 KB events in one answer of %d bytes", size)
	}
	if !out.More || out.NextAfter != out.Events[len(out.Events)-1].SeqNum {
		t.Fatalf("400 KB events: more %v nextAfter %d", out.More, out.NextAfter)
	}
}

func TestClientStoreEventsAnswerBounded(t *testing.T) {
	schema, created, _ := testSchema(t)
	dir := filepath.Join(t.TempDir(), "client")
	ctx := context.Background()
	store, err := livestore.Open(ctx, schema, livestore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("<", 5_000) // six bytes each as JSON
	for i := range 20 {
		if err := store.Commit(ctx, created.New(todoCreated{ID: fmt.Sprint(i), Text: text})); err != nil {
			t.Fatal(err)
		}
	}
	// One event larger than an answer: it comes without its args.
	if err := store.Commit(ctx, created.New(todoCreated{ID: "big", Text: strings.Repeat("<", 100_000)})); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	const maxAnswer = 256 << 10
	cs := connect(t, Options{StoreDirs: []string{dir}, MaxAnswerBytes: maxAnswer})
	var seen []string
	after := ""
	for page := 0; page < 40; page++ {
		var out clientEventsOutput
		size := callSized(t, cs, "client_store_events", map[string]any{"dir": dir, "after": after, "limit": 1000}, &out)
		if size > maxAnswer {
			t.Fatalf("page %d: answer %d bytes, over %d", page, size, maxAnswer)
		}
		for _, e := range out.Events {
			seen = append(seen, e.SeqNum)
			if (e.ArgsOmitted != "") != (e.SeqNum == "e21") || (e.Args == nil) != (e.SeqNum == "e21") {
				t.Fatalf("event %s: args %v, argsOmitted %q", e.SeqNum, e.Args != nil, e.ArgsOmitted)
			}
		}
		if !out.More {
			break
		}
		if len(out.Events) == 0 || out.Note == "" && out.Events[0].SeqNum != "e21" {
			t.Fatalf("page %d: %+v", page, out)
		}
		after = out.NextAfter
	}
	if len(seen) != 21 || seen[0] != "e1" || seen[20] != "e21" {
		t.Fatalf("read %v", seen)
	}
}

func TestListStoresAnswerBounded(t *testing.T) {
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for i := range 200 {
		if err := st.CreateStore(t.Context(), fmt.Sprintf("store-%03d", i), syncserver.NewBackendID()); err != nil {
			t.Fatal(err)
		}
	}
	cs := connect(t, Options{Storage: st, MaxAnswerBytes: MinAnswerBytes})
	var seen []string
	after := ""
	for page := 0; page < 100; page++ {
		var out listStoresOutput
		size := callSized(t, cs, "list_stores", map[string]any{"after": after}, &out)
		if size > MinAnswerBytes {
			t.Fatalf("page %d: answer %d bytes, over %d", page, size, MinAnswerBytes)
		}
		for _, s := range out.Stores {
			seen = append(seen, s.StoreID)
		}
		if !out.More {
			break
		}
		if len(out.Stores) == 0 || out.NextAfter != seen[len(seen)-1] {
			t.Fatalf("page %d: %d stores, nextAfter %q", page, len(out.Stores), out.NextAfter)
		}
		if page == 0 {
			t.Logf("first page: %d stores in %d bytes", len(out.Stores), size)
		}
		after = out.NextAfter
	}
	if len(seen) != 200 || seen[0] != "store-000" || seen[199] != "store-199" {
		t.Fatalf("listed %d stores", len(seen))
	}
}
