package scenarios

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livestore-go/livestore/internal/lockedbuf"
	"github.com/livestore-go/livestore/jwtauth"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// authServer is our sync server with token auth (jwtauth) on loopback,
// over SQLite storage the test can read.
type authServer struct {
	url      string
	storage  *sqlitestore.Store
	verifier *jwtauth.Verifier
	log      *lockedbuf.Buffer // the server's log

	mu       sync.Mutex
	refusals map[string][]string // store id → "401 reason" of each refused connection
}

func (s *authServer) refused(storeID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.refusals[storeID])
}

func startAuthServer(t *testing.T, secret []byte) *authServer {
	t.Helper()
	return startAuthServerConfig(t, jwtauth.Config{Secret: secret})
}

// startAuthServerConfig starts an authServer verifying tokens as cfg says.
func startAuthServerConfig(t *testing.T, cfg jwtauth.Config) *authServer {
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
	as := &authServer{storage: st, verifier: v, log: newLogBuffer(), refusals: map[string][]string{}}
	auth := func(ctx context.Context, storeID string, payload json.RawMessage, h http.Header) (syncserver.Access, error) {
		access, err := v.Authorize(ctx, storeID, payload, h)
		var ae *syncserver.AuthError
		if errors.As(err, &ae) {
			as.mu.Lock()
			as.refusals[storeID] = append(as.refusals[storeID], fmt.Sprintf("%d %s", ae.Status, ae.Reason))
			as.mu.Unlock()
		}
		return access, err
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sync server (auth) log:\n%s", as.log)
		}
	})
	logger := slog.New(slog.NewTextHandler(as.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := syncserver.New(syncserver.Options{Storage: st, Auth: auth, Logger: logger})
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
	})
	as.url = "ws://" + l.Addr().String()
	return as
}

// syncPayload is the --sync-payload of a JS client: {"authToken": token}.
func syncPayload(t *testing.T, token string) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"authToken": token})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The real @livestore/sync-cf 0.4.0 client passes its token as syncPayload,
// unchanged: a valid token syncs; a token for another store and a token
// with a bad signature get nothing into the server.
func TestAuthTokenInSyncPayload(t *testing.T) {
	harnessReady(t)
	timed(t)
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()

	secret := []byte("interop-secret-0123456789abcdef0123456789")
	srv := startAuthServer(t, secret)
	mint := func(key []byte, stores ...string) string {
		tok, err := jwtauth.Mint(key, jwtauth.MintOptions{Stores: stores, TTL: 10 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	allowed, otherStore, forbidden := newStoreID("auth-ok"), newStoreID("auth-other"), newStoreID("auth-no")
	refusedStore := newStoreID("auth-bad")

	// The refused clients run while the valid one does; each gives up
	// after 20 s of not seeing its events on the server.
	wrongStore := startJS(ctx, t, srv.url, forbidden, "--commit", "2", "--prefix", "w",
		"--sync-payload", syncPayload(t, mint(secret, otherStore)), "--timeout-ms", "20000")
	badSignature := startJS(ctx, t, srv.url, refusedStore, "--commit", "2", "--prefix", "b",
		"--sync-payload", syncPayload(t, mint([]byte("not-the-server-secret-0123456789abcdef"), refusedStore)), "--timeout-ms", "20000")

	// The client returns only once the server lists its 3 events (read with
	// the same payload).
	res := mustJS(ctx, t, srv.url, allowed, "--commit", "3", "--prefix", "a", "--wait-rows", "3",
		"--sync-payload", syncPayload(t, mint(secret, "auth-ok-*")))
	if len(res.Todos) != 3 {
		t.Fatalf("valid token: client has %d todos, want 3", len(res.Todos))
	}
	if head, err := srv.storage.Head(ctx, allowed); err != nil || head != 3 {
		t.Fatalf("valid token: server head %d (err %v), want 3", head, err)
	}

	for name, ch := range map[string]<-chan jsRun{"token for another store": wrongStore, "bad signature": badSignature} {
		r := <-ch
		if r.err == nil {
			t.Errorf("%s: the JS client succeeded: %s", name, r.res.Raw)
			continue
		}
		// Exit status 2 is client.mjs's timeout: its events never showed up.
		if !strings.Contains(r.err.Error(), "exit status 2") {
			t.Errorf("%s: client failed otherwise than by timing out: %v", name, r.err)
		}
	}
	for id, want := range map[string]string{
		forbidden:    `403 token not valid for store "` + forbidden + `"`,
		refusedStore: "401 token signature is invalid",
	} {
		n, err := srv.storage.Count(ctx, id, 0, 1<<62)
		if err != nil || n != 0 {
			t.Errorf("store %s: %d events on the server (err %v), want none", id, n, err)
		}
		// The client did send its token, and was refused for its reason.
		refusals := srv.refused(id)
		if len(refusals) == 0 || refusals[0] != want {
			t.Errorf("store %s: refusals %q, want %q", id, refusals, want)
		}
	}
	if r := srv.refused(allowed); len(r) != 0 {
		t.Errorf("valid token refused: %q", r)
	}
}
