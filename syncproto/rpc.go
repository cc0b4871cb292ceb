package syncproto

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Procedure names of the SyncWsRpc group.
const (
	TagPull = "SyncWsRpc.Pull"
	TagPush = "SyncWsRpc.Push"
)

// Transport limits shared by client and server (the reference's constants).
const (
	// MaxEventsPerMessage bounds the events of one push request and of one
	// pull page.
	MaxEventsPerMessage = 100
	// MaxPayloadBytes bounds the encoded JSON of one push payload and of one
	// pull page.
	MaxPayloadBytes = 900_000
)

// Cursor names the last event a client has, as issued by one backend.
type Cursor struct {
	BackendID           string `json:"backendId"`
	EventSequenceNumber int64  `json:"eventSequenceNumber"`
}

// PullRequest is the payload of a [TagPull] request.
type PullRequest struct {
	StoreID string
	// Payload is the app's sync payload (e.g. an auth token); nil if none.
	Payload json.RawMessage
	// Live keeps the stream open for events pushed later.
	Live bool
	// Cursor is nil to pull from the start of the log.
	Cursor *Cursor
}

// MarshalJSON encodes the request with the cursor as an Option.
func (p PullRequest) MarshalJSON() ([]byte, error) {
	return marshal(struct {
		StoreID string          `json:"storeId"`
		Payload json.RawMessage `json:"payload,omitempty"`
		Live    bool            `json:"live"`
		Cursor  option[*Cursor] `json:"cursor"`
	}{p.StoreID, p.Payload, p.Live, option[*Cursor]{p.Cursor}})
}

// DecodePullRequest decodes a [TagPull] payload strictly: storeId, live and
// cursor must be present and well-typed.
func DecodePullRequest(raw json.RawMessage) (PullRequest, error) {
	return decodePullRequest(raw, true)
}

// decodePullRequest decodes a pull payload of either transport; live says
// whether the "live" field is required (it is ignored otherwise).
func decodePullRequest(raw json.RawMessage, live bool) (PullRequest, error) {
	var w struct {
		StoreID *string          `json:"storeId"`
		Payload json.RawMessage  `json:"payload"`
		Live    *bool            `json:"live"`
		Cursor  *option[*Cursor] `json:"cursor"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return PullRequest{}, fmt.Errorf("decode pull request: %w", err)
	}
	switch {
	case w.StoreID == nil:
		return PullRequest{}, errors.New(`decode pull request: missing field "storeId"`)
	case live && w.Live == nil:
		return PullRequest{}, errors.New(`decode pull request: missing field "live"`)
	case w.Cursor == nil:
		return PullRequest{}, errors.New(`decode pull request: missing field "cursor"`)
	}
	p := PullRequest{StoreID: *w.StoreID, Payload: nullToNil(w.Payload), Cursor: w.Cursor.value}
	if live {
		p.Live = *w.Live
	}
	return p, nil
}

// PushRequest is the payload of a [TagPush] request.
type PushRequest struct {
	StoreID string
	// Payload is the app's sync payload; nil if none.
	Payload json.RawMessage
	Batch   []Event
	// BackendID is the backend the client last pulled from; nil if unknown.
	BackendID *string
}

// MarshalJSON encodes the request with the backendId as an Option.
func (p PushRequest) MarshalJSON() ([]byte, error) {
	return AppendPushRequest(nil, &p)
}

// DecodePushRequest decodes a [TagPush] payload strictly: storeId, batch and
// backendId must be present, and every event must have all its fields.
func DecodePushRequest(raw json.RawMessage) (PushRequest, error) {
	if p, ok := fastPushRequest(raw); ok {
		return p, nil
	}
	return decodePushRequest(raw)
}

// decodePushRequest is DecodePushRequest with encoding/json.
func decodePushRequest(raw json.RawMessage) (PushRequest, error) {
	var w struct {
		StoreID   *string          `json:"storeId"`
		Payload   json.RawMessage  `json:"payload"`
		Batch     *[]wireEvent     `json:"batch"`
		BackendID *option[*string] `json:"backendId"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return PushRequest{}, fmt.Errorf("decode push request: %w", err)
	}
	switch {
	case w.StoreID == nil:
		return PushRequest{}, errors.New(`decode push request: missing field "storeId"`)
	case w.Batch == nil:
		return PushRequest{}, errors.New(`decode push request: missing field "batch"`)
	case w.BackendID == nil:
		return PushRequest{}, errors.New(`decode push request: missing field "backendId"`)
	}
	batch, err := decodeEvents(*w.Batch)
	if err != nil {
		return PushRequest{}, fmt.Errorf("decode push request: %w", err)
	}
	return PushRequest{StoreID: *w.StoreID, Payload: nullToNil(w.Payload), Batch: batch, BackendID: w.BackendID.value}, nil
}

// PageKind tells whether more pull pages follow.
type PageKind uint8

// The page kinds of a [PageInfo].
const (
	NoMore PageKind = iota
	MoreKnown
	MoreUnknown
)

func (k PageKind) String() string {
	switch k {
	case NoMore:
		return "NoMore"
	case MoreKnown:
		return "MoreKnown"
	case MoreUnknown:
		return "MoreUnknown"
	}
	return fmt.Sprintf("PageKind(%d)", uint8(k))
}

// PageInfo says what follows a pull page: nothing (NoMore), Remaining more
// events (MoreKnown), or an unknown number (MoreUnknown).
type PageInfo struct {
	Kind      PageKind
	Remaining int64
}

// MarshalJSON encodes the page info as its tagged wire form.
func (p PageInfo) MarshalJSON() ([]byte, error) {
	return appendPageInfo(nil, p), nil
}

// UnmarshalJSON decodes the tagged wire form.
func (p *PageInfo) UnmarshalJSON(b []byte) error {
	var w struct {
		Tag       string `json:"_tag"`
		Remaining int64  `json:"remaining"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	switch w.Tag {
	case "NoMore":
		*p = PageInfo{Kind: NoMore}
	case "MoreKnown":
		*p = PageInfo{Kind: MoreKnown, Remaining: w.Remaining}
	case "MoreUnknown":
		*p = PageInfo{Kind: MoreUnknown}
	default:
		return fmt.Errorf("unknown pageInfo tag %q", w.Tag)
	}
	return nil
}

// SyncMetadata is the metadata the server attaches to each pulled event.
type SyncMetadata struct {
	// CreatedAt is when the server stored the event's batch, ISO-8601 in UTC
	// with milliseconds, like JavaScript's Date.prototype.toISOString.
	CreatedAt string
}

// MarshalJSON encodes the metadata with its tag.
func (m SyncMetadata) MarshalJSON() ([]byte, error) {
	return marshal(struct {
		Tag       string `json:"_tag"`
		CreatedAt string `json:"createdAt"`
	}{"SyncMessage.SyncMetadata", m.CreatedAt})
}

// UnmarshalJSON decodes the tagged metadata.
func (m *SyncMetadata) UnmarshalJSON(b []byte) error {
	var w struct {
		CreatedAt string `json:"createdAt"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	m.CreatedAt = w.CreatedAt
	return nil
}

// PullItem is one event of a pull page.
type PullItem struct {
	Event Event
	// Metadata is nil when the server sent None.
	Metadata *SyncMetadata
}

// MarshalJSON encodes the item as {"eventEncoded":…,"metadata":Option}.
func (it PullItem) MarshalJSON() ([]byte, error) {
	return marshal(struct {
		Event    Event                 `json:"eventEncoded"`
		Metadata option[*SyncMetadata] `json:"metadata"`
	}{it.Event, option[*SyncMetadata]{it.Metadata}})
}

// UnmarshalJSON decodes {"eventEncoded":…,"metadata":Option}.
func (it *PullItem) UnmarshalJSON(b []byte) error {
	var w struct {
		Event    Event                 `json:"eventEncoded"`
		Metadata option[*SyncMetadata] `json:"metadata"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*it = PullItem{Event: w.Event, Metadata: w.Metadata.value}
	return nil
}

// PullResponse is one page of a pull stream.
type PullResponse struct {
	Batch     []PullItem `json:"batch"`
	PageInfo  PageInfo   `json:"pageInfo"`
	BackendID string     `json:"backendId"`
}

// MarshalJSON encodes the page; an empty batch is [] (never null).
func (r PullResponse) MarshalJSON() ([]byte, error) {
	type plain PullResponse
	if r.Batch == nil {
		r.Batch = []PullItem{}
	}
	return marshal(plain(r))
}

// UnmarshalJSON decodes a page in one pass (see [DecodePullResponse]).
func (r *PullResponse) UnmarshalJSON(b []byte) error {
	res, err := DecodePullResponse(b)
	if err != nil {
		return err
	}
	*r = res
	return nil
}

// wirePullResponse mirrors a PullResponse without custom decoders, so that a
// page is decoded in a single pass however many events it holds.
type wirePullResponse struct {
	Batch []struct {
		Event    Event `json:"eventEncoded"`
		Metadata struct {
			Tag   string `json:"_tag"`
			Value *struct {
				CreatedAt string `json:"createdAt"`
			} `json:"value"`
		} `json:"metadata"`
	} `json:"batch"`
	PageInfo struct {
		Tag       string `json:"_tag"`
		Remaining int64  `json:"remaining"`
	} `json:"pageInfo"`
	BackendID string `json:"backendId"`
}

// DecodePullResponse decodes one pull page.
func DecodePullResponse(raw []byte) (PullResponse, error) {
	var w wirePullResponse
	if err := json.Unmarshal(raw, &w); err != nil {
		return PullResponse{}, fmt.Errorf("decode pull response: %w", err)
	}
	return w.response()
}

// DecodePullResponses decodes a JSON array of pull pages, such as the values
// of a Chunk returned by [CutChunk], in one pass.
func DecodePullResponses(array []byte) ([]PullResponse, error) {
	var ws []wirePullResponse
	if err := json.Unmarshal(array, &ws); err != nil {
		return nil, fmt.Errorf("decode pull responses: %w", err)
	}
	out := make([]PullResponse, len(ws))
	for i := range ws {
		res, err := ws[i].response()
		if err != nil {
			return nil, err
		}
		out[i] = res
	}
	return out, nil
}

func (w *wirePullResponse) response() (PullResponse, error) {
	res := PullResponse{Batch: make([]PullItem, len(w.Batch)), BackendID: w.BackendID}
	switch w.PageInfo.Tag {
	case "NoMore":
	case "MoreKnown":
		res.PageInfo = PageInfo{Kind: MoreKnown, Remaining: w.PageInfo.Remaining}
	case "MoreUnknown":
		res.PageInfo = PageInfo{Kind: MoreUnknown}
	default:
		return PullResponse{}, fmt.Errorf("decode pull response: unknown pageInfo tag %q", w.PageInfo.Tag)
	}
	var last *SyncMetadata
	for i, it := range w.Batch {
		res.Batch[i].Event = it.Event
		switch it.Metadata.Tag {
		case "None":
		case "Some":
			if it.Metadata.Value == nil {
				return PullResponse{}, fmt.Errorf("decode pull response: batch[%d]: metadata Some without value", i)
			}
			// Events of one batch share their metadata.
			if last == nil || last.CreatedAt != it.Metadata.Value.CreatedAt {
				last = &SyncMetadata{CreatedAt: it.Metadata.Value.CreatedAt}
			}
			res.Batch[i].Metadata = last
		default:
			return PullResponse{}, fmt.Errorf("decode pull response: batch[%d]: metadata tag %q", i, it.Metadata.Tag)
		}
	}
	return res, nil
}

// option is Effect's Option encoding: {"_tag":"None"} or {"_tag":"Some","value":…}.
type option[T any] struct{ value T }

func (o option[T]) MarshalJSON() ([]byte, error) {
	if isNil(o.value) {
		return []byte(`{"_tag":"None"}`), nil
	}
	v, err := marshal(o.value)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(v)+26)
	out = append(out, `{"_tag":"Some","value":`...)
	out = append(out, v...)
	return append(out, '}'), nil
}

func (o *option[T]) UnmarshalJSON(b []byte) error {
	var w struct {
		Tag   string          `json:"_tag"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("option: %w", err)
	}
	switch w.Tag {
	case "None":
		var zero T
		o.value = zero
		return nil
	case "Some":
		if len(w.Value) == 0 {
			return errors.New(`option: "Some" without "value"`)
		}
		return json.Unmarshal(w.Value, &o.value)
	default:
		return fmt.Errorf(`option: unknown tag %q (want "None" or "Some")`, w.Tag)
	}
}

func isNil(v any) bool {
	switch p := v.(type) {
	case *Cursor:
		return p == nil
	case *string:
		return p == nil
	case *SyncMetadata:
		return p == nil
	}
	return v == nil
}

func nullToNil(raw json.RawMessage) json.RawMessage {
	if string(raw) == "null" {
		return nil
	}
	return raw
}
