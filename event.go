package livestore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"reflect"
	"sync"
)

// EventDef defines an event: its versioned name (e.g. "v1.TodoCreated"),
// whether it is synced or client-only, and the Go type of its arguments.
// Arguments travel as the JSON encoding of T; evolve T only in
// forward-compatible ways (add optional fields) and never reuse a name.
type EventDef[T any] struct {
	name       string
	clientOnly bool
	hashOnce   sync.Once
	hashValue  int64
}

// Synced defines an event that is pushed to the sync server and reaches every
// client of the store.
func Synced[T any](name string) *EventDef[T] { return &EventDef[T]{name: name} }

// ClientOnly defines an event that stays on this client: it is committed to
// the local eventlog and materialized, but never pushed.
func ClientOnly[T any](name string) *EventDef[T] {
	return &EventDef[T]{name: name, clientOnly: true}
}

// Name is the event's name.
func (d *EventDef[T]) Name() string { return d.name }

// IsClientOnly reports whether the event stays on this client.
func (d *EventDef[T]) IsClientOnly() bool { return d.clientOnly }

// New returns an event of this definition with the given arguments, ready to
// be committed.
func (d *EventDef[T]) New(args T) Event { return Event{Name: d.name, Args: args} }

func (d *EventDef[T]) decode(raw json.RawMessage) (any, error) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("event %s: args do not match %T: %w", d.name, v, err)
	}
	return v, nil
}

func (d *EventDef[T]) typed(v any) (any, bool) {
	x, ok := v.(T)
	return x, ok
}

func (d *EventDef[T]) hash() int64 {
	d.hashOnce.Do(func() {
		var zero T
		h := fnv.New64a()
		fmt.Fprintf(h, "%s|%v|%s", d.name, d.clientOnly, typeShape(reflect.TypeOf(&zero).Elem(), 0))
		d.hashValue = int64(h.Sum64() >> 1)
	})
	return d.hashValue
}

// typeShape renders a type's JSON-relevant structure, so the hash changes when
// the argument type does but not when it is merely renamed.
func typeShape(t reflect.Type, depth int) string {
	if depth > 8 {
		return t.Kind().String()
	}
	switch t.Kind() {
	case reflect.Pointer:
		return "*" + typeShape(t.Elem(), depth+1)
	case reflect.Slice, reflect.Array:
		return "[]" + typeShape(t.Elem(), depth+1)
	case reflect.Map:
		return "map[" + typeShape(t.Key(), depth+1) + "]" + typeShape(t.Elem(), depth+1)
	case reflect.Struct:
		if t.PkgPath() == "time" && t.Name() == "Time" {
			return "time"
		}
		var b bytes.Buffer
		b.WriteString("{")
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			fmt.Fprintf(&b, "%s %s %s;", f.Name, f.Tag.Get("json"), typeShape(f.Type, depth+1))
		}
		b.WriteString("}")
		return b.String()
	}
	return t.Kind().String()
}

// Definition is implemented by every *EventDef; schemas hold definitions of
// any argument type through it.
type Definition interface {
	Name() string
	IsClientOnly() bool
	decode(raw json.RawMessage) (any, error)
	// typed returns v when it already is a value of the argument type.
	typed(v any) (any, bool)
	hash() int64
}

// Event is an event to commit: a name and its arguments. Args is either a
// value of the definition's argument type (what EventDef.New produces) or
// the arguments already encoded as JSON (json.RawMessage), for callers that
// work by name, such as the CLI or an HTTP API.
type Event struct {
	Name string
	Args any
}

// encodeArgs turns ev.Args into JSON and returns it with the decoded
// arguments, checking that JSON given by the caller decodes into the
// definition's argument type.
func encodeArgs(def Definition, ev Event) (json.RawMessage, any, error) {
	if v, ok := def.typed(ev.Args); ok {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, nil, fmt.Errorf("event %s: encode args: %w", ev.Name, err)
		}
		return b, v, nil
	}
	var raw json.RawMessage
	switch a := ev.Args.(type) {
	case json.RawMessage:
		raw = a
	case []byte:
		raw = a
	default:
		b, err := json.Marshal(a)
		if err != nil {
			return nil, nil, fmt.Errorf("event %s: encode args: %w", ev.Name, err)
		}
		raw = b
	}
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	if !json.Valid(raw) {
		return nil, nil, fmt.Errorf("event %s: args are not valid JSON", ev.Name)
	}
	v, err := def.decode(raw)
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, nil, fmt.Errorf("event %s: args: %w", ev.Name, err)
	}
	return buf.Bytes(), v, nil
}
