// The leader worker: it owns the OPFS database and talks to the sync server.
import { makeWorker } from '@livestore/adapter-web/worker'
import { makeWsSync } from '@livestore/sync-cf/client'
import { schema } from './schema.js'

// `make serve` listens on ws://127.0.0.1:8787; VITE_LIVESTORE_SYNC_URL at
// build time points the app at another server.
const url = import.meta.env.VITE_LIVESTORE_SYNC_URL || 'ws://127.0.0.1:8787'

makeWorker({ schema, sync: { backend: makeWsSync({ url }) } })
