// Package syncproto defines the wire format of the LiveStore sync protocol:
// the WebSocket and HTTP transports of the reference's Cloudflare sync
// provider (@livestore/sync-cf), which speak Effect RPC with JSON
// serialization, and the interfaces a store syncs through ([Backend],
// [Conn], [PullStream]; package syncclient implements them, package
// syncserver serves the protocol).
//
// Every WebSocket text message carries one JSON object, an envelope tagged by
// "_tag". A client sends [Request], [Ack], [Interrupt], [Ping] and [Eof]; a
// server answers with [Chunk], [Exit], [Defect] and [Pong]. Two procedures
// exist: [TagPull] (a stream of [PullResponse] pages) and [TagPush] (a single
// answer). Over HTTP each request is one POST answered with a JSON array of
// the server's messages for it; its procedures are [TagHTTPPull] (no live
// mode: clients poll), [TagHTTPPush] and [TagHTTPPing]. Failures are the
// tagged errors [ServerAheadError], [BackendIDMismatchError] and
// [UnknownError], which are ordinary Go errors here, matchable with
// errors.As.
//
// The package is shared by the client (syncclient) and the server
// (syncserver). It also holds the rules both sides apply to batches: the chain
// check ([CheckChain]: consecutive numbers up to [MaxSeqNum]), the checks of
// a pushed event's fields ([CheckBatch], [CheckEvent], [CheckEventSize]),
// and the split into messages of at most [MaxEventsPerMessage] events and
// [MaxPayloadBytes] bytes ([SplitPush] for pushes, [PageEncoder] for pull
// pages).
//
// It is the one place where messages are encoded: servers build pull pages
// with [PageEncoder] (each page once, then sent under any number of request
// ids with [AppendChunk]) and answer with the Exit constructors ([ExitPushed],
// [ExitFail], [ExitDie], [ExitInterrupted]); clients encode requests with
// [Marshal]. It holds no connections or I/O: transports live in syncclient
// and syncserver.
package syncproto
