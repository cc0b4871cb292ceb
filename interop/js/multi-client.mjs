// Many LiveStore 0.4.0 clients in one Node process, for tests that check
// several stores (or several servers) without paying Node's boot for each.
//
//   node js/multi-client.mjs
//
// It reads requests from stdin, one JSON object per line, and runs them
// concurrently:
//
//   {"id":"r1","url":"ws://127.0.0.1:8787","store":"S","commit":["js-1"],"waitRows":4,"timeoutMs":60000}
//
// For each it opens store S (in memory, a fresh client id) with the WebSocket
// sync backend, commits one v1.TodoCreated per id of "commit" (text "from
// js"), waits until the todos table has at least waitRows rows and until the
// server lists every event it committed, then answers on stdout with one line
//
//   {"id":"r1","storeId":"S","clientId":"…","committed":1,"todos":[…]}
//
// or {"id":"r1","error":"…"} (a timeout says how far it got), and shuts the
// store down.
//
// Optional fields, for tests of refused or limited connections:
//   "syncPayload": any JSON  the store's syncPayload (e.g. {"authToken":"…"}),
//                            also sent when reading the server's events
//   "confirm": false         do not wait for the server to list the commits
//                            (they are expected never to get there)
//   "later": {"atMs": T, "commit": ["js-2"]}
//                            at Unix time T (ms), after the above, commit
//                            these too; they are never waited for
//   "holdMs": N              keep the store open N ms more before answering,
//                            so that its sync has time to try what it would The first line on stdout is {"ready":true}. The process exits
// when stdin ends and every request has been answered. Everything else goes
// to stderr.
import { randomBytes } from 'node:crypto'
import readline from 'node:readline'

import { makeAdapter } from '@livestore/adapter-node'
import { createStorePromise } from '@livestore/livestore'
import { makeWsSync } from '@livestore/sync-cf/client'
import WebSocket from 'ws'

import { events, schema, tables } from './schema.mjs'
import { fetchServerEvents } from './server-events.mjs'

for (const level of ['log', 'info', 'debug', 'warn']) console[level] = console.error

// Node 20 has no global WebSocket; makeWsSync needs one.
globalThis.WebSocket ??= WebSocket

// stdout carries only answers, one line each, written whole.
let writing = Promise.resolve()
const answer = (obj) => {
  writing = writing.then(() => new Promise((resolve) => process.stdout.write(`${JSON.stringify(obj)}\n`, resolve)))
  return writing
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const randomId = () => randomBytes(6).toString('base64url').slice(0, 6)

const readTodos = (store) =>
  store
    .query(tables.todos.orderBy('id', 'asc'))
    .map((r) => ({ ...r, deletedAt: r.deletedAt === null ? null : r.deletedAt.toISOString() }))

const run = async (req) => {
  const timeoutMs = req.timeoutMs ?? 60_000
  const deadline = Date.now() + timeoutMs
  const remainingMs = () => deadline - Date.now()
  const clientId = randomId()
  const sessionId = randomId()
  const adapter = makeAdapter({
    storage: { type: 'in-memory' },
    clientId,
    sessionId,
    sync: { backend: makeWsSync({ url: req.url }) },
  })
  const syncPayload = req.syncPayload
  const store = await createStorePromise({ adapter, schema, storeId: req.store, syncPayload })
  try {
    const ids = req.commit ?? []
    for (const id of ids) store.commit(events.todoCreated({ id, text: 'from js' }))

    let todos = readTodos(store)
    while (todos.length < (req.waitRows ?? 0)) {
      if (remainingMs() <= 0) throw new Error(`timeout: ${todos.length} of ${req.waitRows} rows: ${JSON.stringify(todos.map((r) => r.id))}`)
      await sleep(100)
      todos = readTodos(store)
    }

    // The store's syncStatus() cannot tell whether the server has the events
    // (see PROTOCOL.md): ask the server.
    let onServer = -1
    while (ids.length > 0 && req.confirm !== false) {
      try {
        const serverEvents = await fetchServerEvents({
          url: req.url,
          storeId: req.store,
          payload: syncPayload,
          timeoutMs: Math.max(1000, Math.min(10_000, remainingMs())),
        })
        onServer = serverEvents.filter((e) => e.clientId === clientId && e.sessionId === sessionId).length
        if (onServer >= ids.length) break
      } catch (err) {
        console.error(`${req.id}: reading the server's events: ${err.message}`)
      }
      if (remainingMs() <= 0) throw new Error(`timeout: the server has ${onServer} of ${ids.length} events of client ${clientId}`)
      await sleep(200)
    }
    let committed = ids.length
    if (req.later !== undefined) {
      const wait = (req.later.atMs ?? 0) - Date.now()
      if (wait > 0) await sleep(wait)
      for (const id of req.later.commit ?? []) store.commit(events.todoCreated({ id, text: 'from js' }))
      committed += (req.later.commit ?? []).length
    }
    if ((req.holdMs ?? 0) > 0) await sleep(req.holdMs)
    return { id: req.id, storeId: req.store, clientId, committed, todos: readTodos(store) }
  } finally {
    await store.shutdownPromise().catch((err) => console.error(`${req.id}: shutdown: ${err}`))
  }
}

const pending = []
await answer({ ready: true })
const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const line of lines) {
  if (line.trim() === '') continue
  let req
  try {
    req = JSON.parse(line)
  } catch (err) {
    pending.push(answer({ id: null, error: `not JSON: ${err.message}` }))
    continue
  }
  pending.push(
    run(req).then(
      (res) => answer(res),
      (err) => answer({ id: req.id, error: String(err?.stack ?? err) }),
    ),
  )
}
await Promise.all(pending)
process.exit(0)
