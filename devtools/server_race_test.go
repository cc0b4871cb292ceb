//go:build race

package devtools_test

// raceEnabled scales down TestServerPageScale: the race detector slows
// SQLite (pure Go) about fifteenfold, so seeding and serving take longer.
const raceEnabled = true
