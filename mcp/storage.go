package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/livestore-go/livestore/syncserver"
)

// storageTools reads a sync server's storage.
type storageTools struct {
	st  Storage
	lim limits
}

func addStorageTools(srv *sdkmcp.Server, checks argChecks, st Storage, lim limits) error {
	t := &storageTools{st: st, lim: lim}
	if err := addTool(srv, checks, &sdkmcp.Tool{
		Name: "list_stores",
		Description: "List the stores of the sync server's storage, by storeId, with their backend id, head (seqNum of the last event) and creation time. " +
			"When more stores exist than an answer holds, more is true: list on with after = nextAfter.",
		Annotations: readOnly("List sync server stores"),
	}, t.listStores); err != nil {
		return err
	}
	return addTool(srv, checks, &sdkmcp.Tool{
		Name: "read_events",
		Description: "Read a store's events from the sync server's global log, in order, starting after a seqNum. " +
			"Page through a long log by passing the returned nextAfter as after while more is true; a page ends early when the answer reaches its size limit, " +
			"and an event too large for an answer comes without its args (argsOmitted says so).",
		Annotations: readOnly("Read sync server events"),
	}, t.readEvents)
}

type listStoresInput struct {
	After string `json:"after,omitempty" jsonschema:"list the stores whose storeId sorts after this one; empty (the default) starts at the first"`
}

type listStoresOutput struct {
	Stores    []storeOut `json:"stores" jsonschema:"the stores, by storeId"`
	More      bool       `json:"more" jsonschema:"whether stores after nextAfter exist that the answer had no room for"`
	NextAfter string     `json:"nextAfter,omitempty" jsonschema:"the after of the next page when more is true"`
}

type storeOut struct {
	StoreID   string `json:"storeId"`
	BackendID string `json:"backendId" jsonschema:"identifies the server's copy of the store; it changes only when the server's data is reset"`
	Head      int64  `json:"head" jsonschema:"seqNum of the store's last event; 0 when it has none"`
	CreatedAt string `json:"createdAt" jsonschema:"when the server first saw the store (UTC, ISO 8601)"`
}

func (t *storageTools) listStores(ctx context.Context, _ *sdkmcp.CallToolRequest, in listStoresInput) (*sdkmcp.CallToolResult, listStoresOutput, error) {
	ctx, cancel := t.lim.call(ctx)
	defer cancel()
	list, err := t.st.Stores(ctx)
	if err != nil {
		return nil, listStoresOutput{}, fmt.Errorf("list stores: %w", err)
	}
	slices.SortFunc(list, func(a, b syncserver.StoreInfo) int { return strings.Compare(a.StoreID, b.StoreID) })
	out := listStoresOutput{Stores: []storeOut{}}
	free := t.lim.budget() - sizeOf(out) - len(`,"nextAfter":""`) - syncserver.MaxStoreIDLength
	for _, s := range list {
		if s.StoreID <= in.After {
			continue
		}
		so := storeOut{StoreID: s.StoreID, BackendID: s.BackendID, Head: s.Head, CreatedAt: syncserver.FormatCreatedAt(s.CreatedAt)}
		size := sizeOf(so) + 1
		if size > free {
			if len(out.Stores) == 0 {
				return nil, listStoresOutput{}, fmt.Errorf("store %q does not fit in an answer", s.StoreID)
			}
			out.More = true
			out.NextAfter = out.Stores[len(out.Stores)-1].StoreID
			break
		}
		free -= size
		out.Stores = append(out.Stores, so)
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
	Note      string        `json:"note,omitempty" jsonschema:"why the page holds fewer events than limit although more exist"`
}

type serverEvent struct {
	SeqNum       int64  `json:"seqNum"`
	ParentSeqNum int64  `json:"parentSeqNum"`
	Name         string `json:"name" jsonschema:"the event's name, e.g. v1.TodoCreated"`
	Args         any    `json:"args" jsonschema:"the event's arguments (JSON)"`
	ClientID     string `json:"clientId" jsonschema:"the client that committed the event"`
	SessionID    string `json:"sessionId" jsonschema:"the client session that committed the event"`
	CreatedAt    string `json:"createdAt" jsonschema:"when the server stored the event (UTC, ISO 8601)"`
	ArgsOmitted  string `json:"argsOmitted,omitempty" jsonschema:"set when args were left out because the event is too large for an answer"`
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
	ctx, cancel := t.lim.call(ctx)
	defer cancel()
	head, err := t.head(ctx, in.StoreID)
	if err != nil {
		return nil, readEventsOutput{}, err
	}
	out := readEventsOutput{StoreID: in.StoreID, Head: head, NextAfter: in.After, Events: []serverEvent{}}
	free := t.lim.budget() - sizeOf(out)
	// The storage returns whole pages, so read in chunks sized from the
	// events seen so far: memory holds about one answer, not limit events.
	chunk := firstChunk
	for len(out.Events) < limit {
		evs, err := t.st.Read(ctx, in.StoreID, out.NextAfter, math.MaxInt64, min(chunk, limit-len(out.Events)))
		if err != nil {
			return nil, readEventsOutput{}, fmt.Errorf("read events of %q: %w", in.StoreID, err)
		}
		if len(evs) == 0 {
			return nil, out, nil
		}
		read := 0
		for _, e := range evs {
			se := serverEvent{
				SeqNum:       e.SeqNum,
				ParentSeqNum: e.ParentSeqNum,
				Name:         e.Name,
				Args:         jsonArgs(e.Args),
				ClientID:     e.ClientID,
				SessionID:    e.SessionID,
				CreatedAt:    syncserver.FormatCreatedAt(e.CreatedAt),
			}
			// Args longer than the room left cannot fit: no need to encode them.
			size := len(e.Args)
			if size <= free {
				size = sizeOf(se) + 1
			}
			read += size
			if size > free {
				if len(out.Events) > 0 {
					out.More = true
					out.Note = t.lim.capNote("read on with after = nextAfter")
					return nil, out, nil
				}
				se.Args = nil
				se.ArgsOmitted = fmt.Sprintf("the event is at least %d bytes as JSON, more than an answer holds", size)
				if size = sizeOf(se) + 1; size > free {
					return nil, readEventsOutput{}, fmt.Errorf("event %d is too large for an answer even without its args; read on with after = %d", se.SeqNum, se.SeqNum)
				}
			}
			free -= size
			out.Events = append(out.Events, se)
			out.NextAfter = se.SeqNum
		}
		chunk = max(1, min(maxChunk, free/(read/len(evs)+1)+1))
	}
	// One event more than asked tells whether there is a next page.
	next, err := t.st.Read(ctx, in.StoreID, out.NextAfter, math.MaxInt64, 1)
	if err != nil {
		return nil, readEventsOutput{}, fmt.Errorf("read events of %q: %w", in.StoreID, err)
	}
	out.More = len(next) > 0
	return nil, out, nil
}

// Chunk sizes of read_events: the first read, before event sizes are known,
// and the largest.
const (
	firstChunk = 2
	maxChunk   = 256
)

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
