// Package harness starts the JavaScript side of the interop tests: the
// reference sync server (@livestore/sync-cf 0.4.0 in workerd, through
// `wrangler dev --local`) and command-line LiveStore 0.4.0 clients
// (interop/js/client.mjs).
//
// It is meant for tests, and for the load program bench/serverload, which
// starts the reference with [StartReference] to measure it. Everything it
// runs comes from interop/node_modules, installed from the committed lock
// file with `(cd interop && npm ci)`; when that directory is missing the
// calling test fails and says so.
//
// Processes are started in their own process group and the whole group is
// stopped in t.Cleanup (or by the stop that StartReference returns), so a
// failing test leaves nothing running. The package only starts and stops
// them; what to check lives in the tests of packages scenarios and
// difftest.
package harness
