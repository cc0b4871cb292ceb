package scenarios

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/pgstore"
	"github.com/livestore-go/livestore/syncserver/pgstore/pgtest"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// storageKind names the storage of our server in a scenario.
type storageKind string

const (
	onSQLite   storageKind = "sqlite"
	onPostgres storageKind = "postgres"
)

// goServer is our sync server in this process, on a fixed loopback port, on
// storage that outlives it: Stop and Start again is a server restart (the
// storage is closed and reopened, the port stays).
type goServer struct {
	t       testing.TB
	kind    storageKind
	open    func(ctx context.Context) (syncserver.Storage, io.Closer, error)
	addr    string
	log     *slog.Logger
	storage syncserver.Storage
	closer  io.Closer
	srv     *syncserver.Server
	hs      *http.Server
	served  chan struct{}
}

func startGoServer(t testing.TB, kind storageKind) *goServer {
	t.Helper()
	s := &goServer{t: t, kind: kind, addr: "127.0.0.1:0", log: testLogger(t, "sync server ("+string(kind)+")")}
	switch kind {
	case onSQLite:
		path := filepath.Join(t.TempDir(), "sync.db")
		s.open = func(context.Context) (syncserver.Storage, io.Closer, error) {
			st, err := sqlitestore.Open(path, sqlitestore.Options{})
			return st, st, err
		}
	case onPostgres:
		url := pgtest.URL(t) // skips the test (fails it under CI), saying what to set, without PostgreSQL
		schema := pgtest.Schema(t)
		s.open = func(ctx context.Context) (syncserver.Storage, io.Closer, error) {
			st, err := pgstore.Open(ctx, url, pgstore.Options{Schema: schema})
			return st, st, err
		}
	default:
		t.Fatalf("unknown storage %q", kind)
	}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// URL is the server's WebSocket base URL.
func (s *goServer) URL() string { return "ws://" + s.addr }

// Start starts the server (again), on the port it had before.
func (s *goServer) Start() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	storage, closer, err := s.open(ctx)
	if err != nil {
		s.t.Fatalf("open %s storage: %v", s.kind, err)
	}
	srv, err := syncserver.New(syncserver.Options{Storage: storage, Logger: s.log})
	if err != nil {
		s.t.Fatal(err)
	}
	var l net.Listener
	for deadline := time.Now().Add(10 * time.Second); ; {
		l, err = net.Listen("tcp", s.addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the port of a stopped server may linger a moment
	}
	if err != nil {
		s.t.Fatalf("listen on %s: %v", s.addr, err)
	}
	s.addr = l.Addr().String()
	s.storage, s.closer, s.srv = storage, closer, srv
	s.hs = &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	s.served = make(chan struct{})
	go func() {
		defer close(s.served)
		_ = s.hs.Serve(l)
	}()
}

// Stop stops the server like a SIGTERM does: connections are closed after
// the pushes in flight, then the storage is closed.
func (s *goServer) Stop() {
	if s.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	_ = s.hs.Close()
	<-s.served
	_ = s.closer.Close()
	s.srv, s.storage = nil, nil
}

// Log is the server's log of storeID, read from its storage.
func (s *goServer) Log(ctx context.Context, storeID string) ([]syncproto.Event, error) {
	if s.storage == nil {
		return nil, errors.New("server stopped")
	}
	stored, err := s.storage.Read(ctx, storeID, 0, 1<<62, 1<<30)
	if err != nil {
		return nil, err
	}
	out := make([]syncproto.Event, len(stored))
	for i, e := range stored {
		out[i] = e.Event
	}
	return out, nil
}

// pullLog reads storeID's whole log from any sync server with one non-live
// pull over the protocol: what a fresh client would get. It returns the
// backend id too. It speaks the protocol itself, to close the socket without
// a close handshake: the reference server never answers one, and waiting for
// it (as syncclient.Client.Close does) costs 5 s per call.
func pullLog(ctx context.Context, url, storeID string) ([]syncproto.Event, error) {
	evs, _, err := pullLogAndBackend(ctx, url, storeID)
	return evs, err
}

func pullLogAndBackend(ctx context.Context, url, storeID string) ([]syncproto.Event, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, strings.TrimRight(url, "/")+"/?storeId="+storeID+"&transport=ws", nil)
	if err != nil {
		return nil, "", err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(32 << 20)
	payload, err := json.Marshal(syncproto.PullRequest{StoreID: storeID})
	if err != nil {
		return nil, "", err
	}
	req, err := json.Marshal(&syncproto.Request{ID: "0", Tag: syncproto.TagPull, Payload: payload})
	if err != nil {
		return nil, "", err
	}
	if err := conn.Write(ctx, websocket.MessageText, req); err != nil {
		return nil, "", err
	}
	var out []syncproto.Event
	var backendID string
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return out, backendID, err
		}
		msg, err := syncproto.DecodeServerMessage(data)
		if err != nil {
			return out, backendID, err
		}
		switch m := msg.(type) {
		case *syncproto.Chunk:
			if m.RequestID != "0" {
				continue
			}
			for _, v := range m.Values {
				page, err := syncproto.DecodePullResponse(v)
				if err != nil {
					return out, backendID, err
				}
				backendID = page.BackendID
				for _, it := range page.Batch {
					out = append(out, it.Event)
				}
			}
			if err := conn.Write(ctx, websocket.MessageText, []byte(`{"_tag":"Ack","requestId":"0"}`)); err != nil {
				return out, backendID, err
			}
		case *syncproto.Exit:
			if m.RequestID == "0" {
				return out, backendID, m.Err()
			}
		case *syncproto.Defect:
			return out, backendID, fmt.Errorf("defect: %s", m.Defect)
		}
	}
}
