package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/rowbudget"
)

// StoreOptions configures [NewStoreServer] and [Serve].
type StoreOptions struct {
	// AllowCommit registers the commit tool, which appends events to the
	// store. Off by default: an assistant can then only read.
	AllowCommit bool
	// Version is reported as the server's version; default "dev".
	Version string
	// Logger receives the protocol server's log; nil discards it.
	Logger *slog.Logger
	// MaxAnswerBytes bounds the size of one tool answer, as
	// Options.MaxAnswerBytes does.
	MaxAnswerBytes int
	// QueryTimeout bounds how long one tool call reads, as
	// Options.QueryTimeout does.
	QueryTimeout time.Duration
}

// NewStoreServer returns an MCP server over an application's open store,
// with the tools status (the store's SyncStatus), query (one read-only SQL
// statement through Store.QueryReadOnly), events (the store's eventlog,
// paged) and, when opts.AllowCommit is set, commit (an event by name with
// JSON args, checked by the store's schema). The store stays the caller's:
// the server never closes it.
func NewStoreServer(store *livestore.Store, opts StoreOptions) (*sdkmcp.Server, error) {
	if store == nil {
		return nil, errors.New("mcp: nil store")
	}
	lim, err := newLimits(Options{MaxAnswerBytes: opts.MaxAnswerBytes, QueryTimeout: opts.QueryTimeout})
	if err != nil {
		return nil, err
	}
	version := opts.Version
	if version == "" {
		version = "dev"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &storeTools{store: store, lim: lim}
	srv := sdkmcp.NewServer(&sdkmcp.Implementation{Name: "livestore", Title: "LiveStore", Version: version},
		&sdkmcp.ServerOptions{Instructions: t.instructions(opts.AllowCommit), Logger: log})
	checks := argChecks{}
	if err := addTool(srv, checks, &sdkmcp.Tool{
		Name:        "status",
		Description: "Where the store stands: its id, the head of its local eventlog, the head the sync server confirmed, pending (unconfirmed) events, connection, backend id and recovery file.",
		Annotations: readOnly("Store status"),
	}, t.status); err != nil {
		return nil, err
	}
	if err := addTool(srv, checks, &sdkmcp.Tool{
		Name: "query",
		Description: "Run one read-only SQL statement (SQLite) over the store's database and return the rows: a SELECT over the state tables (" +
			strings.Join(t.tableNames(), ", ") + ") or the eventlog, or a reporting PRAGMA. Statements that write are rejected. " +
			"The answer holds at most limit rows and is bounded in size (truncatedBy says which limit ended it); a query is stopped after its time limit.",
		Annotations: readOnly("Query the store"),
	}, t.query); err != nil {
		return nil, err
	}
	if err := addTool(srv, checks, &sdkmcp.Tool{
		Name: "events",
		Description: "Read the store's eventlog, in order, starting after a seqNum (e5 is synced event 5, e5.1 the first client-only event after it). " +
			"Page by passing the returned nextAfter as after while more is true; name selects the events of one name.",
		Annotations: readOnly("Read store events"),
	}, t.events); err != nil {
		return nil, err
	}
	if opts.AllowCommit {
		closed := false
		if err := addTool(srv, checks, &sdkmcp.Tool{
			Name: "commit",
			Description: "Commit one event to the store: it is appended to the eventlog, applied to the state tables and, if synced, pushed to the sync server. " +
				"name is one of " + strings.Join(store.Schema().EventNames(), ", ") + "; args is the event's arguments as a JSON object.",
			Annotations: &sdkmcp.ToolAnnotations{Title: "Commit an event", OpenWorldHint: &closed},
		}, t.commit); err != nil {
			return nil, err
		}
	}
	srv.AddReceivingMiddleware(checks.middleware)
	return srv, nil
}

// Serve serves store over stdin and stdout with the tools of
// [NewStoreServer] until the client disconnects or ctx ends.
func Serve(ctx context.Context, store *livestore.Store, opts StoreOptions) error {
	srv, err := NewStoreServer(store, opts)
	if err != nil {
		return err
	}
	if err := srv.Run(ctx, &sdkmcp.StdioTransport{}); err != nil && ctx.Err() == nil {
		return fmt.Errorf("mcp: serve: %w", err)
	}
	return nil
}

// storeTools serves an application's open store.
type storeTools struct {
	store *livestore.Store
	lim   limits
}

func (t *storeTools) tableNames() []string {
	var names []string
	for _, tb := range t.store.Schema().Tables() {
		names = append(names, tb.Name())
	}
	return names
}

func (t *storeTools) instructions(commit bool) string {
	s := "Access to a LiveStore store. LiveStore keeps the store as an ordered log of named events with JSON args; the state (SQLite tables) is derived from the log. " +
		"status, query and events read it"
	if commit {
		return s + "; commit appends an event, which changes the state and reaches the store's other clients."
	}
	return s + "; the application did not enable changing it."
}

type statusInput struct{}

type statusOutput struct {
	StoreID        string `json:"storeId"`
	LocalHead      string `json:"localHead" jsonschema:"seqNum of the newest event in the local eventlog, e.g. e12 or e12.1"`
	UpstreamHead   int64  `json:"upstreamHead" jsonschema:"the newest global seqNum the sync server confirmed"`
	Pending        int    `json:"pending" jsonschema:"synced events not yet confirmed by the sync server"`
	Connected      bool   `json:"connected"`
	IsSynced       bool   `json:"isSynced" jsonschema:"connected, caught up and nothing pending"`
	BackendID      string `json:"backendId,omitempty"`
	Error          string `json:"error,omitempty" jsonschema:"why syncing stopped or the last connection failed"`
	Stopped        bool   `json:"stopped" jsonschema:"syncing ended for good; the store keeps working locally"`
	RecoveryFile   string `json:"recoveryFile,omitempty" jsonschema:"where the events were saved when the sync server's backend changed"`
	RecoveredCount int    `json:"recoveredCount,omitempty"`
	NextRetryAt    string `json:"nextRetryAt,omitempty" jsonschema:"when syncing reconnects (UTC, ISO 8601)"`
}

func (t *storeTools) status(ctx context.Context, _ *sdkmcp.CallToolRequest, _ statusInput) (*sdkmcp.CallToolResult, statusOutput, error) {
	ctx, cancel := t.lim.call(ctx)
	defer cancel()
	s, err := t.store.SyncStatus(ctx)
	if err != nil {
		return nil, statusOutput{}, fmt.Errorf("read sync status: %w", err)
	}
	out := statusOutput{
		StoreID: t.store.StoreID(), LocalHead: s.LocalHead.String(), UpstreamHead: s.UpstreamHead, Pending: s.PendingCount,
		Connected: s.Connected, IsSynced: s.IsSynced, BackendID: s.BackendID, Error: s.Err, Stopped: s.Stopped,
		RecoveryFile: s.RecoveryFile, RecoveredCount: s.RecoveredCount,
	}
	if !s.NextRetryAt.IsZero() {
		out.NextRetryAt = s.NextRetryAt.UTC().Format(time.RFC3339Nano)
	}
	return nil, out, nil
}

type storeQueryInput struct {
	SQL   string `json:"sql" jsonschema:"one read-only SQLite statement, e.g. SELECT * FROM todos"`
	Limit int    `json:"limit,omitempty" jsonschema:"the most rows to return"`
}

func (t *storeTools) query(ctx context.Context, _ *sdkmcp.CallToolRequest, in storeQueryInput) (*sdkmcp.CallToolResult, queryOutput, error) {
	if strings.TrimSpace(in.SQL) == "" {
		return nil, queryOutput{}, errors.New("sql is required")
	}
	limit, err := pageLimit(in.Limit)
	if err != nil {
		return nil, queryOutput{}, err
	}
	ctx, cancel := t.lim.call(ctx)
	defer cancel()
	rows := rowbudget.New(limit, t.lim.budget())
	cols, err := t.store.QueryReadOnly(ctx, in.SQL, nil, rows.Add)
	out := queryOutput{Rows: rows.Rows(), TruncatedBy: rows.TruncatedBy()}
	out.Truncated = out.TruncatedBy != ""
	switch {
	case errors.Is(err, rowbudget.ErrFull):
	case err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, queryOutput{}, fmt.Errorf("the query ran longer than its time limit (%s) and was stopped", t.lim.timeout)
	case err != nil:
		return nil, queryOutput{}, fmt.Errorf("query: %w", err)
	}
	out.Columns = cols
	if out.Columns == nil {
		out.Columns = []string{}
	}
	switch out.TruncatedBy {
	case "rows":
		out.Note = fmt.Sprintf("only the first %d rows; raise limit (at most %d) or page with LIMIT/OFFSET", limit, MaxLimit)
	case "bytes":
		out.Note = t.lim.capNote(fmt.Sprintf("only the first %d rows fit; select fewer or shorter columns or page with LIMIT/OFFSET", len(out.Rows)))
	}
	return nil, out, nil
}

type storeEventsInput struct {
	After string `json:"after,omitempty" jsonschema:"return events after this seqNum, e.g. e5 or e5.1; empty (the default) starts at the first event"`
	Name  string `json:"name,omitempty" jsonschema:"only events of this name, e.g. v1.TodoCreated"`
	Limit int    `json:"limit,omitempty" jsonschema:"the most events to return"`
}

type storeEventsOutput struct {
	Events    []storeEvent `json:"events"`
	NextAfter string       `json:"nextAfter" jsonschema:"the after of the next page: the seqNum of the last event returned, or the requested after if none was"`
	More      bool         `json:"more" jsonschema:"whether events after nextAfter exist"`
	Note      string       `json:"note,omitempty" jsonschema:"why the page holds fewer events than limit although more exist"`
}

type storeEvent struct {
	SeqNum       string `json:"seqNum"`
	ParentSeqNum string `json:"parentSeqNum"`
	Name         string `json:"name"`
	Args         any    `json:"args"`
	ClientID     string `json:"clientId"`
	SessionID    string `json:"sessionId"`
	Synced       bool   `json:"synced" jsonschema:"whether the sync server confirmed the event"`
	ArgsOmitted  string `json:"argsOmitted,omitempty" jsonschema:"set when args were left out because the event is too large for an answer"`
}

func (t *storeTools) events(ctx context.Context, _ *sdkmcp.CallToolRequest, in storeEventsInput) (*sdkmcp.CallToolResult, storeEventsOutput, error) {
	after := eventlog.Root
	if in.After != "" {
		var err error
		if after, err = eventlog.ParseSeqNum(in.After); err != nil {
			return nil, storeEventsOutput{}, fmt.Errorf("after: %w (want e.g. e5 or e5.1)", err)
		}
	}
	limit, err := pageLimit(in.Limit)
	if err != nil {
		return nil, storeEventsOutput{}, err
	}
	ctx, cancel := t.lim.call(ctx)
	defer cancel()
	evs, more, err := t.store.EventLog(ctx, livestore.EventLogQuery{After: after, Name: in.Name, Limit: limit})
	if err != nil {
		return nil, storeEventsOutput{}, err
	}
	out := storeEventsOutput{Events: []storeEvent{}, NextAfter: after.String(), More: more}
	free := t.lim.budget() - sizeOf(out)
	for _, e := range evs {
		se := storeEvent{
			SeqNum: e.SeqNum.String(), ParentSeqNum: e.ParentSeqNum.String(), Name: e.Name, Args: jsonArgs(e.Args),
			ClientID: e.ClientID, SessionID: e.SessionID, Synced: e.Synced,
		}
		size := len(e.Args)
		if size <= free {
			size = sizeOf(se) + 1
		}
		if size > free {
			if len(out.Events) > 0 {
				out.More = true
				out.Note = t.lim.capNote("read on with after = nextAfter")
				break
			}
			se.Args = nil
			se.ArgsOmitted = fmt.Sprintf("the event is at least %d bytes as JSON, more than an answer holds; query its args in parts, e.g. SELECT substr(argsJson, 1, 10000) FROM eventlog", size)
			size = sizeOf(se) + 1
		}
		free -= size
		out.Events = append(out.Events, se)
		out.NextAfter = se.SeqNum
	}
	return nil, out, nil
}

type commitInput struct {
	Name string `json:"name" jsonschema:"the event's name, e.g. v1.TodoCreated"`
	Args any    `json:"args" jsonschema:"the event's arguments as a JSON object"`
}

type commitOutput struct {
	Name string `json:"name"`
	Head string `json:"head" jsonschema:"head of the local eventlog after the commit: the event's seqNum unless the application committed in between"`
}

func (t *storeTools) commit(ctx context.Context, _ *sdkmcp.CallToolRequest, in commitInput) (*sdkmcp.CallToolResult, commitOutput, error) {
	schema := t.store.Schema()
	if _, ok := schema.Event(in.Name); !ok {
		return nil, commitOutput{}, fmt.Errorf("unknown event %q; the store's events are %s", in.Name, quoteList(schema.EventNames()))
	}
	if _, ok := in.Args.(map[string]any); !ok {
		return nil, commitOutput{}, fmt.Errorf("args of %s must be a JSON object, not %s", in.Name, shortJSON(mustJSON(in.Args)))
	}
	raw := mustJSON(in.Args)
	ctx, cancel := t.lim.call(ctx)
	defer cancel()
	if err := t.store.Commit(ctx, livestore.Event{Name: in.Name, Args: raw}); err != nil {
		var me *livestore.MaterializerError
		if errors.As(err, &me) {
			return nil, commitOutput{}, fmt.Errorf("the store refused the event, nothing changed: %w", err)
		}
		return nil, commitOutput{}, fmt.Errorf("commit %s: %s", in.Name, strings.TrimPrefix(err.Error(), "livestore: commit: "))
	}
	// Commit does not return the seqNum it gave; the head read right after
	// is it unless the application committed in between.
	head, err := t.store.Head(ctx)
	if err != nil {
		return nil, commitOutput{}, fmt.Errorf("committed %s, then reading the head failed: %w", in.Name, err)
	}
	return nil, commitOutput{Name: in.Name, Head: head.String()}, nil
}

// mustJSON encodes a value decoded from JSON, which cannot fail.
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}
