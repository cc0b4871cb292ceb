// Reads a store's whole event log straight from a sync server with one
// non-live SyncWsRpc.Pull over the raw WebSocket protocol. client.mjs uses it
// to confirm that its events reached the server before it shuts down, since
// the store's own syncStatus() cannot tell (see PROTOCOL.md).
import WebSocket from 'ws'

/**
 * Resolves with the server's encoded events of `storeId`, oldest first.
 * `payload`, if given, is the sync payload (e.g. an auth token) sent as the
 * client does.
 */
export const fetchServerEvents = ({ url, storeId, payload, timeoutMs = 10_000 }) =>
  new Promise((resolve, reject) => {
    const wsUrl = new URL(url)
    wsUrl.searchParams.set('storeId', storeId)
    wsUrl.searchParams.set('transport', 'ws')
    if (payload !== undefined) wsUrl.searchParams.set('payload', JSON.stringify(payload))

    const ws = new WebSocket(wsUrl)
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
      ws.send(
        JSON.stringify({
          _tag: 'Request',
          id: '0',
          tag: 'SyncWsRpc.Pull',
          traceId: '',
          spanId: '',
          sampled: false,
          headers: [],
          payload: { storeId, live: false, cursor: { _tag: 'None' } },
        }),
      )
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
