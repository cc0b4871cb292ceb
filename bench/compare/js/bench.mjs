// One run of one side-by-side workload on JS LiveStore 0.4.0 (Node adapter,
// fs storage, no sync unless the workload is about sync). Started by
// `go run ./bench/compare`; prints one JSON line on stdout:
//
//   {"ms": <time inside store.commit() (1, 2), or summed commit-to-subscriber
//           latencies (4, 5)>,
//    "persistedMs": <from the first commit until the eventlog file holds the
//                    last event>, ...}
//
// Between commits the program lets the event loop run (the leader works on
// the same thread). A JS commit returns after the in-memory session write;
// the leader writes the eventlog file later (and the Node VFS never fsyncs).
// "persisted" is measured by reading that file with a second, independent
// SQLite connection (its own wasm instance), only while no rollback journal
// exists, so the probe never sees a half-written transaction.
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'

import { NodeFileSystem } from '@effect/platform-node'
import { makeAdapter } from '@livestore/adapter-node'
import { createStorePromise, queryDb } from '@livestore/livestore'
import { makeWsSync } from '@livestore/sync-cf/client'
import { loadSqlite3Wasm } from '@livestore/sqlite-wasm/load-wasm'
import { sqliteDbFactory } from '@livestore/sqlite-wasm/node'
import { Effect } from 'effect'
import WebSocket from 'ws'

import { events, schema, tables } from './schema.mjs'

const out = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`)
for (const level of ['log', 'info', 'debug', 'warn']) console[level] = console.error
// Node 20 has no global WebSocket; makeWsSync needs one.
globalThis.WebSocket ??= WebSocket

const { values: opts } = parseArgs({
  options: {
    workload: { type: 'string' },
    phase: { type: 'string', default: 'run' },
    dir: { type: 'string' },
    n: { type: 'string', default: '0' },
    batch: { type: 'string', default: '1000' },
    rows: { type: 'string', default: '0' },
    commits: { type: 'string', default: '0' },
    queries: { type: 'string', default: '0' },
    url: { type: 'string' },
    store: { type: 'string', default: 'bench' },
    role: { type: 'string' },
    'timeout-ms': { type: 'string', default: '600000' },
  },
})
const int = (name) => {
  const v = Number(opts[name])
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${name}: not a non-negative integer: ${opts[name]}`)
  return v
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const deadline = Date.now() + int('timeout-ms')
const checkDeadline = (what) => {
  if (Date.now() > deadline) throw new Error(`timeout: ${what}`)
}

const todoId = (i) => `t${String(i).padStart(6, '0')}`
const itemId = (i) => `i${String(i).padStart(4, '0')}`
const storeId = opts.store
const baseDir = path.resolve(opts.dir)
const storeDir = path.join(baseDir, storeId)

const openStore = async (sync) => {
  fs.mkdirSync(baseDir, { recursive: true })
  const adapter = makeAdapter({
    storage: { type: 'fs', baseDirectory: baseDir },
    clientId: opts.role ?? 'bench',
    ...(sync ? { sync } : {}),
  })
  return createStorePromise({ adapter, schema, storeId, disableDevtools: true })
}

// The eventlog database the leader writes, e.g. eventlog@6.db.
const eventlogFile = () => {
  const name = fs.readdirSync(storeDir).find((f) => f.startsWith('eventlog@') && f.endsWith('.db'))
  if (name === undefined) throw new Error(`no eventlog database in ${storeDir}`)
  return name
}

// openProbe opens the eventlog file a second time; head() is the highest
// global sequence number in the file, or -1 while a write is in progress.
// A probe query costs ~0.3 ms on the JS thread the leader also runs on, so
// it runs only when the file changed since the previous look.
const openProbe = async () => {
  const fileName = eventlogFile()
  const file = path.join(storeDir, fileName)
  const journal = `${file}-journal`
  const sqlite3 = await loadSqlite3Wasm()
  const db = await Effect.runPromise(
    Effect.flatMap(sqliteDbFactory({ sqlite3 }), (make) => make({ _tag: 'fs', directory: storeDir, fileName })).pipe(
      Effect.provide(NodeFileSystem.layer),
    ),
  )
  const stmt = db.prepare('SELECT coalesce(max(seqNumGlobal), 0) AS h FROM eventlog')
  let lastStamp = ''
  let lastHead = -1
  return {
    head: () => {
      if (fs.existsSync(journal)) return -1
      const st = fs.statSync(file, { bigint: true })
      const stamp = `${st.size}/${st.mtimeNs}`
      if (stamp !== lastStamp) {
        lastHead = Number(stmt.select(undefined)[0].h)
        lastStamp = stamp
      }
      return lastHead
    },
    close: () => {
      stmt.finalize()
      db.close()
    },
  }
}

const waitPersisted = async (probe, head) => {
  for (;;) {
    if (probe.head() >= head) return
    checkDeadline(`eventlog never reached e${head}`)
    await sleep(2)
  }
}

const yieldToLoop = () => new Promise((resolve) => setImmediate(resolve))

// commitTodos commits todos [0, n) in commits of batch events and returns
// the time spent inside store.commit(). After each commit it lets the event
// loop run, as an app committing over time does: the leader (same thread)
// then keeps up. Committing everything in one synchronous burst instead
// makes each commit slower the more are pending (10,000 single commits:
// ~2 min) and, with sync, stalls pushing for good.
const commitTodos = async (store, n, batch) => {
  let inCommit = 0
  for (let i = 0; i < n; i += batch) {
    const evs = []
    for (let j = i; j < Math.min(n, i + batch); j++) evs.push(events.todoCreated({ id: todoId(j), text: 'some todo text' }))
    const s = performance.now()
    store.commit(...evs)
    inCommit += performance.now() - s
    await yieldToLoop()
  }
  return inCommit
}

const sum = (xs) => xs.reduce((a, b) => a + b, 0)

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

const workloads = {
  // 1. n single-event commits.
  'commit-single': async () => {
    const n = int('n')
    const store = await openStore()
    const probe = await openProbe()
    const t0 = performance.now()
    const ms = await commitTodos(store, n, 1)
    await waitPersisted(probe, n)
    const persistedMs = performance.now() - t0
    const rows = store.query(tables.todos.count())
    probe.close()
    await store.shutdownPromise()
    return { ms, persistedMs, check: rows === n ? '' : `expected ${n} rows, got ${rows}` }
  },

  // 2. n events in commits of batch events.
  'commit-batch': async () => {
    const n = int('n')
    const store = await openStore()
    const probe = await openProbe()
    const t0 = performance.now()
    const ms = await commitTodos(store, n, int('batch'))
    await waitPersisted(probe, n)
    const persistedMs = performance.now() - t0
    const rows = store.query(tables.todos.count())
    probe.close()
    await store.shutdownPromise()
    return { ms, persistedMs, check: rows === n ? '' : `expected ${n} rows, got ${rows}` }
  },

  // 3. Open a store holding n events until it answers a query. The prepare
  // phase writes the store (and waits until it is on disk); it is not timed.
  boot: async () => {
    const n = int('n')
    if (opts.phase === 'prepare') {
      const store = await openStore()
      const probe = await openProbe()
      await commitTodos(store, n, int('batch'))
      await waitPersisted(probe, n)
      probe.close()
      await store.shutdownPromise()
      return { ms: 0 }
    }
    const t0 = performance.now()
    const store = await openStore()
    const rows = store.query(tables.todos.count())
    const ms = performance.now() - t0
    await store.shutdownPromise()
    return { ms, check: rows === n ? '' : `expected ${n} rows, got ${rows}` }
  },

  // 4. One live query over all rows; each commit renames one row; time until
  // the subscriber has seen the new text.
  'live-query': async () => {
    const rows = int('rows')
    const commits = int('commits')
    const store = await openStore()
    const probe = await openProbe()
    await commitTodos(store, rows, 1000)
    let want = null // [index, text] the next result must show
    let seen = null
    const unsub = store.subscribe(queryDb(tables.todos.orderBy('id', 'asc'), { label: 'all todos' }), (result) => {
      if (want !== null && result.length === rows && result[want[0]].text === want[1]) {
        const resolve = seen
        want = null
        seen = null
        resolve?.()
      }
    })
    await waitPersisted(probe, rows)
    const lat = []
    const t0 = performance.now()
    for (let i = 0; i < commits; i++) {
      const idx = (i * 7919) % rows
      const text = `rev ${i}`
      const s = performance.now()
      const done = new Promise((resolve) => {
        seen = resolve
      })
      want = [idx, text]
      store.commit(events.todoRenamed({ id: todoId(idx), text }))
      await done
      lat.push(performance.now() - s)
      await yieldToLoop()
    }
    const ms = sum(lat)
    await waitPersisted(probe, rows + commits)
    const persistedMs = performance.now() - t0
    unsub()
    probe.close()
    await store.shutdownPromise()
    return { ms, persistedMs, p50Us: median(lat) * 1000 }
  },

  // 5. queries point queries, one per item; each commit changes one item;
  // time until that item's subscriber has run.
  fanout: async () => {
    const queries = int('queries')
    const commits = int('commits')
    const store = await openStore()
    const probe = await openProbe()
    const evs = []
    for (let k = 0; k < queries; k++) evs.push(events.itemCreated({ id: itemId(k), value: 0 }))
    store.commit(...evs)
    let want = -1
    let seen = null
    let calls = 0
    const unsubs = []
    for (let k = 0; k < queries; k++) {
      const q = queryDb(tables.items.where({ id: itemId(k) }).first(), { label: `item ${k}` })
      unsubs.push(
        store.subscribe(q, (row) => {
          calls++
          if (row !== undefined && row.value === want) {
            const resolve = seen
            want = -1
            seen = null
            resolve?.()
          }
        }),
      )
    }
    await waitPersisted(probe, queries)
    calls = 0
    const lat = []
    const t0 = performance.now()
    for (let i = 0; i < commits; i++) {
      const k = (i * 7919) % queries
      const s = performance.now()
      const done = new Promise((resolve) => {
        seen = resolve
      })
      want = i + 1
      store.commit(events.itemSet({ id: itemId(k), value: i + 1 }))
      await done
      lat.push(performance.now() - s)
      await yieldToLoop()
    }
    const ms = sum(lat)
    await waitPersisted(probe, queries + commits)
    const persistedMs = performance.now() - t0
    for (const u of unsubs) u()
    probe.close()
    await store.shutdownPromise()
    return { ms, persistedMs, p50Us: median(lat) * 1000, callbacks: calls }
  },
}

// 6. One client of the sync workload (--role reader or writer); see sync.go.
workloads.sync = async () => {
  const n = int('n')
  const batch = int('batch')
  const store = await openStore({ backend: makeWsSync({ url: opts.url }) })
  for (;;) {
    const status = await Effect.runPromise(store.networkStatus)
    if (status.isConnected) break
    checkDeadline('never connected to the sync server')
    await sleep(2)
  }
  const nowUnixMs = () => performance.timeOrigin + performance.now()
  if (opts.role === 'reader') {
    let endUnixMs = 0
    const done = new Promise((resolve) => {
      store.subscribe(queryDb(tables.todos.count(), { label: 'todo count' }), (count) => {
        if (count >= n && endUnixMs === 0) {
          endUnixMs = nowUnixMs()
          resolve()
        }
      })
    })
    out({ ready: true })
    await done
    await store.shutdownPromise()
    return { ms: 0, endUnixMs }
  }
  if (opts.role !== 'writer') throw new Error(`--role must be reader or writer, got ${opts.role}`)
  out({ ready: true })
  const startUnixMs = nowUnixMs()
  // Batch by batch with the event loop running in between: when all batches
  // are committed in one synchronous burst, the 0.4.0 client pushes the
  // first one or two and then stalls for good (seen with this project's
  // server and with the reference server alike).
  const ms = await commitTodos(store, n, batch)
  // Stay connected until the harness has seen the reader finish: shutting
  // down earlier would drop events still on their way to the server.
  await new Promise((resolve) => {
    process.stdin.on('end', resolve)
    process.stdin.resume()
  })
  await store.shutdownPromise()
  return { ms, startUnixMs }
}

const main = async () => {
  const run = workloads[opts.workload]
  if (run === undefined) throw new Error(`unknown --workload ${opts.workload}`)
  const res = await run()
  out(res)
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`bench failed: ${err?.stack ?? err}`)
    process.exit(1)
  },
)
