package syncclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// exampleServer starts a throw-away sync server and returns its URL.
func exampleServer() (url string, stop func()) {
	dir, _ := os.MkdirTemp("", "livestore-example")
	storage, err := sqlitestore.Open(filepath.Join(dir, "sync.db"), sqlitestore.Options{})
	if err != nil {
		panic(err)
	}
	srv, err := syncserver.New(syncserver.Options{Storage: storage})
	if err != nil {
		panic(err)
	}
	hs := httptest.NewServer(srv)
	return hs.URL, func() {
		srv.Close()
		hs.Close()
		storage.Close()
		os.RemoveAll(dir)
	}
}

func event(seq int64, name, args string) syncproto.Event {
	return syncproto.Event{Name: name, Args: json.RawMessage(args), SeqNum: seq, ParentSeqNum: seq - 1, ClientID: "Xk3f9a", SessionID: "s-2b7q"}
}

// A live pull follows the store: it delivers what is there, then each push.
func ExampleClient_Pull() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	client, err := syncclient.Dial(ctx, url, syncclient.Options{StoreID: "todos"})
	if err != nil {
		panic(err)
	}
	defer client.Close()

	live, err := client.Pull(ctx, nil, true)
	if err != nil {
		panic(err)
	}
	defer live.Close()
	first, _ := live.Next(ctx) // the store is empty: one empty page
	fmt.Println(len(first.Batch), first.PageInfo.Kind)

	_ = client.Push(ctx, []syncproto.Event{event(1, "v1.TodoCreated", `{"id":"a1","text":"Buy milk"}`)}, &first.BackendID)
	next, _ := live.Next(ctx) // the push, as it was stored
	fmt.Println(next.Batch[0].Event.Name, next.Batch[0].Event.SeqNum)
	// Output:
	// 0 NoMore
	// v1.TodoCreated 1
}

// A push based on an old head fails with ServerAheadError: the client must
// pull the newer events and rebase its own on top.
func ExampleClient_Push() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	alice, _ := syncclient.Dial(ctx, url, syncclient.Options{StoreID: "todos"})
	defer alice.Close()
	bob, _ := syncclient.Dial(ctx, url, syncclient.Options{StoreID: "todos"})
	defer bob.Close()

	_ = alice.Push(ctx, []syncproto.Event{event(1, "v1.TodoCreated", `{"id":"a1"}`)}, nil)
	err := bob.Push(ctx, []syncproto.Event{event(1, "v1.TodoCreated", `{"id":"b1"}`)}, nil)
	var ahead *syncproto.ServerAheadError
	if errors.As(err, &ahead) {
		fmt.Println("server head:", ahead.MinimumExpectedNum)
		// Bob's event, rebased onto the server's head.
		err = bob.Push(ctx, []syncproto.Event{event(ahead.MinimumExpectedNum+1, "v1.TodoCreated", `{"id":"b1"}`)}, nil)
	}
	fmt.Println(err)
	// Output:
	// server head: 1
	// <nil>
}

// The HTTP transport: every call is one request, and a live pull asks the
// server again every PollInterval (at once after a push of its own
// connection).
func ExampleHTTPBackend() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	backend := syncclient.HTTPBackend(url, syncclient.HTTPOptions{PollInterval: time.Second})
	conn, err := backend.Connect(ctx, "todos", nil) // pings the server
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	live, err := conn.Pull(ctx, nil, true)
	if err != nil {
		panic(err)
	}
	defer live.Close()
	first, _ := live.Next(ctx) // the store is empty: one empty page
	fmt.Println(len(first.Batch), first.PageInfo.Kind)

	_ = conn.Push(ctx, []syncproto.Event{event(1, "v1.TodoCreated", `{"id":"a1","text":"Buy milk"}`)}, &first.BackendID)
	next, _ := live.Next(ctx) // the next poll brings the push
	fmt.Println(next.Batch[0].Event.Name, next.Batch[0].Event.SeqNum)

	err = conn.Push(ctx, []syncproto.Event{event(1, "v1.TodoCreated", `{"id":"b1"}`)}, &first.BackendID)
	var ahead *syncproto.ServerAheadError
	fmt.Println(errors.As(err, &ahead), ahead.MinimumExpectedNum)
	// Output:
	// 0 NoMore
	// v1.TodoCreated 1
	// true 1
}
