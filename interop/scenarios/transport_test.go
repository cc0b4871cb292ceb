package scenarios

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/syncclient"
)

// transport is the sync transport the clients of a scenario use: WebSocket
// (makeWsSync, syncclient.WebSocketBackend) or HTTP (makeHttpSync,
// syncclient.HTTPBackend). Our server serves both on one address.
type transport string

const (
	overWS   transport = "ws"
	overHTTP transport = "http"
)

// httpPollMS is the live pull interval of the HTTP clients: short, so that
// scenarios do not wait for the clients' default of 5 s.
const httpPollMS = 200

// url is the server's base URL for clients of the transport, from its
// WebSocket URL (ws://host:port).
func (tr transport) url(wsURL string) string {
	if tr == overHTTP {
		return "http" + strings.TrimPrefix(wsURL, "ws")
	}
	return wsURL
}

// jsArgs are the flags of js/client.mjs that select the transport.
func (tr transport) jsArgs(args ...string) []string {
	if tr == overHTTP {
		return append([]string{"--transport", "http", "--poll-ms", strconv.Itoa(httpPollMS)}, args...)
	}
	return args
}

// backendFor is a Go store's backend for the server at url (openGoStore's):
// the HTTP transport for an http:// URL (see transport.url), else WebSocket.
func backendFor(url string) livestore.SyncBackend {
	if strings.HasPrefix(url, "http://") {
		return syncclient.HTTPBackend(url, syncclient.HTTPOptions{PollInterval: httpPollMS * time.Millisecond})
	}
	return syncclient.WebSocketBackend(url, syncclient.Options{})
}

// holdProxy starts a holding proxy of the transport in front of the server
// at wsURL (see holdProxy).
func (tr transport) holdProxy(t testing.TB, wsURL string, hold bool) proxy {
	if tr == overHTTP {
		return newHTTPHoldProxy(t, tr.url(wsURL), hold)
	}
	return newHoldProxy(t, wsURL, hold)
}
