// Package scenarios holds end-to-end interop tests between the Go
// implementation and the JavaScript LiveStore 0.4.0 clients, run by
// `go test ./interop/scenarios`.
//
// Each test starts a sync server on loopback — ours (package syncserver, on
// SQLite or PostgreSQL storage) or the reference (@livestore/sync-cf in
// workerd, see package harness) — and drives Go stores (livestore.Store with
// syncclient.WebSocketBackend or syncclient.HTTPBackend) and Node clients
// (interop/js/client.mjs, with makeWsSync or makeHttpSync) against it: events
// flow both ways and decode on both sides, concurrent commits converge
// through rebases on both sides, clients continue from their cursors across
// a server restart, and the Go store syncs through the reference server as
// well as through ours, on either transport. A proxy between a client and
// the server (WebSocket or HTTP) can hold back what tells the client of new
// events, which makes it push on a stale head and be answered with
// ServerAheadError on cue.
//
// The package has no API; everything but this comment is in _test.go files.
// interop/README.md lists the scenarios and their runtimes.
package scenarios
