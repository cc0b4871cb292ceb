// Package mcp serves LiveStore data to AI assistants over the Model Context
// Protocol. [NewServer] is read-only unless Options.Appender is set: it lists the stores of a sync server's
// storage and pages through their events, and it looks into client store
// directories (the eventlog, the sync state and the state database) through
// package inspect. `livestore mcp` runs it over stdio.
//
// Tools, each registered only when its data source is configured:
//
//	list_stores           every store of the sync storage: storeId, backendId, head, createdAt
//	read_events           events of one store after a seqNum, with the cursor for the next page
//	client_store_summary  head, event counts, sync state and tables of a client store directory
//	client_store_events   events of a client store's eventlog after a seqNum such as "e5" or "e5.1"
//	client_store_query    a read-only SQL query over a client store's state
//	sync_status           head, upstream head, pending, backend id and recovery files of a client store
//	push_events           (only with Options.Appender) append events to a store at its head
//
// [NewStoreServer] and [Serve] expose an application's own open store
// instead: status, query, events, and commit when enabled.
//
// Every answer is bounded: at most MaxLimit events or rows, at most
// Options.MaxAnswerBytes bytes (a shortened page says so and where to go on),
// and each call reads for at most Options.QueryTimeout.
//
// Mistakes in a call (an unknown store, a directory that was not configured,
// SQL that fails or writes) come back as tool errors, which the assistant
// sees, never as protocol errors.
//
// The package holds the tools, not the protocol: the MCP transport and
// message types are those of github.com/modelcontextprotocol/go-sdk, the
// stdio wiring is `livestore mcp`'s, and pushing through a running server
// uses package syncclient.
package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/livestore-go/livestore/syncserver"
)

// Options configures [NewServer].
type Options struct {
	// Storage is a sync server's storage to read; nil disables the
	// server-storage tools.
	Storage Storage
	// StoreDirs are client store directories (each holds store.db) the tools
	// may read; tools name them by the given path exactly.
	StoreDirs []string
	// Version is reported as the server's version; default "dev".
	Version string
	// Logger receives the protocol server's log; nil discards it.
	Logger *slog.Logger
	// MaxAnswerBytes bounds the size of one tool answer as sent; a page of
	// events or rows ends early to stay under it. 0 means
	// DefaultMaxAnswerBytes; at least MinAnswerBytes.
	MaxAnswerBytes int
	// QueryTimeout bounds how long one tool call reads (a SQL query is
	// interrupted when it passes). 0 means DefaultQueryTimeout.
	QueryTimeout time.Duration
	// Appender, when set, enables the acting tool push_events, which
	// appends to the stores of Storage through it (StorageAppender or
	// ServerAppender). Nil keeps the server read-only.
	Appender Appender
}

// Storage is what the tools read from a sync server's storage
// (sqlitestore.Store and pgstore.Store satisfy it).
type Storage interface {
	Stores(ctx context.Context) ([]syncserver.StoreInfo, error)
	// Read returns, in order, at most limit events with after < seqNum <= upTo.
	Read(ctx context.Context, storeID string, after, upTo int64, limit int) ([]syncserver.StoredEvent, error)
}

// Page sizes of the tools that return events or rows.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// ErrNothingToServe is returned by [NewServer] when Options names neither a
// storage nor a store directory.
var ErrNothingToServe = errors.New("mcp: no storage and no store directories to serve")

// NewServer returns an MCP server with the tools that opts enables. Serve it
// with its Run method over a transport, e.g. &sdkmcp.StdioTransport{}. The
// tools only read; a client store directory is opened for each call and
// closed before the call returns, so the server holds no files open between
// calls and does not keep a running store from writing.
func NewServer(opts Options) (*sdkmcp.Server, error) {
	if opts.Storage == nil && len(opts.StoreDirs) == 0 {
		return nil, ErrNothingToServe
	}
	for _, d := range opts.StoreDirs {
		if d == "" {
			return nil, errors.New("mcp: empty store directory")
		}
	}
	if opts.Appender != nil && opts.Storage == nil {
		return nil, errors.New("mcp: an Appender needs the Storage it appends to, to read heads and event names")
	}
	lim, err := newLimits(opts)
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
	srv := sdkmcp.NewServer(&sdkmcp.Implementation{Name: "livestore", Title: "LiveStore", Version: version},
		&sdkmcp.ServerOptions{Instructions: instructions(opts), Logger: log})
	checks := argChecks{}
	if opts.Storage != nil {
		if err := addStorageTools(srv, checks, opts.Storage, lim); err != nil {
			return nil, err
		}
		if opts.Appender != nil {
			if err := addPushTool(srv, checks, opts.Storage, opts.Appender, lim); err != nil {
				return nil, err
			}
		}
	}
	if len(opts.StoreDirs) > 0 {
		if err := addClientStoreTools(srv, checks, opts.StoreDirs, lim); err != nil {
			return nil, err
		}
	}
	srv.AddReceivingMiddleware(checks.middleware)
	return srv, nil
}

// instructions tells the client what the server holds, so that it can call
// the client-store tools without guessing directory names.
func instructions(opts Options) string {
	var b strings.Builder
	if opts.Appender != nil {
		b.WriteString("Access to LiveStore data.")
	} else {
		b.WriteString("Read-only access to LiveStore data.")
	}
	b.WriteString(" LiveStore keeps every store as an ordered log of named events with JSON args; the state (SQLite tables) is derived from the log.")
	if opts.Storage != nil {
		b.WriteString(" list_stores and read_events read the sync server's global event logs (seqNums are integers).")
		if opts.Appender != nil {
			b.WriteString(" push_events appends events to a store at its head.")
		}
	}
	if len(opts.StoreDirs) > 0 {
		b.WriteString(" The client_store_* tools read client store directories (seqNums like e5, e5.1 for client-only events, e5r1 after a rebase); allowed dirs: ")
		b.WriteString(quoteList(opts.StoreDirs))
		b.WriteString(".")
	}
	return b.String()
}

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// readOnly are the annotations of every tool here: nothing is changed and
// nothing outside the configured data is reached.
func readOnly(title string) *sdkmcp.ToolAnnotations {
	closed := false
	return &sdkmcp.ToolAnnotations{Title: title, ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &closed}
}

// inputSchema derives the input schema of In and documents the paging
// property "limit" (if In has one) with its bounds and default, which the SDK
// then applies and enforces before the handler runs.
func inputSchema[In any]() (*jsonschema.Schema, error) {
	s, err := jsonschema.For[In](nil)
	if err != nil {
		return nil, err
	}
	if p := s.Properties["limit"]; p != nil {
		p.Minimum = jsonschema.Ptr(1.0)
		p.Maximum = jsonschema.Ptr(float64(MaxLimit))
		p.Default = json.RawMessage(fmt.Sprint(DefaultLimit))
	}
	return s, nil
}

// addTool registers a typed tool with the input schema of [inputSchema],
// which checks then holds for the tool's arguments.
func addTool[In, Out any](srv *sdkmcp.Server, checks argChecks, t *sdkmcp.Tool, h sdkmcp.ToolHandlerFor[In, Out]) error {
	s, err := inputSchema[In]()
	if err != nil {
		return fmt.Errorf("mcp: tool %s: input schema: %w", t.Name, err)
	}
	t.InputSchema = s
	checks[t.Name] = s
	sdkmcp.AddTool(srv, t, h)
	return nil
}

// pageLimit is the number of items to return for a requested limit: the
// default for 0 and at most MaxLimit.
func pageLimit(limit int) (int, error) {
	switch {
	case limit < 0:
		return 0, fmt.Errorf("limit %d: want a positive number (at most %d)", limit, MaxLimit)
	case limit == 0:
		return DefaultLimit, nil
	}
	return min(limit, MaxLimit), nil
}
