package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/livestore-go/livestore/syncserver"
)

// storageTools reads a sync server's storage.
type storageTools struct {
	st Storage
}

func addStorageTools(srv *sdkmcp.Server, st Storage) error {
	t := &storageTools{st: st}
	if err := addTool(srv, &sdkmcp.Tool{
		Name:        "list_stores",
		Description: "List every store of the sync server's storage with its backend id, head (seqNum of its last event) and creation time.",
		Annotations: readOnly("List sync server stores"),
	}, t.listStores); err != nil {
		return err
	}
	return addTool(srv, &sdkmcp.Tool{
		Name: "read_events",
		Description: "Read a store's events from the sync server's global log, in order, starting after a seqNum. " +
			"Page through a long log by passing the returned nextAfter as after while more is true.",
		Annotations: readOnly("Read sync server events"),
	}, t.readEvents)
}

type listStoresInput struct{}

type listStoresOutput struct {
	Stores []storeOut `json:"stores" jsonschema:"the stores, by storeId"`
}

type storeOut struct {
	StoreID   string `json:"storeId"`
	BackendID string `json:"backendId" jsonschema:"identifies the server's copy of the store; it changes only when the server's data is reset"`
	Head      int64  `json:"head" jsonschema:"seqNum of the store's last event; 0 when it has none"`
	CreatedAt string `json:"createdAt" jsonschema:"when the server first saw the store (UTC, ISO 8601)"`
}

func (t *storageTools) listStores(ctx context.Context, _ *sdkmcp.CallToolRequest, _ listStoresInput) (*sdkmcp.CallToolResult, listStoresOutput, error) {
	list, err := t.st.Stores(ctx)
	if err != nil {
		return nil, listStoresOutput{}, fmt.Errorf("list stores: %w", err)
	}
	out := listStoresOutput{Stores: make([]storeOut, len(list))}
	for i, s := range list {
		out.Stores[i] = storeOut{StoreID: s.StoreID, BackendID: s.BackendID, Head: s.Head, CreatedAt: syncserver.FormatCreatedAt(s.CreatedAt)}
	}
	return nil, out, nil
}

type readEventsInput struct {
	StoreID string `json:"storeId" jsonschema:"the store to read, as list_stores names it"`
	After   int64  `json:"after,omitempty" jsonschema:"return events whose seqNum is greater than this; 0 (the default) starts at the first event"`
	Limit   int    `json:"limit,omitempty" jsonschema:"the most events to return"`
}

type readEventsOutput struct {
	StoreID   string        `json:"storeId"`
	Head      int64         `json:"head" jsonschema:"seqNum of the store's last event when the call started"`
	Events    []serverEvent `json:"events"`
	NextAfter int64         `json:"nextAfter" jsonschema:"the after of the next page: the seqNum of the last event returned, or the requested after if none was"`
	More      bool          `json:"more" jsonschema:"whether events after nextAfter exist"`
}

type serverEvent struct {
	SeqNum       int64  `json:"seqNum"`
	ParentSeqNum int64  `json:"parentSeqNum"`
	Name         string `json:"name" jsonschema:"the event's name, e.g. v1.TodoCreated"`
	Args         any    `json:"args" jsonschema:"the event's arguments (JSON)"`
	ClientID     string `json:"clientId" jsonschema:"the client that committed the event"`
	SessionID    string `json:"sessionId" jsonschema:"the client session that committed the event"`
	CreatedAt    string `json:"createdAt" jsonschema:"when the server stored the event (UTC, ISO 8601)"`
}

func (t *storageTools) readEvents(ctx context.Context, _ *sdkmcp.CallToolRequest, in readEventsInput) (*sdkmcp.CallToolResult, readEventsOutput, error) {
	if in.StoreID == "" {
		return nil, readEventsOutput{}, fmt.Errorf("storeId is required; list_stores names the stores")
	}
	if in.After < 0 {
		return nil, readEventsOutput{}, fmt.Errorf("after %d: want a seqNum, 0 or more", in.After)
	}
	limit, err := pageLimit(in.Limit)
	if err != nil {
		return nil, readEventsOutput{}, err
	}
	head, err := t.head(ctx, in.StoreID)
	if err != nil {
		return nil, readEventsOutput{}, err
	}
	// One event more than asked tells whether there is a next page.
	evs, err := t.st.Read(ctx, in.StoreID, in.After, math.MaxInt64, limit+1)
	if err != nil {
		return nil, readEventsOutput{}, fmt.Errorf("read events of %q: %w", in.StoreID, err)
	}
	out := readEventsOutput{StoreID: in.StoreID, Head: head, NextAfter: in.After, More: len(evs) > limit}
	evs = evs[:min(len(evs), limit)]
	out.Events = make([]serverEvent, len(evs))
	for i, e := range evs {
		out.Events[i] = serverEvent{
			SeqNum:       e.SeqNum,
			ParentSeqNum: e.ParentSeqNum,
			Name:         e.Name,
			Args:         jsonArgs(e.Args),
			ClientID:     e.ClientID,
			SessionID:    e.SessionID,
			CreatedAt:    syncserver.FormatCreatedAt(e.CreatedAt),
		}
		out.NextAfter = e.SeqNum
	}
	return nil, out, nil
}

// head returns the head of storeID, or an error naming the known stores if
// the storage has no such store: reading an unknown store would otherwise
// look like reading an empty one.
func (t *storageTools) head(ctx context.Context, storeID string) (int64, error) {
	list, err := t.st.Stores(ctx)
	if err != nil {
		return 0, fmt.Errorf("list stores: %w", err)
	}
	ids := make([]string, len(list))
	for i, s := range list {
		if s.StoreID == storeID {
			return s.Head, nil
		}
		ids[i] = s.StoreID
	}
	if len(ids) == 0 {
		return 0, fmt.Errorf("unknown store %q: the storage holds no stores", storeID)
	}
	if len(ids) > 20 {
		return 0, fmt.Errorf("unknown store %q: the storage holds %d stores; list_stores names them", storeID, len(ids))
	}
	return 0, fmt.Errorf("unknown store %q; the stores are %s", storeID, quoteList(ids))
}

// jsonArgs returns args for embedding in a tool's JSON output: as stored if
// it is valid JSON, else as a string, so that one damaged event cannot make
// the whole result unencodable.
func jsonArgs(args []byte) any {
	if len(args) == 0 {
		return nil
	}
	if !json.Valid(args) {
		return string(args)
	}
	return json.RawMessage(args)
}
