// The reference sync server: the Durable Object and Worker shipped by
// @livestore/sync-cf 0.4.0, with no options beyond what a plain app would use.
// Served locally by `wrangler dev --local` (workerd); see interop/harness.
import { makeDurableObject, makeWorker } from '@livestore/sync-cf/cf-worker'

export class SyncBackendDO extends makeDurableObject({}) {}

export default makeWorker({
  syncBackendBinding: 'SYNC_BACKEND_DO',
  // Accept every connection: the interop tests send no auth payload.
  validatePayload: () => {},
})
