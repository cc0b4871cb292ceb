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
	lim  limits
}

func addClientStoreTools(srv *sdkmcp.Server, checks argChecks, dirs []string, lim limits) error {
	t := &clientStoreTools{dirs: slices.Clone(dirs), lim: lim}
	allowed := " Allowed dirs: " + quoteList(t.dirs) + "."
	if err := addTool(srv, checks, &sdkmcp.Tool{
		Name: "client_store_summary",
		Description: "Summarise a client store directory: its eventlog head, number of events and of pending (not yet synced) events, " +
			"the sync head and backend id it last saw, and its state tables with their row counts." + allowed,
		Annotations: readOnly("Summarise a client store"),
	}, t.summary); err != nil {
		return err
	}
	if err := addTool(srv, checks, &sdkmcp.Tool{
		Name: "client_store_events",
		Description: "Read a client store's eventlog, in order, starting after a seqNum (e5 is synced event 5, e5.1 the first client-only event after it). " +
			"Page by passing the returned nextAfter as after while more is true; a page ends early when the answer reaches its size limit, " +
			"and an event too large for an answer comes without its args (argsOmitted says so)." + allowed,
		Annotations: readOnly("Read client store events"),
	}, t.events); err != nil {
		return err
	}
	if err := addTool(srv, checks, &sdkmcp.Tool{
		Name:        "sync_status",
		Description: "The sync status recorded in a client store directory: eventlog head, the head the sync server confirmed, pending events, backend id, and recovery files." + allowed,
		Annotations: readOnly("Client store sync status"),
	}, t.syncStatus); err != nil {
		return err
	}
	return addTool(srv, checks, &sdkmcp.Tool{
		Name: "client_store_query",
		Description: "Run one read-only SQL statement over a client store's database (SQLite) and return the rows: a SELECT over the state tables " +
			"(client_store_summary lists them) or the eventlog, or a reporting PRAGMA such as table_info(todos). Statements that write are rejected. " +
			"The answer holds at most limit rows and is bounded in size (truncatedBy says which limit ended it); a query is stopped after its time limit." + allowed,
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
	ctx, cancel := t.lim.call(ctx)
	defer cancel()
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
	Note      string        `json:"note,omitempty" jsonschema:"why the page holds fewer events than limit although more exist"`
}

type clientEvent struct {
	SeqNum       string `json:"seqNum" jsonschema:"e.g. e5 (synced), e5.1 (client-only), e5r1 (after a rebase)"`
	ParentSeqNum string `json:"parentSeqNum"`
	Name         string `json:"name" jsonschema:"the event's name, e.g. v1.TodoCreated"`
	Args         any    `json:"args" jsonschema:"the event's arguments (JSON)"`
	ClientID     string `json:"clientId"`
	SessionID    string `json:"sessionId"`
	SyncMetadata any    `json:"syncMetadata,omitempty" jsonschema:"what the sync server attached to the event, if it was synced"`
	ArgsOmitted  string `json:"argsOmitted,omitempty" jsonschema:"set when args (and syncMetadata) were left out because the event is too large for an answer"`
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
	out := clientEventsOutput{Dir: in.Dir, NextAfter: after.String(), Events: []clientEvent{}}
	free := t.lim.budget() - sizeOf(out)
	err = d.ScanEvents(ctx, after, t.lim.timeout, func(e eventlog.Event) error {
		if len(out.Events) == limit {
			out.More = true
			return inspect.ErrStop
		}
		ce := clientEvent{
			SeqNum:       e.SeqNum.String(),
			ParentSeqNum: e.ParentSeqNum.String(),
			Name:         e.Name,
			Args:         jsonArgs(e.Args),
			ClientID:     e.ClientID,
			SessionID:    e.SessionID,
			SyncMetadata: jsonArgs(e.SyncMetadata),
		}
		// Args longer than the room left cannot fit: no need to encode them.
		size := len(e.Args) + len(e.SyncMetadata)
		if size <= free {
			size = sizeOf(ce) + 1
		}
		if size > free {
			if len(out.Events) > 0 {
				out.More = true
				out.Note = t.lim.capNote("read on with after = nextAfter")
				return inspect.ErrStop
			}
			ce.Args, ce.SyncMetadata = nil, nil
			ce.ArgsOmitted = fmt.Sprintf("the event is at least %d bytes as JSON, more than an answer holds; query its args in parts with client_store_query, e.g. substr(args, 1, 10000)", size)
			if size = sizeOf(ce) + 1; size > free {
				return fmt.Errorf("event %s is too large for an answer even without its args; read on with after = %q", ce.SeqNum, ce.SeqNum)
			}
		}
		free -= size
		out.Events = append(out.Events, ce)
		out.NextAfter = ce.SeqNum
		return nil
	})
	if err != nil {
		return nil, clientEventsOutput{}, err
	}
	return nil, out, nil
}

type queryInput struct {
	Dir   string `json:"dir" jsonschema:"the client store directory, exactly as configured"`
	SQL   string `json:"sql" jsonschema:"one read-only SQLite statement, e.g. SELECT * FROM todos WHERE completed = 0"`
	Limit int    `json:"limit,omitempty" jsonschema:"the most rows to return"`
}

type queryOutput struct {
	Columns     []string `json:"columns"`
	Rows        [][]any  `json:"rows" jsonschema:"the rows, each a list of values in the order of columns; blobs are base64"`
	Truncated   bool     `json:"truncated" jsonschema:"whether the query had more rows than the answer holds"`
	TruncatedBy string   `json:"truncatedBy,omitempty" jsonschema:"the limit that ended the answer: rows (the limit argument) or bytes (the answer's size limit)"`
	Note        string   `json:"note,omitempty" jsonschema:"how to read the rows the answer left out"`
}

func (t *clientStoreTools) query(ctx context.Context, _ *sdkmcp.CallToolRequest, in queryInput) (*sdkmcp.CallToolResult, queryOutput, error) {
	// inspect bounds the time, and says so when the bound stops it.
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
	// The note is at most a few hundred bytes, within answerReserve.
	res, err := d.Query(ctx, in.SQL, inspect.Limits{MaxRows: limit, MaxBytes: t.lim.budget(), Timeout: t.lim.timeout})
	if err != nil {
		return nil, queryOutput{}, err
	}
	out := queryOutput{Columns: res.Columns, Rows: res.Rows, Truncated: res.Truncated, TruncatedBy: res.TruncatedBy}
	switch res.TruncatedBy {
	case inspect.LimitRows:
		out.Note = fmt.Sprintf("only the first %d rows; raise limit (at most %d) or page with LIMIT/OFFSET", limit, MaxLimit)
	case inspect.LimitBytes:
		out.Note = t.lim.capNote(fmt.Sprintf("only the first %d rows fit; select fewer or shorter columns (length(col), substr(col, 1, 1000)) or page with LIMIT/OFFSET", len(res.Rows)))
	}
	if out.Columns == nil {
		out.Columns = []string{}
	}
	if out.Rows == nil {
		out.Rows = [][]any{}
	}
	return nil, out, nil
}
