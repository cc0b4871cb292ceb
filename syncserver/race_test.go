//go:build race

package syncserver_test

// raceEnabled scales down the tests that move hundreds of megabytes, which
// the race detector slows twentyfold.
const raceEnabled = true
