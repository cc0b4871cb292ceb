package syncproto

import (
	"context"
	"encoding/json"
)

// Backend connects a store to a sync server. Package syncclient implements
// it over the two transports of the reference protocol (WebSocket and HTTP);
// package memsync provides an in-process server for tests. The root package
// calls it SyncBackend.
type Backend interface {
	// Connect opens a connection for storeID, passing the application's sync
	// payload (e.g. an auth token; nil if none).
	Connect(ctx context.Context, storeID string, payload json.RawMessage) (Conn, error)
}

// Conn is one connection to a sync server.
type Conn interface {
	// Pull streams the events after cursor (nil: from the start). With live
	// set the stream stays open and delivers events pushed later.
	Pull(ctx context.Context, cursor *Cursor, live bool) (PullStream, error)
	// Push appends batch to the server's log. It fails with
	// *ServerAheadError when the server has events the client has not
	// pulled yet, and *BackendIDMismatchError when backendID names another
	// server database.
	Push(ctx context.Context, batch []Event, backendID *string) error
	// Close closes the connection; streams end.
	Close() error
}

// PullStream delivers the pages of a pull.
type PullStream interface {
	// Next returns the next page; io.EOF after the last page of a non-live
	// pull.
	Next(ctx context.Context) (PullResponse, error)
	Close() error
}
