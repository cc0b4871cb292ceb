// Package reliability holds the fault-injection, crash and hostile-input
// tests of livestore-go: a sync server killed with SIGKILL during concurrent
// pushes, clients killed during a rebase, network partitions injected by
// a proxy (internal/faultproxy), PostgreSQL server replicas killed while
// others go on, hostile clients (oversized frames, slow-loris connections,
// thousands of idle WebSockets) and store isolation under an auth hook.
//
// The package has no API; its tests are the point. They run in short form
// in the normal "go test ./..."; see README.md for the long form, the seeds
// and what each test injects and checks.
package reliability
