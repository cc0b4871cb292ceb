package main

import (
	"fmt"
	"strings"
)

// Implementations compared.
const (
	implGo        = "go"         // livestore-go, the root package API
	implGoProcess = "go-process" // the same with Durability: DurabilityProcess (no fsync)
	implFloor     = "floor"      // the same SQL writes through the same driver, no LiveStore logic
	implJS        = "js"         // JS LiveStore 0.4.0 on Node, adapter-node with fs storage
)

var allImpls = []string{implGo, implGoProcess, implFloor, implJS}

// Workload names.
const (
	wCommitSingle = "commit-single"
	wCommitBatch  = "commit-batch"
	wBoot         = "boot"
	wLiveQuery    = "live-query"
	wFanout       = "fanout"
	wSync         = "sync"
	wConcurrent   = "concurrent"
)

var allWorkloads = []string{wCommitSingle, wCommitBatch, wBoot, wLiveQuery, wFanout, wSync, wConcurrent}

// notApplicable says, per workload, the implementations that cannot run it
// and why.
var notApplicable = map[string]map[string]string{
	wConcurrent: {implJS: "JS LiveStore commits on one thread: there are no concurrent committers"},
}

// sizes are the parameters of every workload.
type sizes struct {
	SingleN      int `json:"singleN"`     // 1: single-event commits
	BatchN       int `json:"batchN"`      // 2: events committed in batches
	BatchSize    int `json:"batchSize"`   // 2, 3: events per batch
	BootN        int `json:"bootN"`       // 3: events in the store that boots
	LiveRows     int `json:"liveRows"`    // 4: rows the live query returns
	LiveCommits  int `json:"liveCommits"` // 4: commits that change its result
	FanQueries   int `json:"fanQueries"`  // 5: subscribed point queries
	FanCommits   int `json:"fanCommits"`  // 5: commits, each changing one query's result
	SyncN        int `json:"syncN"`       // 6: events synced from one client to the other
	SyncBatch    int `json:"syncBatch"`   // 6: events per commit on the writer
	ConcN        int `json:"concN"`       // 7: single-event commits in all
	ConcWorkers  int `json:"concWorkers"` // 7: goroutines committing at once
	DefaultRuns  int `json:"-"`           // runs per (workload, implementation)
	JSTimeoutSec int `json:"-"`           // deadline of one Node run
	description  string
}

var fullSizes = sizes{
	SingleN: 10_000, BatchN: 100_000, BatchSize: 1_000, BootN: 100_000,
	LiveRows: 10_000, LiveCommits: 1_000, FanQueries: 1_000, FanCommits: 1_000,
	SyncN: 10_000, SyncBatch: 100, ConcN: 10_000, ConcWorkers: 64, DefaultRuns: 5, JSTimeoutSec: 1800,
	description: "full",
}

// quickSizes keep an end-to-end run of every workload and implementation
// under a minute; the numbers are only a smoke test.
var quickSizes = sizes{
	SingleN: 50, BatchN: 200, BatchSize: 100, BootN: 200,
	LiveRows: 100, LiveCommits: 10, FanQueries: 20, FanCommits: 10,
	SyncN: 200, SyncBatch: 100, ConcN: 200, ConcWorkers: 64, DefaultRuns: 1, JSTimeoutSec: 120,
	description: "quick",
}

// title describes workload w with the sizes used.
func (s sizes) title(w string) string {
	switch w {
	case wCommitSingle:
		return fmt.Sprintf("1. commit %s single events (one commit each)", thousands(s.SingleN))
	case wCommitBatch:
		return fmt.Sprintf("2. commit %s events in batches of %s", thousands(s.BatchN), thousands(s.BatchSize))
	case wBoot:
		return fmt.Sprintf("3. boot a store of %s events from disk until queryable", thousands(s.BootN))
	case wLiveQuery:
		return fmt.Sprintf("4. live query over %s rows, %s commits, each until the subscriber saw it", thousands(s.LiveRows), thousands(s.LiveCommits))
	case wFanout:
		return fmt.Sprintf("5. %s subscribed queries, %s commits affecting one each, until it ran", thousands(s.FanQueries), thousands(s.FanCommits))
	case wSync:
		return fmt.Sprintf("6. sync %s events from one client to another through the server", thousands(s.SyncN))
	case wConcurrent:
		return fmt.Sprintf("7. %d goroutines commit %s single events (one commit each)", s.ConcWorkers, thousands(s.ConcN))
	}
	return w
}

// ops is the number of operations a workload's time is divided by for the
// per-operation column.
func (s sizes) ops(w string) (int, string) {
	switch w {
	case wCommitSingle:
		return s.SingleN, "commit"
	case wCommitBatch:
		return s.BatchN, "event"
	case wBoot:
		return 1, "boot"
	case wLiveQuery:
		return s.LiveCommits, "commit"
	case wFanout:
		return s.FanCommits, "commit"
	case wSync:
		return s.SyncN, "event"
	case wConcurrent:
		return s.ConcN, "commit"
	}
	return 1, "op"
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func todoID(i int) string { return fmt.Sprintf("t%06d", i) }
func itemID(i int) string { return fmt.Sprintf("i%04d", i) }

// renameIndex spreads the rows that workloads 4 and 5 change over the table.
func renameIndex(i, n int) int { return (i * 7919) % n }

const todoText = "some todo text"
