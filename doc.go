// Package livestore is a local-first data layer: application state is kept
// as an append-only log of events, materialized into a SQLite database by
// pure functions, queried reactively, and synced with other clients through a
// sync server that fixes one global order of events.
//
// A program defines tables (NewTable, ClientDocument), events (Synced,
// ClientOnly) and materializers (Materialize) in a Schema, opens a Store in a
// directory (or in memory) and commits events:
//
//	todos := livestore.NewTable("todos",
//		livestore.Text("id").PrimaryKey(),
//		livestore.Text("text"),
//		livestore.Boolean("completed").Default(false))
//	created := livestore.Synced[TodoCreated]("v1.TodoCreated")
//	schema, _ := livestore.NewSchema(livestore.SchemaDef{
//		Tables: []*livestore.Table{todos},
//		Events: []livestore.Definition{created},
//		Materializers: []livestore.Materializer{
//			livestore.Materialize(created, func(_ *livestore.MaterializeContext, a TodoCreated) ([]livestore.Statement, error) {
//				return []livestore.Statement{todos.Insert(livestore.Values{"id": a.ID, "text": a.Text})}, nil
//			}),
//		},
//	})
//	store, _ := livestore.Open(ctx, schema, livestore.Options{Dir: "data"})
//	store.Commit(ctx, created.New(TodoCreated{ID: "1", Text: "Buy milk"}))
//	rows, _ := livestore.Query[Todo](ctx, store, todos.Where(livestore.Eq("completed", false)))
//
// # Storage
//
// A store directory holds one SQLite database (DBFileName) with the eventlog
// tables and the state tables side by side, in the table layout of the
// reference LiveStore client, so that a commit (eventlog rows, state writes
// and the changesets that allow rolling unconfirmed events back) is one
// atomic, durable SQLite transaction. A LOCK file keeps a second process out.
//
// # Decoding rows
//
// Query decodes each row into a T by column name. For a struct, a column
// goes to the field tagged `db:"name"`, else to the field whose json tag
// names it, else to the field whose name matches case-insensitively. A
// map[string]any receives every column; any other T receives the first
// column. Booleans read 0/1 integers, time.Time reads ISO-8601 text,
// pointers are nil for NULL, and structs, maps and slices decode JSON text.
//
// # What is here and what is not
//
// This package holds the store: schema, commits, materialization, reactive
// queries, the registry of open stores, and the sync algorithm (pull, push,
// rebase) over the [SyncBackend] interface. It holds no transport and no
// server: the WebSocket and HTTP clients are in package syncclient, the
// in-process server for tests in memsync, the sync server in syncserver,
// the wire format in syncproto. The SQL on the store's own bookkeeping
// tables (eventlog, sync status, changesets) lives in internal/clientdb;
// read-only tools over a store directory are in package inspect, the web
// page in devtools and the assistant tools in mcp.
package livestore
