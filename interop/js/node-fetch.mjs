// Imported first by the programs that sync over HTTP, before anything loads
// the `undici` package.
//
// Node 20's fetch is its bundled undici 6. Importing the `undici` 7 package
// (@effect/platform-node does) installs undici 7's Agent as the global
// dispatcher, unless Node's fetch has already installed its own; Node's fetch
// then sends its requests through undici 7. When a caller sets Content-Length
// itself, as @effect/platform's fetch client does for every request body,
// Node's fetch appends its own value too ("160, 160"), which undici 6 accepts
// and undici 7 refuses ("invalid content-length header"), failing every
// request of makeHttpSync before it is sent. Using fetch once here installs
// Node's own dispatcher first, as in an app that fetched anything before.
await fetch('data:,')
