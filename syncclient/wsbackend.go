package syncclient

import (
	"context"
	"encoding/json"

	"github.com/livestore-go/livestore/syncproto"
)

// WebSocketBackend returns a [syncproto.Backend] (the root package's
// SyncBackend) that connects to a sync server speaking the WebSocket
// transport of @livestore/sync-cf at url (ws://, wss://, http:// or
// https://): `livestore serve`, or the reference Cloudflare server. Each
// connection is one [Client]. The store id and the sync payload are set per
// connection; the other fields of opts (headers, ping interval, limits) are
// used as given.
func WebSocketBackend(url string, opts Options) syncproto.Backend {
	return wsBackend{Backend{URL: url, Options: opts}}
}

type wsBackend struct{ b Backend }

func (b wsBackend) Connect(ctx context.Context, storeID string, payload json.RawMessage) (syncproto.Conn, error) {
	c, err := b.b.Connect(ctx, storeID, payload)
	if err != nil {
		return nil, err
	}
	return wsConn{c}, nil
}

// wsConn adapts a Client, whose Pull returns the concrete *PullStream.
type wsConn struct{ c *Client }

func (w wsConn) Pull(ctx context.Context, cursor *syncproto.Cursor, live bool) (syncproto.PullStream, error) {
	st, err := w.c.Pull(ctx, cursor, live)
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (w wsConn) Push(ctx context.Context, batch []syncproto.Event, backendID *string) error {
	return w.c.Push(ctx, batch, backendID)
}

func (w wsConn) Close() error { return w.c.Close() }
