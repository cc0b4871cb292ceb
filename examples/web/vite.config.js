import { defineConfig } from 'vite'

export default defineConfig({
  server: { host: '127.0.0.1', port: 5173, strictPort: true },
  preview: { host: '127.0.0.1', port: 5173, strictPort: true },
  // Top-level await in main.js and ES module workers.
  build: { target: 'es2022' },
  worker: { format: 'es' },
  optimizeDeps: {
    // Pre-bundled at start: the workers' imports would otherwise be found on
    // the first page load, and Vite would reload the page under the store.
    include: [
      '@livestore/adapter-web',
      '@livestore/adapter-web/shared-worker',
      '@livestore/adapter-web/worker',
      '@livestore/livestore',
      '@livestore/sync-cf/client',
    ],
    // wa-sqlite loads its .wasm relative to its own module; pre-bundling would move it.
    exclude: ['@livestore/wa-sqlite'],
  },
})
