// Reads a store's whole event log straight from a sync server with one
// non-live pull over the raw protocol of the chosen transport: SyncWsRpc.Pull
// on a WebSocket (transport "ws") or SyncHttpRpc.Pull in one HTTP POST
// (transport "http"). client.mjs uses it to confirm that its events reached
// the server before it shuts down, since the store's own syncStatus() cannot
// tell (see PROTOCOL.md).
import WebSocket from 'ws'

/**
 * Resolves with the server's encoded events of `storeId`, oldest first.
 * `payload`, if given, is the sync payload (e.g. an auth token) sent as the
 * client does.
 */
export const fetchServerEvents = ({ url, transport = 'ws', storeId, payload, timeoutMs = 10_000 }) =>
  transport === 'http'
    ? fetchServerEventsHttp({ url, storeId, payload, timeoutMs })
    : fetchServerEventsWs({ url, storeId, payload, timeoutMs })

const syncUrl = (url, storeId, payload, transport) => {
  const u = new URL(url)
  u.searchParams.set('storeId', storeId)
  u.searchParams.set('transport', transport)
  if (payload !== undefined) u.searchParams.set('payload', JSON.stringify(payload))
  return u
}

const pullRequest = (tag, payload) => ({
  _tag: 'Request',
  id: '0',
  tag,
  traceId: '',
  spanId: '',
  sampled: false,
  headers: [],
  payload,
})

// One POST: the answer is a JSON array of every Chunk of the pull and its Exit.
const fetchServerEventsHttp = async ({ url, storeId, payload, timeoutMs }) => {
  const body = pullRequest('SyncHttpRpc.Pull', {
    storeId,
    ...(payload !== undefined ? { payload } : {}),
    cursor: { _tag: 'None' },
  })
  const res = await fetch(syncUrl(url, storeId, payload, 'http'), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`pull failed: HTTP ${res.status}: ${text}`)
  const events = []
  for (const msg of JSON.parse(text)) {
    if (msg._tag === 'Chunk') {
      for (const page of msg.values) for (const item of page.batch) events.push(item.eventEncoded)
    } else if (msg._tag === 'Exit') {
      if (msg.exit._tag === 'Success') return events
      throw new Error(`pull failed: ${JSON.stringify(msg.exit)}`)
    } else if (msg._tag === 'Defect') {
      throw new Error(`pull defect: ${JSON.stringify(msg.defect)}`)
    }
  }
  throw new Error(`pull answer without an Exit: ${text.slice(0, 200)}`)
}

const fetchServerEventsWs = ({ url, storeId, payload, timeoutMs }) =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(syncUrl(url, storeId, payload, 'ws'))
    const events = []
    const finish = (err) => {
      clearTimeout(timer)
      ws.terminate()
      if (err) reject(err)
      else resolve(events)
    }
    const timer = setTimeout(() => finish(new Error(`no complete pull from ${url} within ${timeoutMs} ms`)), timeoutMs)

    ws.on('error', (err) => finish(err))
    ws.on('open', () => {
      ws.send(JSON.stringify(pullRequest('SyncWsRpc.Pull', { storeId, live: false, cursor: { _tag: 'None' } })))
    })
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data))
      if (msg._tag === 'Chunk') {
        for (const page of msg.values) for (const item of page.batch) events.push(item.eventEncoded)
        // The server sends the next page only after this Ack.
        ws.send(JSON.stringify({ _tag: 'Ack', requestId: msg.requestId }))
      } else if (msg._tag === 'Exit') {
        if (msg.exit._tag === 'Success') finish()
        else finish(new Error(`pull failed: ${JSON.stringify(msg.exit)}`))
      } else if (msg._tag === 'Defect') {
        finish(new Error(`pull defect: ${JSON.stringify(msg.defect)}`))
      }
    })
  })
