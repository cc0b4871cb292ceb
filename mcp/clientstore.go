package mcp

import (
	"context"
	"fmt"
	"slices"

	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/inspect"
)

// clientStoreTools reads client store directories, only those configured.
type clientStoreTools struct {
	dirs []string
}

func addClientStoreTools(srv *sdkmcp.Server, dirs []string) error {
	t := &clientStoreTools{dirs: slices.Clone(dirs)}
	allowed := " Allowed dirs: " + quoteList(t.dirs) + "."
	if err := addTool(srv, &sdkmcp.Tool{
		Name: "client_store_summary",
		Description: "Summarise a client store directory: its eventlog head, number of events and of pending (not yet synced) events, " +
			"the sync head and backend id it last saw, and its state tables with their row counts." + allowed,
		Annotations: readOnly("Summarise a client store"),
	}, t.summary); err != nil {
		return err
	}
	if err := addTool(srv, &sdkmcp.Tool{
		Name: "client_store_events",
		Description: "Read a client store's eventlog, in order, starting after a seqNum (e5 is synced event 5, e5.1 the first client-only event after it). " +
			"Page by passing the returned nextAfter as after while more is true." + allowed,
		Annotations: readOnly("Read client store events"),
	}, t.events); err != nil {
		return err
	}
	return addTool(srv, &sdkmcp.Tool{
		Name: "client_store_query",
		Description: "Run one read-only SQL statement over a client store's database (SQLite) and return the rows: a SELECT over the state tables " +
			"(client_store_summary lists them) or the eventlog, or a reporting PRAGMA such as table_info(todos). Statements that write are rejected." + allowed,
		Annotations: readOnly("Query a client store"),
	}, t.query)
}

// open opens dir if it is one of the configured directories. The caller
// closes the result.
func (t *clientStoreTools) open(ctx context.Context, dir string) (*inspect.Dir, error) {
	if dir == "" {
		return nil, fmt.Errorf("dir is required; allowed dirs: %s", quoteList(t.dirs))
	}
	if !slices.Contains(t.dirs, dir) {
		return nil, fmt.Errorf("dir %q is not served; allowed dirs: %s", dir, quoteList(t.dirs))
	}
	// inspect's errors name the directory and what failed.
	return inspect.Open(ctx, dir)
}

type summaryInput struct {
	Dir string `json:"dir" jsonschema:"the client store directory, exactly as configured"`
}

type summaryOutput struct {
	Dir        string      `json:"dir"`
	Head       string      `json:"head" jsonschema:"seqNum of the last event in the eventlog, e.g. e12 or e12.1; e0 when there is none"`
	Events     int64       `json:"events" jsonschema:"number of events in the eventlog"`
	Pending    int64       `json:"pending" jsonschema:"number of synced events not yet confirmed by the sync server"`
	ClientOnly int64       `json:"clientOnly" jsonschema:"number of client-only events (they never leave this client)"`
	SyncHead   int64       `json:"syncHead" jsonschema:"global seqNum up to which the sync server has confirmed the log"`
	BackendID  string      `json:"backendId" jsonschema:"backend id of the sync server last seen; empty if the store never synced"`
	Tables     []tableInfo `json:"tables" jsonschema:"the state tables"`
}

type tableInfo struct {
	Name string `json:"name"`
	Rows int64  `json:"rows"`
}

func (t *clientStoreTools) summary(ctx context.Context, _ *sdkmcp.CallToolRequest, in summaryInput) (*sdkmcp.CallToolResult, summaryOutput, error) {
	d, err := t.open(ctx, in.Dir)
	if err != nil {
		return nil, summaryOutput{}, err
	}
	defer d.Close()
	s, err := d.Summary(ctx)
	if err != nil {
		return nil, summaryOutput{}, err
	}
	out := summaryOutput{
		Dir:        in.Dir,
		Head:       s.Head.String(),
		Events:     s.Events,
		Pending:    s.Pending,
		ClientOnly: s.ClientOnly,
		SyncHead:   s.SyncHead,
		BackendID:  s.BackendID,
		Tables:     make([]tableInfo, len(s.Tables)),
	}
	for i, tb := range s.Tables {
		out.Tables[i] = tableInfo{Name: tb.Name, Rows: tb.Rows}
	}
	return nil, out, nil
}

type clientEventsInput struct {
	Dir   string `json:"dir" jsonschema:"the client store directory, exactly as configured"`
	After string `json:"after,omitempty" jsonschema:"return events after this seqNum, e.g. e5 or e5.1; empty (the default) starts at the first event"`
	Limit int    `json:"limit,omitempty" jsonschema:"the most events to return"`
}

type clientEventsOutput struct {
	Dir       string        `json:"dir"`
	Events    []clientEvent `json:"events"`
	NextAfter string        `json:"nextAfter" jsonschema:"the after of the next page: the seqNum of the last event returned, or the requested after if none was"`
	More      bool          `json:"more" jsonschema:"whether events after nextAfter exist"`
}

type clientEvent struct {
	SeqNum       string `json:"seqNum" jsonschema:"e.g. e5 (synced), e5.1 (client-only), e5r1 (after a rebase)"`
	ParentSeqNum string `json:"parentSeqNum"`
	Name         string `json:"name" jsonschema:"the event's name, e.g. v1.TodoCreated"`
	Args         any    `json:"args" jsonschema:"the event's arguments (JSON)"`
	ClientID     string `json:"clientId"`
	SessionID    string `json:"sessionId"`
	SyncMetadata any    `json:"syncMetadata,omitempty" jsonschema:"what the sync server attached to the event, if it was synced"`
}

func (t *clientStoreTools) events(ctx context.Context, _ *sdkmcp.CallToolRequest, in clientEventsInput) (*sdkmcp.CallToolResult, clientEventsOutput, error) {
	after := eventlog.Root
	if in.After != "" {
		var err error
		if after, err = eventlog.ParseSeqNum(in.After); err != nil {
			return nil, clientEventsOutput{}, fmt.Errorf("after: %w (want e.g. e5 or e5.1)", err)
		}
	}
	limit, err := pageLimit(in.Limit)
	if err != nil {
		return nil, clientEventsOutput{}, err
	}
	d, err := t.open(ctx, in.Dir)
	if err != nil {
		return nil, clientEventsOutput{}, err
	}
	defer d.Close()
	evs, err := d.Events(ctx, after, limit+1)
	if err != nil {
		return nil, clientEventsOutput{}, err
	}
	out := clientEventsOutput{Dir: in.Dir, NextAfter: after.String(), More: len(evs) > limit}
	evs = evs[:min(len(evs), limit)]
	out.Events = make([]clientEvent, len(evs))
	for i, e := range evs {
		out.Events[i] = clientEvent{
			SeqNum:       e.SeqNum.String(),
			ParentSeqNum: e.ParentSeqNum.String(),
			Name:         e.Name,
			Args:         jsonArgs(e.Args),
			ClientID:     e.ClientID,
			SessionID:    e.SessionID,
			SyncMetadata: jsonArgs(e.SyncMetadata),
		}
		out.NextAfter = e.SeqNum.String()
	}
	return nil, out, nil
}

type queryInput struct {
	Dir   string `json:"dir" jsonschema:"the client store directory, exactly as configured"`
	SQL   string `json:"sql" jsonschema:"one read-only SQLite statement, e.g. SELECT * FROM todos WHERE completed = 0"`
	Limit int    `json:"limit,omitempty" jsonschema:"the most rows to return"`
}

type queryOutput struct {
	Columns   []string `json:"columns"`
	Rows      [][]any  `json:"rows" jsonschema:"the rows, each a list of values in the order of columns; blobs are base64"`
	Truncated bool     `json:"truncated" jsonschema:"whether the query had more rows than limit"`
}

func (t *clientStoreTools) query(ctx context.Context, _ *sdkmcp.CallToolRequest, in queryInput) (*sdkmcp.CallToolResult, queryOutput, error) {
	if in.SQL == "" {
		return nil, queryOutput{}, fmt.Errorf("sql is required")
	}
	limit, err := pageLimit(in.Limit)
	if err != nil {
		return nil, queryOutput{}, err
	}
	d, err := t.open(ctx, in.Dir)
	if err != nil {
		return nil, queryOutput{}, err
	}
	defer d.Close()
	res, err := d.Query(ctx, in.SQL, limit)
	if err != nil {
		return nil, queryOutput{}, err
	}
	out := queryOutput{Columns: res.Columns, Rows: res.Rows, Truncated: res.Truncated}
	if out.Columns == nil {
		out.Columns = []string{}
	}
	if out.Rows == nil {
		out.Rows = [][]any{}
	}
	return nil, out, nil
}
