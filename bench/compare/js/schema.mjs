// The schema of the side-by-side benchmarks. bench/compare/golive.go defines
// the same tables, events and materializers for livestore-go.
import { Events, makeSchema, Schema, State } from '@livestore/livestore'

export const events = {
  todoCreated: Events.synced({
    name: 'v1.TodoCreated',
    schema: Schema.Struct({ id: Schema.String, text: Schema.String }),
  }),
  todoRenamed: Events.synced({
    name: 'v1.TodoRenamed',
    schema: Schema.Struct({ id: Schema.String, text: Schema.String }),
  }),
  itemCreated: Events.synced({
    name: 'v1.ItemCreated',
    schema: Schema.Struct({ id: Schema.String, value: Schema.Number }),
  }),
  itemSet: Events.synced({
    name: 'v1.ItemSet',
    schema: Schema.Struct({ id: Schema.String, value: Schema.Number }),
  }),
}

export const tables = {
  todos: State.SQLite.table({
    name: 'todos',
    columns: {
      id: State.SQLite.text({ primaryKey: true }),
      text: State.SQLite.text({ default: '' }),
      completed: State.SQLite.boolean({ default: false }),
    },
  }),
  items: State.SQLite.table({
    name: 'items',
    columns: {
      id: State.SQLite.text({ primaryKey: true }),
      value: State.SQLite.integer({ default: 0 }),
    },
  }),
}

const materializers = State.SQLite.materializers(events, {
  'v1.TodoCreated': ({ id, text }) => tables.todos.insert({ id, text, completed: false }),
  'v1.TodoRenamed': ({ id, text }) => tables.todos.update({ text }).where({ id }),
  'v1.ItemCreated': ({ id, value }) => tables.items.insert({ id, value }),
  'v1.ItemSet': ({ id, value }) => tables.items.update({ value }).where({ id }),
})

export const schema = makeSchema({ events, state: State.SQLite.makeState({ tables, materializers }) })
