// Package syncserver is the LiveStore sync server: it keeps the one total
// order of each store's events and fans new events out to connected clients.
//
// It speaks both transports of the reference's Cloudflare sync provider
// (@livestore/sync-cf 0.4.0, see package syncproto), WebSocket and HTTP, so
// unmodified JavaScript LiveStore apps using makeWsSync({ url }) or
// makeHttpSync({ url }) can use it, and so can the Go clients (package
// syncclient).
//
// A [Server] is an [http.Handler]. Requests carrying the sync query
// parameters (?storeId=…&transport=ws, on any path, as in the reference
// worker) are upgraded to WebSockets; with transport=http each POST carries
// one request of the HTTP transport, answered with the JSON array of its
// messages (a pull's pages, then its Exit; a live pull is the client
// polling). Both transports share the admission checks (Origin, Auth,
// connection limits), the push rules and the pull paging. GET /health and
// GET /metrics serve
// health and Prometheus metrics; with [Options].TracerProvider and
// MeterProvider the server also reports OpenTelemetry spans (a push or pull
// as the child of the client's span that the request carries) and metrics.
// The OpenTelemetry SDK and exporters are the program's choice (cmd/livestore
// configures them from the OTEL_* variables). Events are kept by a [Storage]: package
// sqlitestore (one file, one process) or pgstore (PostgreSQL, any number of
// server processes on one database).
//
// # Rules
//
// Per store: pushes are serialised; a push must be based on the current head
// (else *syncproto.ServerAheadError with the head and the push's base); its
// events must chain and be well-formed (see below); it is stored durably with one createdAt, acknowledged,
// then sent to every live pull of the store, the pusher's own included. An
// empty push is acknowledged. Pulls page the log in messages of at most 100
// events and 900,000 bytes (MoreKnown{remaining} on every page but the last),
// one page per client Ack; a non-live pull ends after the Ack of its last
// page, a live pull stays open and gets later pushes without waiting for
// Acks. The backend id is created once per store and checked on push and
// pull (*syncproto.BackendIDMismatchError).
//
// # Differences from the reference server
//
// Deliberate, for malformed input and robustness; a well-behaved client works
// the same with either server:
//   - a pushed batch is checked before the head, and fails with an
//     UnknownError naming the first offending event, its name and the rule,
//     storing nothing (the reference stores it), when: its events do not
//     chain or are not numbered as clients number them (seqNum =
//     parentSeqNum+1, parentSeqNum >= 0, seqNum <= 2^53-1); a name is empty,
//     over 256 bytes or holds a control character (U+0000–U+001F, U+007F);
//     a clientId or sessionId is over 256 bytes or holds a control
//     character; args nest deeper than [Options].MaxArgsDepth (default 64);
//     an event encodes larger than a pull page can carry (see
//     [syncproto.MaxPulledEventBytes]). Such events could not be stored in
//     every storage, sent to every client or decoded by them;
//   - a client message that is not valid UTF-8 anywhere fails the request it
//     names with a defect (the reference stores such bytes and then sends
//     them in text frames that Node's WebSocket refuses);
//   - a request whose id is not a decimal integer string is answered with an
//     Exit carrying a defect (the reference's connection handler dies);
//   - a push's acknowledgement is sent before its live update (the reference
//     may send the update first), and live updates go only to open live
//     pulls (the reference also sends them to finished pulls);
//   - the Exit answering an Interrupt has a plain Interrupt cause (the
//     reference nests it in Sequential causes);
//   - tagged errors are written with "_tag" first (the reference writes it
//     last; JSON key order only);
//   - limits: store ids (see [CheckStoreID]), message and batch sizes,
//     connections per server and per store, pulls per connection, pull
//     bytes held and per-client queues (see [Options]), each answered with
//     a protocol error or an HTTP status, not a dropped socket;
//   - browsers may connect only from the server's own origin unless
//     [Options].OriginPatterns lists others (the reference accepts any);
//   - over HTTP, one pull's answer holds at most [Options].MaxHTTPPullPages
//     pages (the reference sends the whole log), a request other than POST
//     (or a CORS preflight) gets 405, a body over MaxMessageBytes gets 413
//     with the request's UnknownError, and a request envelope without
//     "headers" is accepted (the reference answers 500).
package syncserver
