package mcp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/livestore-go/livestore/mcp"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// Serve a sync server's storage and call a tool as an assistant would. A
// real deployment runs the server over stdio (`livestore mcp`) instead of an
// in-memory transport.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "mcp-example")
	defer os.RemoveAll(dir)
	storage, err := sqlitestore.Open(filepath.Join(dir, "sync.db"), sqlitestore.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer storage.Close()
	storage.Append(ctx, "todos", []syncproto.Event{
		{Name: "v1.TodoCreated", Args: json.RawMessage(`{"id":"1","text":"Buy milk"}`), SeqNum: 1, ParentSeqNum: 0, ClientID: "c1", SessionID: "s1"},
	}, time.Now())

	srv, err := mcp.NewServer(mcp.Options{Storage: storage})
	if err != nil {
		fmt.Println(err)
		return
	}
	serverEnd, clientEnd := sdkmcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, serverEnd, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ss.Wait()
	client := sdkmcp.NewClient(&sdkmcp.Implementation{Name: "example", Version: "v1"}, nil)
	cs, err := client.Connect(ctx, clientEnd, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cs.Close()

	res, err := cs.CallTool(ctx, &sdkmcp.CallToolParams{
		Name:      "read_events",
		Arguments: map[string]any{"storeId": "todos", "limit": 10},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	var out struct {
		Events []struct {
			SeqNum int64          `json:"seqNum"`
			Name   string         `json:"name"`
			Args   map[string]any `json:"args"`
		} `json:"events"`
		More bool `json:"more"`
	}
	b, _ := json.Marshal(res.StructuredContent)
	json.Unmarshal(b, &out)
	for _, e := range out.Events {
		fmt.Println(e.SeqNum, e.Name, e.Args["text"])
	}
	fmt.Println("more:", out.More)
	// Output:
	// 1 v1.TodoCreated Buy milk
	// more: false
}
