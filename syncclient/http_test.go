package syncclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// httpServer serves a sync server with opts (Storage set here) behind
// middleware, which sees every request first and may answer it instead.
func httpServer(t *testing.T, opts syncserver.Options, middleware func(w http.ResponseWriter, r *http.Request) bool) string {
	t.Helper()
	opts.Storage = sqliteStorage(t)
	srv, err := syncserver.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if middleware != nil && middleware(w, r) {
			return
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		_ = srv.Close()
		hs.Close()
	})
	return hs.URL
}

// isPull reports whether r is a pull of the HTTP transport (reading its
// body and putting it back).
func isPull(t *testing.T, r *http.Request) bool {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Error(err)
	}
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	return strings.Contains(string(body), syncproto.TagHTTPPull)
}

func pullAll(t *testing.T, s syncproto.PullStream) (seqs []int64, infos []syncproto.PageInfo) {
	t.Helper()
	for {
		p, err := s.Next(t.Context())
		if err == io.EOF {
			return seqs, infos
		}
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, p.PageInfo)
		for _, it := range p.Batch {
			seqs = append(seqs, it.Event.SeqNum)
		}
	}
}

// TestHTTPPullContinuesCutAnswers: a server that cuts a pull's answer after
// a few pages (MaxHTTPPullPages) is asked again at once, from the last
// event, until the pull has everything.
func TestHTTPPullContinuesCutAnswers(t *testing.T) {
	var pulls atomic.Int64
	url := httpServer(t, syncserver.Options{MaxHTTPPullPages: 1}, func(w http.ResponseWriter, r *http.Request) bool {
		if isPull(t, r) {
			pulls.Add(1)
		}
		return false
	})
	// A poll interval longer than the test: only the cut answers may make
	// the pull ask again.
	conn := connect(t, syncclient.HTTPBackend(url, syncclient.HTTPOptions{PollInterval: time.Hour}), "cut")
	if err := conn.Push(t.Context(), chain(0, 250, "a"), nil); err != nil {
		t.Fatal(err)
	}
	s, err := conn.Pull(t.Context(), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seqs, infos := pullAll(t, s)
	if len(seqs) != 250 || seqs[0] != 1 || seqs[249] != 250 {
		t.Fatalf("pulled %d events", len(seqs))
	}
	want := "[{MoreKnown 150} {MoreKnown 50} {NoMore 0}]"
	if got := fmt.Sprint(infos); got != want {
		t.Fatalf("page infos %s, want %s", got, want)
	}
	if n := pulls.Load(); n != 3 {
		t.Fatalf("%d pull requests, want 3 (one page each)", n)
	}
}

// TestHTTPPullRetriesFailures: failing pull requests (HTTP 503) are retried
// with a growing delay; the live pull goes on once the server answers, and
// fails with the server's error once the delay would pass MaxPollBackoff.
func TestHTTPPullRetriesFailures(t *testing.T) {
	var failing atomic.Int64 // pull requests still to refuse
	url := httpServer(t, syncserver.Options{}, func(w http.ResponseWriter, r *http.Request) bool {
		if isPull(t, r) && failing.Add(-1) >= 0 {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	backend := syncclient.HTTPBackend(url, syncclient.HTTPOptions{PollInterval: 5 * time.Millisecond, MaxPollBackoff: 20 * time.Millisecond})
	conn := connect(t, backend, "retry")
	ctx := t.Context()
	live, err := conn.Pull(ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if _, err := live.Next(ctx); err != nil {
		t.Fatal(err)
	}
	// Three refusals (retries after 5, 10 and 20 ms), then the push.
	failing.Store(3)
	if err := conn.Push(ctx, chain(0, 2, "a"), nil); err != nil {
		t.Fatal(err)
	}
	var got int
	for got < 2 {
		p, err := live.Next(ctx)
		if err != nil {
			t.Fatalf("live pull after refusals: %v", err)
		}
		got += len(p.Batch)
	}
	if n := failing.Load(); n >= 0 {
		t.Fatalf("the refusals were not all used (%d left)", n)
	}
	// Four refusals in a row: the fourth retry would wait 40 ms > 20 ms.
	failing.Store(4)
	for {
		_, err := live.Next(ctx)
		var se *syncclient.HTTPStatusError
		if errors.As(err, &se) {
			if se.StatusCode != http.StatusServiceUnavailable || se.Body != "overloaded" {
				t.Fatalf("error %+v", se)
			}
			break
		}
		if err != nil {
			t.Fatalf("live pull: %v, want the server's 503", err)
		}
	}
}

// TestHTTPConnectChecksCredentials: Connect pings, so that refused
// credentials fail there, with the server's status and reason.
func TestHTTPConnectChecksCredentials(t *testing.T) {
	url := httpServer(t, syncserver.Options{Auth: func(_ context.Context, storeID string, payload json.RawMessage, _ http.Header) (syncserver.Access, error) {
		if string(payload) != `{"authToken":"ok"}` {
			return syncserver.Access{}, &syncserver.AuthError{Status: http.StatusForbidden, Reason: "bad token"}
		}
		return syncserver.Access{ReadOnly: true}, nil
	}}, nil)
	backend := syncclient.HTTPBackend(url, syncclient.HTTPOptions{})
	_, err := backend.Connect(t.Context(), "auth", json.RawMessage(`{"authToken":"no"}`))
	var se *syncclient.HTTPStatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusForbidden || se.Body != "unauthorized: bad token" {
		t.Fatalf("Connect with a bad token: %v", err)
	}
	conn, err := backend.Connect(t.Context(), "auth", json.RawMessage(`{"authToken":"ok"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var unknown *syncproto.UnknownError
	if err := conn.Push(t.Context(), chain(0, 1, "a"), nil); !errors.As(err, &unknown) || !strings.Contains(unknown.Message, "may only pull") {
		t.Fatalf("push with a pull-only token: %v", err)
	}
}

// TestHTTPCloseEndsStreams: closing a stream or the connection ends what
// waits, at once, with ErrStreamClosed or ErrClosed.
func TestHTTPCloseEndsStreams(t *testing.T) {
	url := httpServer(t, syncserver.Options{}, nil)
	conn, err := syncclient.HTTPBackend(url, syncclient.HTTPOptions{PollInterval: time.Hour}).Connect(t.Context(), "close", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	a, err := conn.Pull(ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := conn.Pull(ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []syncproto.PullStream{a, b} {
		if _, err := s.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	next := func(s syncproto.PullStream) chan error {
		errc := make(chan error, 1)
		go func() {
			_, err := s.Next(ctx)
			errc <- err
		}()
		return errc
	}
	errA := next(a) // waits an hour for its next poll
	a.Close()
	if err := <-errA; !errors.Is(err, syncclient.ErrStreamClosed) {
		t.Fatalf("Next after the stream's Close: %v", err)
	}
	errB := next(b)
	conn.Close()
	if err := <-errB; !errors.Is(err, syncclient.ErrClosed) {
		t.Fatalf("Next after the connection's Close: %v", err)
	}
	if err := conn.Push(ctx, chain(0, 1, "x"), nil); !errors.Is(err, syncclient.ErrClosed) {
		t.Fatalf("Push after Close: %v", err)
	}
	if _, err := conn.Pull(ctx, nil, false); !errors.Is(err, syncclient.ErrClosed) {
		t.Fatalf("Pull after Close: %v", err)
	}
}

// TestHTTPPullOfAnotherBackend: a cursor of another backend fails the pull
// with BackendIDMismatchError, not retried.
func TestHTTPPullOfAnotherBackend(t *testing.T) {
	url := httpServer(t, syncserver.Options{}, nil)
	conn := connect(t, syncclient.HTTPBackend(url, syncclient.HTTPOptions{PollInterval: time.Millisecond}), "other")
	s, err := conn.Pull(t.Context(), &syncproto.Cursor{BackendID: "gone", EventSequenceNumber: 4}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mismatch *syncproto.BackendIDMismatchError
	if _, err := s.Next(t.Context()); !errors.As(err, &mismatch) || mismatch.Received != "gone" || mismatch.Expected == "" {
		t.Fatalf("pull with another backend's cursor: %v", err)
	}
}
