package syncserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/internal/lockedbuf"

	"github.com/coder/websocket"

	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncserver"
)

// TestAuthRefusals checks the answer and the log line of each way an
// AuthFunc refuses.
func TestAuthRefusals(t *testing.T) {
	tests := []struct {
		token  string
		status int
		body   string
	}{
		{"wrong", http.StatusUnauthorized, "unauthorized: bad token"},
		{"other-store", http.StatusForbidden, "unauthorized: token does not cover this store"},
		{"expired", http.StatusUnauthorized, "unauthorized: credentials expired"},
		{"panic", http.StatusInternalServerError, "unauthorized: credentials could not be checked"},
	}
	var logs lockedbuf.Buffer
	ts := startServer(t, syncserver.Options{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Auth: func(_ context.Context, storeID string, payload json.RawMessage, _ http.Header) (syncserver.Access, error) {
			var p struct{ Token string }
			_ = json.Unmarshal(payload, &p)
			switch p.Token {
			case "good":
				return syncserver.Access{}, nil
			case "other-store":
				return syncserver.Access{}, &syncserver.AuthError{Status: http.StatusForbidden, Reason: "token does not cover this store"}
			case "expired":
				return syncserver.Access{Expires: time.Now().Add(-time.Second)}, nil
			case "panic":
				panic("token table not loaded")
			}
			return syncserver.Access{}, errors.New("bad token")
		},
	})
	ctx := t.Context()
	for _, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			_, err := syncclient.Dial(ctx, ts.url, syncclient.Options{StoreID: "guarded", Payload: json.RawMessage(`{"token":"` + tt.token + `"}`)})
			var de *syncclient.DialError
			if !errors.As(err, &de) || de.StatusCode != tt.status || de.Body != tt.body {
				t.Fatalf("dial: %v; want HTTP %d %q", err, tt.status, tt.body)
			}
		})
	}
	c, err := syncclient.Dial(ctx, ts.url, syncclient.Options{StoreID: "guarded", Payload: json.RawMessage(`{"token":"good"}`)})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	l := logs.String()
	if n := strings.Count(l, "connection refused by auth"); n != 3 {
		t.Fatalf("%d auth refusal lines, want 3:\n%s", n, l)
	}
	for _, want := range []string{"store=guarded", "remote=127.0.0.1:", `reason="bad token"`, "status=403", "auth function panicked", "token table not loaded"} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
	if strings.Contains(l, "goroutine ") {
		t.Errorf("log has a stack trace:\n%s", l)
	}
	if v := metricValue(t, ts, `livestore_sync_connections_refused_total{reason="auth"}`); v != 4 {
		t.Fatalf("auth refusals counted: %v, want 4", v)
	}
}

func TestReadOnlyAccess(t *testing.T) {
	ts := startServer(t, syncserver.Options{
		Auth: func(context.Context, string, json.RawMessage, http.Header) (syncserver.Access, error) {
			return syncserver.Access{ReadOnly: true}, nil
		},
	})
	fillStore(t, ts, "ro", 2, 10)
	c := dialRaw(t, ts, "ro")
	c.send(pushMsg(t, "0", "ro", chain(2, 1, "a"), nil))
	c.expect(unknownErrorExit("0", "unauthorized: this connection may only pull"))
	c.send(pullMsg(t, "1", "ro", false, nil))
	if res := page(t, c.recv(), "1"); len(res.Batch) != 2 {
		t.Fatalf("pull of a read-only connection: %+v", res)
	}
	checkLog(t, ts, "ro", 2)
}

// TestAccessExpires gives a connection a grant that ends 300 ms after it is
// made: the connection, which has a live pull open, is then closed with 1008
// "credentials expired".
func TestAccessExpires(t *testing.T) {
	ts := startServer(t, syncserver.Options{
		Auth: func(context.Context, string, json.RawMessage, http.Header) (syncserver.Access, error) {
			return syncserver.Access{Expires: time.Now().Add(300 * time.Millisecond)}, nil
		},
	})
	start := time.Now()
	c := dialRaw(t, ts, "exp")
	c.send(pullMsg(t, "0", "exp", true, nil))
	page(t, c.recv(), "0")
	m, ok := c.next(10 * time.Second)
	if !ok || m.err == nil {
		t.Fatalf("connection still open after 10s, or a message: %q", m.data)
	}
	var ce websocket.CloseError
	if !errors.As(m.err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "credentials expired" {
		t.Fatalf("connection ended with %v; want 1008 credentials expired", m.err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("closed after %v, before the grant expired", d)
	}
}

// TestOrigins checks which browser origins may open a connection.
func TestOrigins(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		origin   string // "self" is the server's own origin
		ok       bool
	}{
		{"no origin", nil, "", true},
		{"same origin", nil, "self", true},
		{"other origin", nil, "https://evil.example", false},
		{"null origin", nil, "null", false},
		{"any origin", []string{"*"}, "https://evil.example", true},
		{"listed origin", []string{"app.example.com"}, "https://app.example.com", true},
		{"unlisted origin", []string{"app.example.com"}, "https://evil.example", false},
		{"wildcard subdomain", []string{"*.example.com"}, "https://app.example.com", true},
		{"scheme pattern", []string{"https://app.example.com"}, "http://app.example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs lockedbuf.Buffer
			ts := startServer(t, syncserver.Options{OriginPatterns: tt.patterns, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			origin := tt.origin
			if origin == "self" {
				origin = ts.http.URL
			}
			h := http.Header{}
			if origin != "" {
				h.Set("Origin", origin)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			ws, resp, err := websocket.Dial(ctx, ts.url+"/?storeId=o&transport=ws", &websocket.DialOptions{HTTPHeader: h})
			if tt.ok {
				if err != nil {
					t.Fatalf("origin %q refused: %v", origin, err)
				}
				_ = ws.CloseNow()
				return
			}
			if err == nil {
				_ = ws.CloseNow()
				t.Fatalf("origin %q accepted", origin)
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("origin %q: %v; want HTTP 403", origin, err)
			}
			body, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(body), fmt.Sprintf("origin %q is not allowed", origin)) {
				t.Fatalf("refusal body %q", body)
			}
			if !strings.Contains(logs.String(), "origin not allowed") {
				t.Fatalf("no log line for the refusal:\n%s", logs.String())
			}
		})
	}
}
