package syncserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livestore-go/livestore/internal/lockedbuf"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// failingStorage is a SQLite storage whose appends or reads fail on demand
// with a given error, as a full or read-only disk makes them fail.
type failingStorage struct {
	syncserver.Storage
	mu                  sync.Mutex
	appendErr, readErrV error
}

func newFailingStorage(t *testing.T) *failingStorage {
	t.Helper()
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return &failingStorage{Storage: st}
}

func (s *failingStorage) failAppends(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appendErr = err
}

func (s *failingStorage) failReads(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readErrV = err
}

func (s *failingStorage) Append(ctx context.Context, storeID string, batch []syncproto.Event, createdAt time.Time) error {
	s.mu.Lock()
	err := s.appendErr
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.Storage.Append(ctx, storeID, batch, createdAt)
}

func (s *failingStorage) Read(ctx context.Context, storeID string, after, upTo int64, limit int) ([]syncserver.StoredEvent, error) {
	s.mu.Lock()
	err := s.readErrV
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.Storage.Read(ctx, storeID, after, upTo, limit)
}

type healthReport struct {
	Status  string
	Storage *struct {
		Error string
		Since string
	}
}

func getHealth(t *testing.T, ts *testServer) (int, healthReport) {
	t.Helper()
	status, body := httpGet(t, ts.http.URL+"/health", nil)
	var h healthReport
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("/health body %q: %v", body, err)
	}
	return status, h
}

// wantDegraded asserts that /health reports the storage failing with kind
// since a moment no later than now.
func wantDegraded(t *testing.T, ts *testServer, kind string) {
	t.Helper()
	status, h := getHealth(t, ts)
	if status != http.StatusServiceUnavailable || h.Status != "degraded" || h.Storage == nil || h.Storage.Error != kind {
		t.Fatalf("/health = %d %+v; want 503 degraded with storage error %q", status, h, kind)
	}
	since, err := time.Parse(time.RFC3339, h.Storage.Since)
	if err != nil || since.After(time.Now()) || time.Since(since) > time.Minute {
		t.Fatalf("/health since %q: %v", h.Storage.Since, err)
	}
}

func wantHealthy(t *testing.T, ts *testServer) {
	t.Helper()
	if status, body := httpGet(t, ts.http.URL+"/health", nil); status != http.StatusOK || body != `{"status":"ok"}`+"\n" {
		t.Fatalf("/health = %d %q; want 200 ok", status, body)
	}
}

func unknownErrorExit(id, message string) string {
	return fmt.Sprintf(`{"_tag":"Exit","requestId":"%s","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"UnknownError","cause":{"name":"Error","message":%q}}}}}`, id, message)
}

// TestHealthAfterFailedPush makes appends fail as a full disk, a read-only
// database and an unclassified failure make them fail: the client learns the
// class, the log has the storage's own error, /health is degraded until a
// push is stored again (reads, which still work, do not clear it).
func TestHealthAfterFailedPush(t *testing.T) {
	tests := []struct {
		name string
		err  error
		kind string
		msg  string
	}{
		{"full", &syncserver.StorageError{Kind: syncserver.StorageFull, Op: "append to store h", Err: errors.New("database or disk is full")},
			"full", "storage full: the server cannot store events now"},
		{"read-only", fmt.Errorf("append: %w", &syncserver.StorageError{Kind: syncserver.StorageReadOnly, Op: "append to store h", Err: errors.New("attempt to write a readonly database")}),
			"read-only", "storage read-only: the server cannot store events now"},
		{"unclassified", errors.New("connection reset by peer"),
			"unavailable", "storage unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs lockedbuf.Buffer
			st := newFailingStorage(t)
			ts := startServer(t, syncserver.Options{Storage: st, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			c := dialRaw(t, ts, "h")
			c.send(pushMsg(t, "0", "h", chain(0, 1, "a"), nil))
			c.expect(fmt.Sprintf(pushOK, "0"))
			wantHealthy(t, ts)

			st.failAppends(tt.err)
			c.send(pushMsg(t, "1", "h", chain(1, 1, "a"), nil))
			c.expect(unknownErrorExit("1", tt.msg))
			wantDegraded(t, ts, tt.kind)
			var inner error = tt.err
			for errors.Unwrap(inner) != nil {
				inner = errors.Unwrap(inner)
			}
			if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, inner.Error()) {
				t.Fatalf("log lacks an error line with %q:\n%s", inner, l)
			}

			c.send(pullMsg(t, "2", "h", false, nil))
			if res := page(t, c.recv(), "2"); len(res.Batch) != 1 {
				t.Fatalf("pull while appends fail: %+v", res)
			}
			c.send(`{"_tag":"Ack","requestId":"2"}`)
			c.expect(`{"_tag":"Exit","requestId":"2","exit":{"_tag":"Success"}}`)
			wantDegraded(t, ts, tt.kind)

			st.failAppends(nil)
			c.send(pushMsg(t, "3", "h", chain(1, 1, "a"), nil))
			c.expect(fmt.Sprintf(pushOK, "3"))
			wantHealthy(t, ts)
		})
	}
}

// TestHealthAfterFailedRead fails a pull's reads: the pull fails with
// "storage unavailable", /health is degraded until a read succeeds.
func TestHealthAfterFailedRead(t *testing.T) {
	st := newFailingStorage(t)
	ts := startServer(t, syncserver.Options{Storage: st})
	c := dialRaw(t, ts, "r")
	c.send(pushMsg(t, "0", "r", chain(0, 3, "a"), nil))
	c.expect(fmt.Sprintf(pushOK, "0"))

	st.failReads(errors.New("disk I/O error"))
	c.send(pullMsg(t, "1", "r", false, nil))
	c.expect(unknownErrorExit("1", "storage unavailable"))
	wantDegraded(t, ts, "unavailable")

	st.failReads(nil)
	c.send(pullMsg(t, "2", "r", false, nil))
	if res := page(t, c.recv(), "2"); len(res.Batch) != 3 {
		t.Fatalf("pull after reads recovered: %+v", res)
	}
	wantHealthy(t, ts)
}
