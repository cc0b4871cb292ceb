// Package difftest compares sync servers by their raw WebSocket traffic.
//
// A Script is a fixed sequence of steps: open a WebSocket to a store, send a
// message (JSON of the Effect RPC protocol spoken by @livestore/sync-cf, see
// shared/design/PROTOCOL.md), and collect what comes back until a condition
// holds. Running a script against a server yields a Transcript: what was sent
// and the normalised answers, one line each. Normalising replaces what differs
// between runs and servers by design — backend ids, store ids, createdAt
// timestamps, trace ids, very long strings — with stable tokens, sorts the
// answers collected in one step by request id (the order across requests is
// not part of the protocol) and orders object keys, so two transcripts can be
// compared line by line and field by field.
//
// The transcripts of the reference server (the sync-cf Durable Object run
// locally in workerd) are kept as golden files in testdata/; they are both
// the expected answers for our server and a readable record of how the
// reference behaves. TestDifferential runs every script against every target
// and compares each transcript with its golden file.
//
// The package starts no server: [Run] is given a target's URL (package
// harness starts the reference, the tests start ours), and it speaks the
// protocol as raw JSON, without package syncclient, so that malformed and
// out-of-order messages can be sent.
package difftest
