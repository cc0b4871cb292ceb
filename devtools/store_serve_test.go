package devtools_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/devtools"
)

// lineWriter hands each write (one log record) to a channel.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

func TestListenAndServe(t *testing.T) {
	a := newTodoSchema(t)
	s := openStore(t, a, "")
	commitTodos(t, a, s, 1, 2)
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:8080", "example.com:80", "nonsense"} {
		if err := devtools.ListenAndServe(context.Background(), s, addr, devtools.Options{}); err == nil {
			t.Errorf("%s: served", addr)
		}
	}
	logs := make(lineWriter, 16)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- devtools.ListenAndServe(ctx, s, "", devtools.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	}()
	m := regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+/)`).FindStringSubmatch(<-logs)
	if m == nil {
		t.Fatal("no URL logged")
	}
	var info struct {
		StoreID string `json:"storeId"`
	}
	call(t, "GET", m[1]+"api/info", nil, 200, &info)
	if info.StoreID != "devtools-store" {
		t.Fatalf("info = %+v", info)
	}
	// A page reached through another host name (DNS rebinding) is refused.
	req, _ := http.NewRequest("GET", m[1]+"api/info", nil)
	req.Host = "evil.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("foreign host: %d", resp.StatusCode)
	}
	// A live stream does not hold up the end.
	lreq, _ := http.NewRequest("GET", m[1]+"api/live", nil)
	lresp, err := http.DefaultClient.Do(lreq)
	if err != nil {
		t.Fatal(err)
	}
	defer lresp.Body.Close()
	events := readLive(lresp.Body)
	next(t, events, "ready")
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	for range events {
	}
}

// BenchmarkStoreEventsPage reads pages of api/events of a 100,000-event
// store: the first page, one in the middle, and the first events of a rare
// name. A page reads along the eventlog's key from its cursor, so its cost
// does not grow with the log.
func BenchmarkStoreEventsPage(b *testing.B) {
	a := newTodoSchema(b)
	s, err := livestore.Open(context.Background(), a.schema, livestore.Options{Dir: b.TempDir(), Durability: livestore.DurabilityProcess})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const total, batch = 100_000, 5000
	for i := 0; i < total; i += batch {
		commitTodos(b, a, s, i, batch)
	}
	if err := s.Commit(context.Background(), a.renamed.New(todoRenamed{ID: "t000", Text: "once"})); err != nil {
		b.Fatal(err)
	}
	h := devtools.Handler(s, devtools.Options{})
	for _, bc := range []struct{ name, query string }{
		{"first", "limit=100"},
		{"middle", "after=e50000&limit=100"},
		{"last-by-name", "name=v1.TodoRenamed&after=e99000"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/events?"+bc.query, nil))
				if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"seq":"e`) {
					b.Fatal(fmt.Sprint(rec.Code, rec.Body.String()[:min(200, rec.Body.Len())]))
				}
			}
		})
	}
}
