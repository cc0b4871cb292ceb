package syncproto

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Procedure names of the SyncHttpRpc group: the HTTP transport of
// @livestore/sync-cf. Each request is one HTTP POST to the sync URL with
// transport=http, its body one [Request] envelope; the answer is a JSON array
// of the server messages for it ([Chunk]s of a pull, then its [Exit]). There
// are no Acks: a pull's pages all come in the one answer, and a live pull is
// the client asking again.
const (
	TagHTTPPull = "SyncHttpRpc.Pull"
	TagHTTPPush = "SyncHttpRpc.Push"
	TagHTTPPing = "SyncHttpRpc.Ping"
)

// HTTPPong is the success value of a [TagHTTPPing] request.
var HTTPPong = json.RawMessage(`{"_tag":"SyncMessage.Pong"}`)

// HTTPPullRequest is the payload of a [TagHTTPPull] request: a
// [PullRequest] without Live, since every HTTP pull ends once it has sent
// the events the server has.
type HTTPPullRequest struct {
	StoreID string
	// Payload is the app's sync payload; nil if none.
	Payload json.RawMessage
	// Cursor is nil to pull from the start of the log.
	Cursor *Cursor
}

// MarshalJSON encodes the request with the cursor as an Option.
func (p HTTPPullRequest) MarshalJSON() ([]byte, error) {
	return marshal(struct {
		StoreID string          `json:"storeId"`
		Payload json.RawMessage `json:"payload,omitempty"`
		Cursor  option[*Cursor] `json:"cursor"`
	}{p.StoreID, p.Payload, option[*Cursor]{p.Cursor}})
}

// DecodeHTTPPullRequest decodes a [TagHTTPPull] payload strictly: storeId and
// cursor must be present and well-typed. Other fields (such as a "live" a
// WebSocket client would send) are ignored, as the reference ignores them.
func DecodeHTTPPullRequest(raw json.RawMessage) (HTTPPullRequest, error) {
	p, err := decodePullRequest(raw, false)
	if err != nil {
		return HTTPPullRequest{}, err
	}
	return HTTPPullRequest{StoreID: p.StoreID, Payload: p.Payload, Cursor: p.Cursor}, nil
}

// PingRequest is the payload of a [TagHTTPPing] request.
type PingRequest struct {
	StoreID string
	// Payload is the app's sync payload; nil if none.
	Payload json.RawMessage
}

// MarshalJSON encodes the request.
func (p PingRequest) MarshalJSON() ([]byte, error) {
	return marshal(struct {
		StoreID string          `json:"storeId"`
		Payload json.RawMessage `json:"payload,omitempty"`
	}{p.StoreID, p.Payload})
}

// DecodePingRequest decodes a [TagHTTPPing] payload: storeId must be present.
func DecodePingRequest(raw json.RawMessage) (PingRequest, error) {
	var w struct {
		StoreID *string         `json:"storeId"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return PingRequest{}, fmt.Errorf("decode ping request: %w", err)
	}
	if w.StoreID == nil {
		return PingRequest{}, errors.New(`decode ping request: missing field "storeId"`)
	}
	return PingRequest{StoreID: *w.StoreID, Payload: nullToNil(w.Payload)}, nil
}
