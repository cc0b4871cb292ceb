package livestore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
)

// ClientDocumentTable is a table of per-client documents (typically UI
// state): each row maps an id to a JSON value of type T. Setting a document
// merges the given fields into its current value (or into the default when
// the document does not exist yet); reading a missing document returns the
// default. The table comes with a client-only event named "<name>Set" and
// its materializer.
type ClientDocumentTable[T any] struct {
	*Table
	defaultValue T
	setEvent     *EventDef[clientDocSetArgs]
}

type clientDocSetArgs struct {
	ID    string          `json:"id"`
	Value json.RawMessage `json:"value"`
}

type clientDocument interface {
	setDefinition() Definition
	materializer() Materializer
}

// ClientDocument defines a client-document table named name with the given
// default value. Put its Table in SchemaDef.Tables.
func ClientDocument[T any](name string, defaultValue T) *ClientDocumentTable[T] {
	d := &ClientDocumentTable[T]{
		Table:        NewTable(name, Text("id").PrimaryKey(), JSON("value")),
		defaultValue: defaultValue,
		setEvent:     ClientOnly[clientDocSetArgs](name + "Set"),
	}
	d.Table.doc = d
	return d
}

// SetEvent is the name of the table's set event.
func (d *ClientDocumentTable[T]) SetEvent() string { return d.setEvent.Name() }

// Set returns an event that merges the fields of partial (a struct, map or
// anything that encodes as a JSON object) into document id. A partial that is
// not a JSON object replaces the value.
func (d *ClientDocumentTable[T]) Set(id string, partial any) Event {
	raw, err := json.Marshal(partial)
	if err != nil {
		// The error surfaces at Commit as invalid args.
		raw = nil
	}
	return d.setEvent.New(clientDocSetArgs{ID: id, Value: raw})
}

// Get reads document id, or the default value when it does not exist.
func (d *ClientDocumentTable[T]) Get(ctx context.Context, r Reader, id string) (T, error) {
	type row struct {
		Value json.RawMessage `db:"value"`
	}
	got, found, err := First(ctx, r, d.Table.Select("value").Where(Eq("id", id)), row{})
	if err != nil || !found {
		return d.defaultValue, err
	}
	var v T
	if err := json.Unmarshal(got.Value, &v); err != nil {
		return d.defaultValue, fmt.Errorf("livestore: client document %s/%s: %w", d.name, id, err)
	}
	return v, nil
}

func (d *ClientDocumentTable[T]) setDefinition() Definition { return d.setEvent }

func (d *ClientDocumentTable[T]) materializer() Materializer {
	return Materialize(d.setEvent, func(mc *MaterializeContext, a clientDocSetArgs) ([]Statement, error) {
		if len(a.Value) == 0 || !json.Valid(a.Value) {
			return nil, fmt.Errorf("client document %s: value is not valid JSON", d.name)
		}
		type row struct {
			Value json.RawMessage `db:"value"`
		}
		cur, found, err := First(context.Background(), mc, d.Table.Select("value").Where(Eq("id", a.ID)), row{})
		if err != nil {
			return nil, err
		}
		base := cur.Value
		if !found {
			if base, err = json.Marshal(d.defaultValue); err != nil {
				return nil, err
			}
		}
		merged, err := mergeJSONObjects(base, a.Value)
		if err != nil {
			return nil, fmt.Errorf("client document %s: %w", d.name, err)
		}
		return []Statement{
			d.Table.Insert(Values{"id": a.ID, "value": merged}).OnConflict("id").Replace(),
		}, nil
	})
}

// mergeJSONObjects overlays the top-level fields of patch onto base. When
// either is not an object, patch wins.
func mergeJSONObjects(base, patch json.RawMessage) (json.RawMessage, error) {
	tb, tp := bytes.TrimSpace(base), bytes.TrimSpace(patch)
	if len(tb) == 0 || tb[0] != '{' || len(tp) == 0 || tp[0] != '{' {
		return patch, nil
	}
	var b, p map[string]json.RawMessage
	if err := json.Unmarshal(tb, &b); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(tp, &p); err != nil {
		return nil, err
	}
	for k, v := range p {
		b[k] = v
	}
	return json.Marshal(b)
}
