// The todo schema shared by every interop program. The Go side defines the
// same events and tables; event names and arg shapes are the wire contract.
import { Events, makeSchema, Schema, State } from '@livestore/livestore'

export const events = {
  todoCreated: Events.synced({
    name: 'v1.TodoCreated',
    schema: Schema.Struct({ id: Schema.String, text: Schema.String }),
  }),
  todoCompleted: Events.synced({
    name: 'v1.TodoCompleted',
    schema: Schema.Struct({ id: Schema.String }),
  }),
  // deletedAt travels as an ISO-8601 string and is a Date in the app.
  todoDeleted: Events.synced({
    name: 'v1.TodoDeleted',
    schema: Schema.Struct({ id: Schema.String, deletedAt: Schema.Date }),
  }),
  // Free-form JSON args: exercises nesting, unicode and large payloads on the wire.
  todoAnnotated: Events.synced({
    name: 'v1.TodoAnnotated',
    schema: Schema.Struct({ id: Schema.String, note: Schema.JsonValue }),
  }),
}

export const tables = {
  todos: State.SQLite.table({
    name: 'todos',
    columns: {
      id: State.SQLite.text({ primaryKey: true }),
      text: State.SQLite.text({ default: '' }),
      completed: State.SQLite.boolean({ default: false }),
      deletedAt: State.SQLite.datetime({ nullable: true }),
    },
  }),
  annotations: State.SQLite.table({
    name: 'annotations',
    columns: {
      id: State.SQLite.text({ primaryKey: true }),
      note: State.SQLite.json({ schema: Schema.JsonValue }),
    },
  }),
}

const materializers = State.SQLite.materializers(events, {
  'v1.TodoCreated': ({ id, text }) => tables.todos.insert({ id, text, completed: false }),
  'v1.TodoCompleted': ({ id }) => tables.todos.update({ completed: true }).where({ id }),
  'v1.TodoDeleted': ({ id, deletedAt }) => tables.todos.update({ deletedAt }).where({ id }),
  'v1.TodoAnnotated': ({ id, note }) => tables.annotations.insert({ id, note }).onConflict('id', 'replace'),
})

export const schema = makeSchema({ events, state: State.SQLite.makeState({ tables, materializers }) })
