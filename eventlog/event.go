package eventlog

import "encoding/json"

// Event is one event as the client eventlog stores it.
type Event struct {
	SeqNum       SeqNum          `json:"seqNum"`
	ParentSeqNum SeqNum          `json:"parentSeqNum"`
	Name         string          `json:"name"`
	Args         json.RawMessage `json:"args"`
	ClientID     string          `json:"clientId"`
	SessionID    string          `json:"sessionId"`
	// SchemaHash identifies the definition of the event when it was committed.
	SchemaHash int64 `json:"schemaHash,omitempty"`
	// SyncMetadata is what the sync server attached (e.g. createdAt), or nil.
	SyncMetadata json.RawMessage `json:"syncMetadata,omitempty"`
}

// SyncStatus is what a client has recorded of its sync server.
type SyncStatus struct {
	// Head is the last global sequence number confirmed by the server.
	Head int64
	// BackendID identifies the server's store database; empty until known.
	BackendID string
}
