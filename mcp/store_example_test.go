package mcp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/mcp"
)

type noteAdded struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// Expose an application's own store to an assistant, with commit enabled.
// An application serving stdio calls mcp.Serve(ctx, store, opts) instead of
// connecting a transport itself.
func ExampleNewStoreServer() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "mcp-store-example")
	defer os.RemoveAll(dir)
	notes := livestore.NewTable("notes", livestore.Text("id").PrimaryKey(), livestore.Text("text"))
	added := livestore.Synced[noteAdded]("v1.NoteAdded")
	schema, err := livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{notes},
		Events: []livestore.Definition{added},
		Materializers: []livestore.Materializer{
			livestore.Materialize(added, func(_ *livestore.MaterializeContext, e noteAdded) ([]livestore.Statement, error) {
				return []livestore.Statement{notes.Insert(livestore.Values{"id": e.ID, "text": e.Text})}, nil
			}),
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	store, err := livestore.Open(ctx, schema, livestore.Options{Dir: filepath.Join(dir, "app")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()

	srv, err := mcp.NewStoreServer(store, mcp.StoreOptions{AllowCommit: true})
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
	cs, err := sdkmcp.NewClient(&sdkmcp.Implementation{Name: "example", Version: "v1"}, nil).Connect(ctx, clientEnd, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cs.Close()

	for _, p := range []*sdkmcp.CallToolParams{
		{Name: "commit", Arguments: map[string]any{"name": "v1.NoteAdded", "args": map[string]any{"id": "n1", "text": "hello"}}},
		{Name: "query", Arguments: map[string]any{"sql": "SELECT id, text FROM notes"}},
		{Name: "commit", Arguments: map[string]any{"name": "v1.NoteDeleted", "args": map[string]any{"id": "n1"}}},
	} {
		res, err := cs.CallTool(ctx, p)
		if err != nil {
			fmt.Println(err)
			return
		}
		if res.IsError {
			fmt.Println("error:", res.Content[0].(*sdkmcp.TextContent).Text)
			continue
		}
		b, _ := json.Marshal(res.StructuredContent)
		fmt.Println(string(b))
	}
	// Output:
	// {"head":"e1","name":"v1.NoteAdded"}
	// {"columns":["id","text"],"rows":[["n1","hello"]],"truncated":false}
	// error: unknown event "v1.NoteDeleted"; the store's events are "v1.NoteAdded"
}
