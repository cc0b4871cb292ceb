package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"time"

	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// Appender appends a batch of events (chained, the first based on the head
// the caller saw) to a store, if and only if the store's head still is
// batch[0].ParentSeqNum; otherwise it appends nothing and fails with a
// *syncproto.ServerAheadError.
type Appender interface {
	Append(ctx context.Context, storeID string, batch []syncproto.Event) error
}

// StorageAppender appends straight to a sync server's storage, which must
// not be owned by a running server (sqlitestore refuses to open a file a
// server holds; use [ServerAppender] then).
func StorageAppender(st syncserver.Storage) Appender { return storageAppender{st} }

type storageAppender struct{ st syncserver.Storage }

func (a storageAppender) Append(ctx context.Context, storeID string, batch []syncproto.Event) error {
	return a.st.Append(ctx, storeID, batch, time.Now())
}

// ServerAppender pushes through the running sync server at url (ws, wss,
// http or https), one connection per batch, so that the server's clients
// receive the events live. opts.StoreID is set per batch.
func ServerAppender(url string, opts syncclient.Options) Appender {
	return serverAppender{url: url, opts: opts}
}

type serverAppender struct {
	url  string
	opts syncclient.Options
}

func (a serverAppender) Append(ctx context.Context, storeID string, batch []syncproto.Event) error {
	opts := a.opts
	opts.StoreID = storeID
	c, err := syncclient.Dial(ctx, a.url, opts)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", a.url, err)
	}
	defer c.Close()
	return c.Push(ctx, batch, nil)
}

// Identity of the events push_events appends, unless the call names its own.
const (
	DefaultPushClientID  = "livestore-mcp"
	DefaultPushSessionID = "livestore-mcp"
)

type pushInput struct {
	StoreID   string      `json:"storeId" jsonschema:"the store to append to, as list_stores names it"`
	Head      int64       `json:"head" jsonschema:"the store's head (seqNum of its last event) that the events follow, as list_stores or read_events report it; the push is refused if the head has moved since"`
	Events    []pushEvent `json:"events" jsonschema:"the events to append, in order, at most 100; they get the seqNums head+1, head+2, ..."`
	ClientID  string      `json:"clientId,omitempty" jsonschema:"clientId of the events; default livestore-mcp"`
	SessionID string      `json:"sessionId,omitempty" jsonschema:"sessionId of the events; default livestore-mcp"`
}

type pushEvent struct {
	Name string `json:"name" jsonschema:"an event name already used in the store's log, e.g. v1.TodoCreated"`
	Args any    `json:"args,omitempty" jsonschema:"the event's arguments (JSON); {} for none"`
}

type pushOutput struct {
	StoreID string `json:"storeId"`
	First   int64  `json:"first" jsonschema:"seqNum of the first event appended"`
	Head    int64  `json:"head" jsonschema:"the store's head after the push: seqNum of the last event appended"`
}

// pushTools append to a sync server's stores.
type pushTools struct {
	st       Storage
	app      Appender
	lim      limits
	maxDepth int
}

func addPushTool(srv *sdkmcp.Server, checks argChecks, st Storage, app Appender, lim limits) error {
	t := &pushTools{st: st, app: app, lim: lim, maxDepth: syncproto.DefaultMaxArgsDepth}
	closed := false
	return addTool(srv, checks, &sdkmcp.Tool{
		Name: "push_events",
		Description: "Append events to a store of the sync server, atomically at its head: pass the head you read (list_stores, read_events); " +
			"if another writer moved it, nothing is appended and the answer gives the new head. Each event's name must already occur in the store's log " +
			"(a sync server has no schema, and clients reject names their schema lacks), and its args must be JSON within the server's limits. " +
			"The store's clients receive the events as if a client had pushed them.",
		Annotations: &sdkmcp.ToolAnnotations{Title: "Push events to a store", OpenWorldHint: &closed},
	}, t.push)
}

func (t *pushTools) push(ctx context.Context, _ *sdkmcp.CallToolRequest, in pushInput) (*sdkmcp.CallToolResult, pushOutput, error) {
	if in.StoreID == "" {
		return nil, pushOutput{}, errors.New("storeId is required; list_stores names the stores")
	}
	if len(in.Events) == 0 {
		return nil, pushOutput{}, errors.New("events is empty: nothing to push")
	}
	// A server splits longer pushes into several appends, which would make
	// a refusal halfway leave part of the batch stored.
	if len(in.Events) > syncproto.MaxEventsPerMessage {
		return nil, pushOutput{}, fmt.Errorf("%d events: push at most %d per call, so that the push is appended whole or not at all", len(in.Events), syncproto.MaxEventsPerMessage)
	}
	if in.Head < 0 {
		return nil, pushOutput{}, fmt.Errorf("head %d: want a seqNum, 0 or more", in.Head)
	}
	clientID, sessionID := in.ClientID, in.SessionID
	if clientID == "" {
		clientID = DefaultPushClientID
	}
	if sessionID == "" {
		sessionID = DefaultPushSessionID
	}
	batch := make([]syncproto.Event, len(in.Events))
	for i, e := range in.Events {
		if e.Args == nil {
			return nil, pushOutput{}, fmt.Errorf("event %d (%s): args is required (use {} for none)", i, e.Name)
		}
		args, err := json.Marshal(e.Args)
		if err != nil {
			return nil, pushOutput{}, fmt.Errorf("event %d (%s): args: %w", i, e.Name, err)
		}
		batch[i] = syncproto.Event{Name: e.Name, Args: args, SeqNum: in.Head + 1 + int64(i), ParentSeqNum: in.Head + int64(i), ClientID: clientID, SessionID: sessionID}
	}
	if err := syncproto.CheckBatch(batch, t.maxDepth); err != nil {
		return nil, pushOutput{}, fmt.Errorf("refused, nothing appended: %w", err)
	}
	ctx, cancel := t.lim.call(ctx)
	defer cancel()
	backendID, err := t.backendID(ctx, in.StoreID)
	if err != nil {
		return nil, pushOutput{}, err
	}
	limit, err := syncproto.MaxPulledEventBytes(backendID)
	if err != nil {
		return nil, pushOutput{}, fmt.Errorf("event size limit: %w", err)
	}
	for i := range batch {
		if err := syncproto.CheckEventSize(i, &batch[i], limit); err != nil {
			return nil, pushOutput{}, fmt.Errorf("refused, nothing appended: %w", err)
		}
	}
	if n := sizeOf(batch); n > syncproto.MaxPayloadBytes {
		return nil, pushOutput{}, fmt.Errorf("the events take %d bytes as JSON: push at most %d bytes per call, so that the push is appended whole or not at all", n, syncproto.MaxPayloadBytes)
	}
	if err := t.checkNames(ctx, in.StoreID, batch); err != nil {
		return nil, pushOutput{}, err
	}
	if err := t.app.Append(ctx, in.StoreID, batch); err != nil {
		var ahead *syncproto.ServerAheadError
		if errors.As(err, &ahead) {
			return nil, pushOutput{}, fmt.Errorf("refused, nothing appended: the store's head is %d, not %d: another writer appended since; read_events after %d, then push at head %d",
				ahead.MinimumExpectedNum, in.Head, in.Head, ahead.MinimumExpectedNum)
		}
		return nil, pushOutput{}, fmt.Errorf("push to %q: %w", in.StoreID, err)
	}
	return nil, pushOutput{StoreID: in.StoreID, First: batch[0].SeqNum, Head: batch[len(batch)-1].SeqNum}, nil
}

// backendID is the store's backend id if the storage reports it, which
// bounds the size of an event as its clients will pull it.
func (t *pushTools) backendID(ctx context.Context, storeID string) (string, error) {
	list, err := t.st.Stores(ctx)
	if err != nil {
		return "", fmt.Errorf("list stores: %w", err)
	}
	for _, s := range list {
		if s.StoreID == storeID {
			return s.BackendID, nil
		}
	}
	return "", fmt.Errorf("unknown store %q: push_events appends only to stores that hold events, whose names it accepts", storeID)
}

// checkNames accepts a batch whose event names all occur in the store's
// log. A sync server has no schema; a name its clients have used is one
// their schema defines, while a new or mistyped name would stop every
// client that pulls it. The log is read from the start until all names are
// seen, so a store whose names are all used early answers fast.
func (t *pushTools) checkNames(ctx context.Context, storeID string, batch []syncproto.Event) error {
	missing := map[string]bool{}
	for _, e := range batch {
		missing[e.Name] = true
	}
	seen := map[string]bool{}
	after := int64(0)
	for len(missing) > 0 {
		evs, err := t.st.Read(ctx, storeID, after, math.MaxInt64, 1000)
		if err != nil {
			return fmt.Errorf("read the names used in %q: %w", storeID, err)
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			delete(missing, e.Name)
			if len(seen) < 50 {
				seen[e.Name] = true
			}
		}
		after = evs[len(evs)-1].SeqNum
	}
	for i, e := range batch {
		if missing[e.Name] {
			return fmt.Errorf("refused, nothing appended: event %d: name %q does not occur in the log of %q; names used there include %s",
				i, e.Name, storeID, quoteList(sortedKeys(seen)))
		}
	}
	return nil
}

type syncStatusInput struct {
	Dir string `json:"dir" jsonschema:"the client store directory, exactly as configured"`
}

type syncStatusOutput struct {
	Dir           string   `json:"dir"`
	Head          string   `json:"head" jsonschema:"seqNum of the last event in the local eventlog, e.g. e12 or e12.1"`
	UpstreamHead  int64    `json:"upstreamHead" jsonschema:"the last global seqNum the sync server confirmed"`
	Pending       int64    `json:"pending" jsonschema:"synced events not yet confirmed by the sync server"`
	BackendID     string   `json:"backendId" jsonschema:"backend id of the sync server last seen; empty if the store never synced"`
	RecoveryFiles []string `json:"recoveryFiles" jsonschema:"recovery files in the directory (events saved when the server's backend changed), oldest first; livestore import reads them"`
	StaleState    bool     `json:"staleState,omitempty" jsonschema:"restored events are not in the state tables yet; the next open rebuilds them"`
}

func (t *clientStoreTools) syncStatus(ctx context.Context, _ *sdkmcp.CallToolRequest, in syncStatusInput) (*sdkmcp.CallToolResult, syncStatusOutput, error) {
	ctx, cancel := t.lim.call(ctx)
	defer cancel()
	d, err := t.open(ctx, in.Dir)
	if err != nil {
		return nil, syncStatusOutput{}, err
	}
	defer d.Close()
	s, err := d.Summary(ctx)
	if err != nil {
		return nil, syncStatusOutput{}, err
	}
	files, err := livestore.RecoveryFiles(in.Dir)
	if err != nil {
		return nil, syncStatusOutput{}, err
	}
	out := syncStatusOutput{Dir: in.Dir, Head: s.Head.String(), UpstreamHead: s.SyncHead, Pending: s.Pending, BackendID: s.BackendID,
		RecoveryFiles: make([]string, len(files)), StaleState: s.StaleState}
	for i, f := range files {
		out.RecoveryFiles[i] = filepath.Base(f)
	}
	return nil, out, nil
}
