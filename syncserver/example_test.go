package syncserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// A sync server on a SQLite file, served over HTTP; a Go client pushes two
// events and reads them back.
func Example() {
	dir, _ := os.MkdirTemp("", "livestore-example")
	defer os.RemoveAll(dir)

	storage, err := sqlitestore.Open(filepath.Join(dir, "sync.db"), sqlitestore.Options{})
	if err != nil {
		panic(err)
	}
	defer storage.Close()
	srv, err := syncserver.New(syncserver.Options{Storage: storage})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv) // in a program: http.ListenAndServe(addr, srv)
	defer hs.Close()

	ctx := context.Background()
	client, err := syncclient.Dial(ctx, hs.URL, syncclient.Options{StoreID: "todos"})
	if err != nil {
		panic(err)
	}
	defer client.Close()
	err = client.Push(ctx, []syncproto.Event{
		{Name: "v1.TodoCreated", Args: json.RawMessage(`{"id":"a1","text":"Buy milk"}`), SeqNum: 1, ParentSeqNum: 0, ClientID: "Xk3f9a", SessionID: "s-2b7q"},
		{Name: "v1.TodoCompleted", Args: json.RawMessage(`{"id":"a1"}`), SeqNum: 2, ParentSeqNum: 1, ClientID: "Xk3f9a", SessionID: "s-2b7q"},
	}, nil)
	if err != nil {
		panic(err)
	}
	stream, err := client.Pull(ctx, nil, false)
	if err != nil {
		panic(err)
	}
	defer stream.Close()
	page, err := stream.Next(ctx)
	if err != nil {
		panic(err)
	}
	for _, item := range page.Batch {
		fmt.Println(item.Event.SeqNum, item.Event.Name, string(item.Event.Args))
	}
	fmt.Println(page.PageInfo.Kind)
	// Output:
	// 1 v1.TodoCreated {"id":"a1","text":"Buy milk"}
	// 2 v1.TodoCompleted {"id":"a1"}
	// NoMore
}

// Auth rejects connections before the WebSocket upgrade; the client's sync
// payload (here an auth token) arrives with the request.
func ExampleOptions_auth() {
	dir, _ := os.MkdirTemp("", "livestore-example")
	defer os.RemoveAll(dir)
	storage, err := sqlitestore.Open(filepath.Join(dir, "sync.db"), sqlitestore.Options{})
	if err != nil {
		panic(err)
	}
	defer storage.Close()
	srv, err := syncserver.New(syncserver.Options{
		Storage: storage,
		Auth: func(ctx context.Context, storeID string, payload json.RawMessage, _ http.Header) (syncserver.Access, error) {
			var p struct{ AuthToken string }
			if json.Unmarshal(payload, &p) != nil || p.AuthToken != "insecure-token-change-me" {
				return syncserver.Access{}, fmt.Errorf("invalid auth token")
			}
			return syncserver.Access{}, nil
		},
	})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv)
	defer hs.Close()

	_, err = syncclient.Dial(context.Background(), hs.URL, syncclient.Options{StoreID: "todos", Payload: json.RawMessage(`{"authToken":"wrong"}`)})
	fmt.Println(err)
	c, err := syncclient.Dial(context.Background(), hs.URL, syncclient.Options{StoreID: "todos", Payload: json.RawMessage(`{"authToken":"insecure-token-change-me"}`)})
	fmt.Println(err)
	c.Close()
	// Output:
	// syncclient: dial: HTTP 401: unauthorized: invalid auth token
	// <nil>
}

// A storage wraps its failures so that the server can tell clients and
// /health what is wrong; context errors stay what they are.
func ExampleWrapStorageError() {
	kindOf := func(err error) syncserver.StorageErrorKind { return syncserver.StorageFull }
	err := syncserver.WrapStorageError("mystore: append to store todos", errors.New("no space left on device"), kindOf)
	fmt.Println(syncserver.StorageErrorKindOf(err), "-", err)
	err = syncserver.WrapStorageError("mystore: read", context.Canceled, kindOf)
	fmt.Println(errors.Is(err, context.Canceled), "-", err)
	// Output:
	// full - mystore: append to store todos: storage full: no space left on device
	// true - mystore: read: context canceled
}

// A storage opened read-only may lack the secret that backend ids of new
// stores derive from.
func ExampleBackendIDFor() {
	secret := make([]byte, syncserver.BackendIDSecretSize) // in a storage: NewBackendIDSecret, kept with the data
	id, err := syncserver.BackendIDFor(secret, "todos")
	fmt.Println(len(id), err)
	_, err = syncserver.BackendIDFor(nil, "todos")
	fmt.Println(errors.Is(err, syncserver.ErrNoBackendIDSecret))
	// Output:
	// 21 <nil>
	// true
}

func ExampleIsLoopbackHost() {
	for _, host := range []string{"localhost:8787", "127.0.0.1", "[::1]:8787", "app.localhost", "sync.example.com"} {
		fmt.Println(host, syncserver.IsLoopbackHost(host))
	}
	// Output:
	// localhost:8787 true
	// 127.0.0.1 true
	// [::1]:8787 true
	// app.localhost true
	// sync.example.com false
}
