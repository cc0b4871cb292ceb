// A LiveStore 0.4.0 client driven from the command line, for interop tests.
//
//   node js/client.mjs --url ws://127.0.0.1:8787 --store S --commit 3 --prefix a --wait-rows 6
//   node js/client.mjs --transport http --url http://127.0.0.1:8787 --store S ...
//
// It opens store S with the Node adapter and the sync backend of --transport
// (ws: makeWsSync, the default; http: makeHttpSync, which polls for live
// updates every --poll-ms),
// commits --commit todos (ids "<prefix>-000", "<prefix>-001", ...), waits
// until the todos table has at least --wait-rows rows, makes sure the server
// has every event this client committed, then prints the state as one JSON
// line on stdout and shuts the store down. Everything else goes to stderr.
//
// Exit codes: 0 ok, 1 error, 2 timeout (the last state seen goes to stderr).
// First: see node-fetch.mjs (makeHttpSync fails on Node 20 without it).
import './node-fetch.mjs'

import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'

import { makeAdapter } from '@livestore/adapter-node'
import { createStorePromise, StoreInternalsSymbol } from '@livestore/livestore'
import { makeHttpSync, makeWsSync } from '@livestore/sync-cf/client'
import { Effect } from 'effect'
import WebSocket from 'ws'

import { events, schema, tables } from './schema.mjs'
import { fetchServerEvents } from './server-events.mjs'

// stdout carries exactly one line, the result; library logging goes to stderr.
// It is awaited: process.exit() would cut a large result written to a pipe.
const writeResult = (obj) => new Promise((resolve) => process.stdout.write(`${JSON.stringify(obj)}\n`, resolve))
for (const level of ['log', 'info', 'debug', 'warn']) console[level] = console.error

// Node 20 has no global WebSocket; makeWsSync needs one.
globalThis.WebSocket ??= WebSocket

const usage = `usage: node client.mjs --url ws://HOST:PORT --store ID [--commit N] [--prefix P]
  [--wait-rows M] [--timeout-ms T] [--storage memory|fs:DIR] [--client-id ID]
  [--complete K] [--delete K] [--deleted-at ISO] [--annotate] [--note-bytes B]
  [--text-suffix S] [--wait-server-events N] [--wait-server-head] [--session-id ID]
  [--eventlog-out FILE] [--sync-payload JSON] [--transport ws|http] [--poll-ms P]`

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    store: { type: 'string' },
    commit: { type: 'string', default: '0' },
    prefix: { type: 'string' },
    'wait-rows': { type: 'string', default: '0' },
    'timeout-ms': { type: 'string', default: '60000' },
    storage: { type: 'string', default: 'memory' },
    'client-id': { type: 'string' },
    complete: { type: 'string', default: '0' },
    delete: { type: 'string', default: '0' },
    'deleted-at': { type: 'string', default: '2025-01-02T03:04:05.678Z' },
    annotate: { type: 'boolean', default: false },
    'note-bytes': { type: 'string', default: '0' },
    'text-suffix': { type: 'string', default: '' },
    'eventlog-out': { type: 'string' },
    'wait-server-head': { type: 'boolean', default: false },
    'wait-server-events': { type: 'string', default: '0' },
    'session-id': { type: 'string' },
    'sync-payload': { type: 'string' },
    transport: { type: 'string', default: 'ws' },
    'poll-ms': { type: 'string', default: '250' },
    help: { type: 'boolean', default: false },
  },
})

const fail = (code, message) => {
  console.error(message)
  process.exit(code)
}

if (opts.help) fail(0, usage)
if (!opts.url || !opts.store) fail(1, usage)

const intOpt = (name) => {
  const n = Number(opts[name])
  if (!Number.isInteger(n) || n < 0) fail(1, `--${name} must be a non-negative integer, got ${opts[name]}`)
  return n
}
const commitCount = intOpt('commit')
const waitRows = intOpt('wait-rows')
const timeoutMs = intOpt('timeout-ms')
const completeCount = Math.min(intOpt('complete'), commitCount)
const deleteCount = Math.min(intOpt('delete'), commitCount)
const noteBytes = intOpt('note-bytes')
const waitServerEvents = intOpt('wait-server-events')
const pollMs = intOpt('poll-ms')
if (opts.transport !== 'ws' && opts.transport !== 'http') fail(1, `--transport must be ws or http, got ${opts.transport}`)
const deletedAt = new Date(opts['deleted-at'])
if (Number.isNaN(deletedAt.getTime())) fail(1, `--deleted-at is not a date: ${opts['deleted-at']}`)

// The app's sync payload (e.g. {"authToken":"…"}), sent to the server with
// the connection, as createStorePromise's syncPayload.
let syncPayload
if (opts['sync-payload'] !== undefined) {
  try {
    syncPayload = JSON.parse(opts['sync-payload'])
  } catch (err) {
    fail(1, `--sync-payload is not JSON: ${err.message}`)
  }
}

const deadline = Date.now() + timeoutMs
const remainingMs = () => deadline - Date.now()
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const randomId = () => randomBytes(6).toString('base64url').slice(0, 6)

// A client id is random per in-memory run and stable per fs directory (the
// adapter's default, the host name, would be shared by every client here).
const storageOpt = () => {
  if (opts.storage === 'memory') return { storage: { type: 'in-memory' }, clientId: opts['client-id'] ?? randomId() }
  if (opts.storage.startsWith('fs:')) {
    const dir = path.resolve(opts.storage.slice(3))
    fs.mkdirSync(dir, { recursive: true })
    const idFile = path.join(dir, 'interop-client-id')
    let clientId = opts['client-id']
    if (clientId === undefined && fs.existsSync(idFile)) clientId = fs.readFileSync(idFile, 'utf8').trim()
    clientId ??= randomId()
    fs.writeFileSync(idFile, clientId)
    return { storage: { type: 'fs', baseDirectory: dir }, clientId }
  }
  return fail(1, `--storage must be memory or fs:DIR, got ${opts.storage}`)
}
const { storage, clientId } = storageOpt()
// A session id per run (the Node adapter's default is "static" for all).
const sessionId = opts['session-id'] ?? randomId()
const prefix = opts.prefix ?? clientId

const note = (i) => ({
  i,
  text: 'unicode: ü ß 日本語 🎉 "quotes" \\ back\\slash \n newline',
  nested: { list: [1, 2.5, -3, true, null, { deep: ['x'] }], empty: {}, emptyList: [] },
  ...(noteBytes > 0 ? { padding: 'x'.repeat(noteBytes) } : {}),
})

const readState = (store) => ({
  todos: store
    .query(tables.todos.orderBy('id', 'asc'))
    .map((r) => ({ ...r, deletedAt: r.deletedAt === null ? null : r.deletedAt.toISOString() })),
  annotations: store.query(tables.annotations.orderBy('id', 'asc')),
})

const main = async () => {
  const backend =
    opts.transport === 'http'
      ? makeHttpSync({ url: opts.url, livePull: { pollInterval: pollMs } })
      : makeWsSync({ url: opts.url })
  const adapter = makeAdapter({ storage, clientId, sessionId, sync: { backend } })
  const store = await createStorePromise({ adapter, schema, storeId: opts.store, syncPayload })

  let committed = 0
  const commit = (event) => {
    store.commit(event)
    committed++
  }
  const ids = Array.from({ length: commitCount }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`)
  ids.forEach((id, i) => {
    commit(events.todoCreated({ id, text: `todo ${i} from ${prefix}${opts['text-suffix']}` }))
    if (opts.annotate) commit(events.todoAnnotated({ id, note: note(i) }))
  })
  ids.slice(0, completeCount).forEach((id) => commit(events.todoCompleted({ id })))
  ids.slice(0, deleteCount).forEach((id) => commit(events.todoDeleted({ id, deletedAt })))

  // Poll the state itself: syncStatus() would not tell whether the server is reachable.
  let state = readState(store)
  while (state.todos.length < waitRows) {
    if (remainingMs() <= 0) {
      console.error(`timeout: ${state.todos.length} of ${waitRows} rows; state: ${JSON.stringify(state)}`)
      process.exit(2)
    }
    await sleep(100)
    state = readState(store)
  }

  // Shutting down with events still on their way to the server loses them,
  // so wait until the server itself lists every event of this run (this
  // client id and this run's session id: an fs client reopened keeps its
  // client id).
  let onServer = -1
  let serverHead = 0
  while (committed > 0 || opts['wait-server-head'] || waitServerEvents > 0) {
    try {
      const serverEvents = await fetchServerEvents({
        url: opts.url,
        transport: opts.transport,
        storeId: opts.store,
        payload: syncPayload,
        timeoutMs: Math.max(1000, Math.min(10_000, remainingMs())),
      })
      onServer = serverEvents.filter((e) => e.clientId === clientId && e.sessionId === sessionId).length
      serverHead = serverEvents.at(-1)?.seqNum ?? 0
      if (onServer >= committed && serverEvents.length >= waitServerEvents) break
    } catch (err) {
      console.error(`reading the server's events: ${err.message}`)
    }
    if (remainingMs() <= 0) {
      console.error(
        `timeout: the server has ${onServer} of ${committed} events of client ${clientId}, e${serverHead} of e${waitServerEvents}`,
      )
      process.exit(2)
    }
    await sleep(200)
  }

  // With --wait-server-head, the printed state includes every event the
  // server had at that point, not only --wait-rows rows.
  const globalOf = (seqNum) => Number(/^e(\d+)/.exec(seqNum)?.[1] ?? 0)
  while (opts['wait-server-head']) {
    const status = store.syncStatus()
    if (status.pendingCount === 0 && globalOf(status.localHead) >= serverHead) break
    if (remainingMs() <= 0) {
      console.error(`timeout: local head ${status.localHead} (${status.pendingCount} pending), server head e${serverHead}`)
      process.exit(2)
    }
    await sleep(100)
  }

  if (opts['eventlog-out'] !== undefined) {
    // The leader's eventlog database (SQLite file bytes), for checks of the
    // events' sequence numbers, rebase generations and encodings.
    const leader = store[StoreInternalsSymbol].clientSession.leaderThread
    fs.writeFileSync(opts['eventlog-out'], await Effect.runPromise(leader.getEventlogData))
  }

  await writeResult({ storeId: opts.store, clientId, committed, ...readState(store) })
  await store.shutdownPromise()
}

main().then(
  () => process.exit(0),
  (err) => fail(1, `client failed: ${err?.stack ?? err}`),
)
