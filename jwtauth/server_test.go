package jwtauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/livestore-go/livestore/jwtauth"
	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// authServer is a sync server on loopback whose Auth is a Verifier, over a
// SQLite storage the test reads.
type authServer struct {
	url     string
	storage *sqlitestore.Store
}

func startServer(t *testing.T, cfg jwtauth.Config) *authServer {
	t.Helper()
	v, err := jwtauth.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	srv, err := syncserver.New(syncserver.Options{Storage: st, Auth: v.Authorize})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Serve(l)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = hs.Shutdown(ctx)
		<-served
		_ = srv.Close()
	})
	return &authServer{url: "ws://" + l.Addr().String(), storage: st}
}

func (s *authServer) dial(t *testing.T, storeID string, payload json.RawMessage, h http.Header) (*syncclient.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := syncclient.Dial(ctx, s.url, syncclient.Options{StoreID: storeID, Payload: payload, Header: h})
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

// events returns n chained events after head.
func events(head int64, n int) []syncproto.Event {
	out := make([]syncproto.Event, n)
	for i := range out {
		seq := head + int64(i) + 1
		out[i] = syncproto.Event{Name: "v1.TodoCreated", Args: json.RawMessage(fmt.Sprintf(`{"id":"t%d"}`, seq)),
			SeqNum: seq, ParentSeqNum: seq - 1, ClientID: "c1", SessionID: "s1"}
	}
	return out
}

// pullAll reads the store's events with a non-live pull.
func pullAll(t *testing.T, c *syncclient.Client) []syncproto.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.Pull(ctx, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out []syncproto.Event
	for {
		page, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("pull: %v", err)
		}
		for _, it := range page.Batch {
			out = append(out, it.Event)
		}
		if page.PageInfo.Kind == syncproto.NoMore {
			return out
		}
	}
}

// wantNothingStored checks that storeID has no events and, where the
// storage lists stores, does not exist.
func wantNothingStored(t *testing.T, st *sqlitestore.Store, storeID string) {
	t.Helper()
	ctx := context.Background()
	if n, err := st.Count(ctx, storeID, 0, syncproto.MaxSeqNum); err != nil || n != 0 {
		t.Fatalf("store %q holds %d events (err %v), want none", storeID, n, err)
	}
	stores, err := st.Stores(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stores {
		if s.StoreID == storeID {
			t.Fatalf("store %q was created by a refused connection", storeID)
		}
	}
}

func TestServerValidToken(t *testing.T) {
	srv := startServer(t, jwtauth.Config{Secret: secret})
	tok, err := jwtauth.Mint(secret, jwtauth.MintOptions{Stores: []string{"todos"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := srv.dial(t, "todos", payload(tok), nil)
	if err != nil {
		t.Fatalf("dial with the token in the payload: %v", err)
	}
	if err := c.Push(ctx, events(0, 2), nil); err != nil {
		t.Fatalf("push: %v", err)
	}
	// The same token in an Authorization header, as a Go program may send it.
	b, err := srv.dial(t, "todos", nil, header("Bearer "+tok))
	if err != nil {
		t.Fatalf("dial with a Bearer header: %v", err)
	}
	if got := pullAll(t, b); len(got) != 2 || got[1].SeqNum != 2 {
		t.Fatalf("pulled %+v, want the 2 pushed events", got)
	}
	if err := b.Push(ctx, events(2, 1), nil); err != nil {
		t.Fatalf("push with a Bearer header: %v", err)
	}
}

func TestServerRefusals(t *testing.T) {
	pub := pemPublic(t, &rsaKeys()[0].PublicKey)
	srv := startServer(t, jwtauth.Config{Secret: secret, Issuer: "iss", Audience: "aud"})
	rsaSrv := startServer(t, jwtauth.Config{PublicKeysPEM: pub})
	now := time.Now()
	ok := jwt.MapClaims{"iss": "iss", "aud": "aud", "exp": now.Add(time.Hour).Unix(), "stores": "s-*"}
	with := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{}
		for k, v := range ok {
			c[k] = v
		}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, secret, "", c) }
	cases := []struct {
		name   string
		srv    *authServer
		store  string
		token  string
		status int
		reason string
	}{
		{"no token", srv, "s-1", "", 401, "no token"},
		{"expired", srv, "s-2", hs(with(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix()})), 401, "token expired at"},
		{"not yet valid", srv, "s-3", hs(with(jwt.MapClaims{"nbf": now.Add(time.Hour).Unix()})), 401, "token not valid before"},
		{"wrong signature", srv, "s-4", sign(t, jwt.SigningMethodHS256, []byte("some-other-secret-0123456789abcdef"), "", ok), 401, "token signature is invalid"},
		{"alg none", srv, "s-5", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", ok), 401, `token algorithm "none" is not accepted`},
		{"HS256 signed with the RSA public key", rsaSrv, "s-6", sign(t, jwt.SigningMethodHS256, pub, "", ok), 401, `token algorithm "HS256" is not accepted`},
		{"wrong issuer", srv, "s-7", hs(with(jwt.MapClaims{"iss": "other"})), 401, "token issuer is not accepted"},
		{"wrong audience", srv, "s-8", hs(with(jwt.MapClaims{"aud": "other"})), 401, "token audience is not accepted"},
		{"another store", srv, "x-9", hs(ok), 403, `token not valid for store "x-9"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p json.RawMessage
			if c.token != "" {
				p = payload(c.token)
			}
			_, err := c.srv.dial(t, c.store, p, nil)
			var de *syncclient.DialError
			if !errors.As(err, &de) {
				t.Fatalf("dial: err = %v, want an HTTP refusal", err)
			}
			if de.StatusCode != c.status || !strings.HasPrefix(de.Body, "unauthorized: ") || !strings.Contains(de.Body, c.reason) {
				t.Fatalf("refused with %d %q, want %d \"unauthorized: …%s…\"", de.StatusCode, de.Body, c.status, c.reason)
			}
			if c.token != "" && strings.Contains(de.Body, c.token) {
				t.Fatalf("the refusal echoes the token")
			}
			wantNothingStored(t, c.srv.storage, c.store)
		})
	}
}

func TestServerPullOnlyToken(t *testing.T) {
	srv := startServer(t, jwtauth.Config{Secret: secret})
	ctx := context.Background()
	writer, err := jwtauth.Mint(secret, jwtauth.MintOptions{Stores: []string{"todos"}})
	if err != nil {
		t.Fatal(err)
	}
	reader, err := jwtauth.Mint(secret, jwtauth.MintOptions{Stores: []string{"todos", "empty"}, PullOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	w, err := srv.dial(t, "todos", payload(writer), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Push(ctx, events(0, 1), nil); err != nil {
		t.Fatal(err)
	}
	r, err := srv.dial(t, "todos", payload(reader), nil)
	if err != nil {
		t.Fatalf("dial with a pull-only token: %v", err)
	}
	if got := pullAll(t, r); len(got) != 1 {
		t.Fatalf("pull-only token pulled %d events, want 1", len(got))
	}
	err = r.Push(ctx, events(1, 1), nil)
	var ue *syncproto.UnknownError
	if !errors.As(err, &ue) || !strings.Contains(ue.Message, "unauthorized: this connection may only pull") {
		t.Fatalf("push with a pull-only token: err = %v, want UnknownError \"unauthorized: this connection may only pull\"", err)
	}
	if head, err := srv.storage.Head(ctx, "todos"); err != nil || head != 1 {
		t.Fatalf("head = %d (err %v) after the refused push, want 1", head, err)
	}
	e, err := srv.dial(t, "empty", payload(reader), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Push(ctx, events(0, 1), nil); !errors.As(err, &ue) {
		t.Fatalf("push to an empty store with a pull-only token: err = %v, want UnknownError", err)
	}
	if n, err := srv.storage.Count(ctx, "empty", 0, syncproto.MaxSeqNum); err != nil || n != 0 {
		t.Fatalf("store \"empty\" holds %d events (err %v) after a refused push", n, err)
	}
}

// A connection lasts no longer than its token: the server closes it at exp
// (plus the leeway, none here) with 1008 "credentials expired".
func TestServerTokenExpiresMidConnection(t *testing.T) {
	srv := startServer(t, jwtauth.Config{Secret: secret, Leeway: -1})
	tok, err := jwtauth.Mint(secret, jwtauth.MintOptions{Stores: []string{"todos"}, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, err := srv.dial(t, "todos", payload(tok), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	live, err := c.Pull(ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if _, err := live.Next(ctx); err != nil {
		t.Fatalf("first page: %v", err)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("the connection outlived its token by 8 s")
	}
	// exp has a resolution of a second, so the close comes 1-2 s after the dial.
	if d := time.Since(start); d < time.Second {
		t.Fatalf("closed after %v, before the token expired", d)
	}
	if got := websocket.CloseStatus(c.Err()); got != websocket.StatusPolicyViolation || !strings.Contains(c.Err().Error(), "credentials expired") {
		t.Fatalf("connection ended with %v (status %v), want 1008 \"credentials expired\"", c.Err(), got)
	}
	if _, err := srv.dial(t, "todos", payload(tok), nil); err == nil {
		t.Fatal("the expired token connected again")
	}
}
