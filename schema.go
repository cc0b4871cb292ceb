package livestore

import (
	"context"
	"fmt"
	"sort"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/sqlite"
)

// SchemaDef lists what a store is made of.
type SchemaDef struct {
	// Tables are the state tables, including client-document tables.
	Tables []*Table
	// Events are the event definitions the application commits. Events of
	// client-document tables are added automatically.
	Events []Definition
	// Materializers turn events into state writes, one per event name.
	Materializers []Materializer
	// UnknownEvents says what to do with an event in the log that this schema
	// does not know (e.g. committed by a newer client) or that has no
	// materializer. The zero value warns and skips it.
	UnknownEvents UnknownEventHandling
}

// UnknownEventStrategy is what the store does with an event it cannot
// materialize.
type UnknownEventStrategy int

// Strategies for unknown events.
const (
	// UnknownEventWarn logs a warning and skips the event (it stays in the log).
	UnknownEventWarn UnknownEventStrategy = iota
	// UnknownEventIgnore skips the event silently.
	UnknownEventIgnore
	// UnknownEventFail fails the operation that met the event.
	UnknownEventFail
	// UnknownEventCallback calls UnknownEventHandling.OnUnknownEvent and skips
	// the event.
	UnknownEventCallback
)

// UnknownEventHandling configures the unknown-event strategy.
type UnknownEventHandling struct {
	Strategy UnknownEventStrategy
	// OnUnknownEvent is called for UnknownEventCallback.
	OnUnknownEvent func(ev eventlog.Event, reason error)
}

// Schema is a validated SchemaDef. It is immutable and may be shared by many
// stores.
type Schema struct {
	tables        []*Table
	tableByName   map[string]*Table
	events        map[string]Definition
	eventNames    []string
	materializers map[string]Materializer
	unknown       UnknownEventHandling
}

// NewSchema validates def and returns the schema.
func NewSchema(def SchemaDef) (*Schema, error) {
	s := &Schema{
		tableByName:   map[string]*Table{},
		events:        map[string]Definition{},
		materializers: map[string]Materializer{},
		unknown:       def.UnknownEvents,
	}
	if def.UnknownEvents.Strategy == UnknownEventCallback && def.UnknownEvents.OnUnknownEvent == nil {
		return nil, fmt.Errorf("schema: unknown-event strategy callback without OnUnknownEvent")
	}
	addEvent := func(d Definition) error {
		if d == nil {
			return fmt.Errorf("schema: nil event definition")
		}
		if d.Name() == "" {
			return fmt.Errorf("schema: event with empty name")
		}
		if _, dup := s.events[d.Name()]; dup {
			return fmt.Errorf("schema: event %q defined twice", d.Name())
		}
		s.events[d.Name()] = d
		return nil
	}
	addMaterializer := func(m Materializer) error {
		if m.def == nil {
			return fmt.Errorf("schema: materializer without event definition")
		}
		if _, dup := s.materializers[m.def.Name()]; dup {
			return fmt.Errorf("schema: event %q has two materializers", m.def.Name())
		}
		s.materializers[m.def.Name()] = m
		return nil
	}
	for _, t := range def.Tables {
		if t == nil {
			return nil, fmt.Errorf("schema: nil table")
		}
		if err := t.validate(); err != nil {
			return nil, fmt.Errorf("schema: %w", err)
		}
		if _, dup := s.tableByName[t.name]; dup {
			return nil, fmt.Errorf("schema: table %q defined twice", t.name)
		}
		s.tableByName[t.name] = t
		s.tables = append(s.tables, t)
		if t.doc != nil {
			if err := addEvent(t.doc.setDefinition()); err != nil {
				return nil, err
			}
			if err := addMaterializer(t.doc.materializer()); err != nil {
				return nil, err
			}
		}
	}
	for _, d := range def.Events {
		if err := addEvent(d); err != nil {
			return nil, err
		}
	}
	for _, m := range def.Materializers {
		if err := addMaterializer(m); err != nil {
			return nil, err
		}
		if known, ok := s.events[m.def.Name()]; !ok || known != m.def {
			return nil, fmt.Errorf("schema: materializer for event %q, which is not in Events", m.def.Name())
		}
	}
	for name := range s.events {
		s.eventNames = append(s.eventNames, name)
	}
	sort.Strings(s.eventNames)
	return s, nil
}

// Tables lists the schema's tables.
func (s *Schema) Tables() []*Table { return append([]*Table(nil), s.tables...) }

// Table returns the named table.
func (s *Schema) Table(name string) (*Table, bool) {
	t, ok := s.tableByName[name]
	return t, ok
}

// EventNames lists the names of all defined events, sorted.
func (s *Schema) EventNames() []string { return append([]string(nil), s.eventNames...) }

// Event returns the definition of the named event.
func (s *Schema) Event(name string) (Definition, bool) {
	d, ok := s.events[name]
	return d, ok
}

func (s *Schema) tableNames() []string {
	names := make([]string, len(s.tables))
	for i, t := range s.tables {
		names[i] = t.name
	}
	return names
}

// Materializer turns one event into state writes. Build it with Materialize.
type Materializer struct {
	def Definition
	fn  func(mc *MaterializeContext, args any) ([]Statement, error)
}

// Materialize defines how events of def change state. fn must be a pure
// function of its arguments and of the state it reads through mc: the same
// eventlog must give byte-identical state on every client. It returns the
// writes to apply (query-builder statements or SQL).
func Materialize[T any](def *EventDef[T], fn func(mc *MaterializeContext, args T) ([]Statement, error)) Materializer {
	return Materializer{def: def, fn: func(mc *MaterializeContext, args any) ([]Statement, error) {
		return fn(mc, args.(T))
	}}
}

// MaterializeContext gives a materializer the event being applied and read
// access to the current state (including the writes of earlier events of the
// same commit).
type MaterializeContext struct {
	// Event is the event being materialized.
	Event eventlog.Event
	store *Store
}

func (mc *MaterializeContext) readRows(ctx context.Context, query string, args []any, fn func(*sqlite.Row) error) error {
	return mc.store.w.Query(query, args, fn)
}

// unknownEvent applies the schema's policy to an event it cannot materialize.
// It returns nil when the event is to be skipped.
func (s *Store) unknownEvent(ev eventlog.Event, reason error) error {
	switch s.schema.unknown.Strategy {
	case UnknownEventIgnore:
		return nil
	case UnknownEventFail:
		return reason
	case UnknownEventCallback:
		s.schema.unknown.OnUnknownEvent(ev, reason)
		return nil
	default:
		s.log.Warn("skipping event the schema cannot materialize", "event", ev.Name, "seqNum", ev.SeqNum.String(), "reason", reason)
		return nil
	}
}
