package livestore

import (
	"context"
	"encoding/json"

	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
)

// WebSocketBackend returns a SyncBackend that connects to a sync server
// speaking the WebSocket protocol of @livestore/sync-cf at url (ws:// or
// wss://): `livestore serve`, or the reference Cloudflare server. The store
// id and the sync payload are set per connection; the other fields of opts
// (headers, ping interval, limits) are used as given.
func WebSocketBackend(url string, opts syncclient.Options) SyncBackend {
	return wsBackend{url: url, opts: opts}
}

type wsBackend struct {
	url  string
	opts syncclient.Options
}

func (b wsBackend) Connect(ctx context.Context, storeID string, payload json.RawMessage) (SyncConn, error) {
	c, err := syncclient.Backend{URL: b.url, Options: b.opts}.Connect(ctx, storeID, payload)
	if err != nil {
		return nil, err
	}
	return wsConn{c}, nil
}

type wsConn struct{ c *syncclient.Client }

func (w wsConn) Pull(ctx context.Context, cursor *syncproto.Cursor, live bool) (PullStream, error) {
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
