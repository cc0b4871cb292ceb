package devtools_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/livestore-go/livestore/devtools"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// seededServer serves the devtools handler under /_devtools/ over a real
// SQLite storage holding two stores.
func seededServer(t *testing.T) (*httptest.Server, *sqlitestore.Store) {
	t.Helper()
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	appendEvents(t, st, "todos-demo", 0, 150)
	if err := st.CreateStore(ctx, "empty-store", syncserver.NewBackendID()); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/_devtools/", http.StripPrefix("/_devtools", devtools.ServerHandler(st, devtools.Options{})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, st
}

func appendEvents(t *testing.T, st *sqlitestore.Store, storeID string, after, n int) {
	t.Helper()
	ctx := context.Background()
	if _, err := st.BackendID(ctx, storeID); err != nil {
		t.Fatal(err)
	}
	batch := make([]syncproto.Event, n)
	for i := range batch {
		seq := int64(after + i + 1)
		batch[i] = syncproto.Event{Name: "v1.TodoCreated", Args: json.RawMessage(fmt.Sprintf(`{"id":"t%d","text":"todo %d"}`, seq, seq)),
			SeqNum: seq, ParentSeqNum: seq - 1, ClientID: "client1", SessionID: "sess1"}
	}
	if err := st.Append(ctx, storeID, batch, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func getJSON(t *testing.T, url string, wantCode int, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != wantCode {
		t.Fatalf("GET %s: %d, want %d", url, resp.StatusCode, wantCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestAPI(t *testing.T) {
	srv, _ := seededServer(t)
	base := srv.URL + "/_devtools/"
	var stores []struct {
		StoreID   string `json:"storeId"`
		BackendID string `json:"backendId"`
		Head      int64  `json:"head"`
	}
	getJSON(t, base+"api/stores", 200, &stores)
	if len(stores) != 2 || stores[0].StoreID != "empty-store" || stores[1].StoreID != "todos-demo" || stores[1].Head != 150 || stores[1].BackendID == "" {
		t.Fatalf("stores = %+v", stores)
	}
	var page struct {
		Events []struct {
			SeqNum    int64           `json:"seqNum"`
			Name      string          `json:"name"`
			Args      json.RawMessage `json:"args"`
			CreatedAt string          `json:"createdAt"`
		} `json:"events"`
	}
	getJSON(t, base+"api/stores/todos-demo/events?after=100&limit=20", 200, &page)
	if len(page.Events) != 20 || page.Events[0].SeqNum != 101 || page.Events[19].SeqNum != 120 ||
		string(page.Events[0].Args) != `{"id":"t101","text":"todo 101"}` || page.Events[0].CreatedAt == "" {
		t.Fatalf("page = %+v", page.Events[:1])
	}
	getJSON(t, base+"api/stores/nope/events", 200, &page)
	if len(page.Events) != 0 {
		t.Fatalf("unknown store has %d events", len(page.Events))
	}
	var e struct {
		Error string `json:"error"`
	}
	getJSON(t, base+"api/stores/todos-demo/events?after=-1", 400, &e)
	getJSON(t, base+"api/stores/todos-demo/events?limit=x", 400, &e)
	if e.Error == "" {
		t.Fatal("no error text")
	}
	resp, err := http.Get(base)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("page: %v %v", err, resp)
	}
	resp.Body.Close()
}
