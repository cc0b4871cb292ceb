package syncserver

import (
	"sort"
	"sync"
	"time"
)

// RateWindow is the span over which [StoreStats.PushRate] is averaged.
const RateWindow = 10 * time.Second

// StoreStats is what this server sees of one store right now: its open
// connections and how fast events are pushed to it. Stores without
// connections and without pushes in the last RateWindow are not listed.
type StoreStats struct {
	StoreID string `json:"storeId"`
	// Clients counts the store's open sync connections to this process.
	Clients int `json:"clients"`
	// PushRate is the events per second stored by pushes to this process,
	// averaged over the last RateWindow.
	PushRate float64 `json:"pushRate"`
	// LastPush is when this process last stored a push to the store; zero
	// if not within its memory.
	LastPush time.Time `json:"lastPush,omitzero"`
}

// StoreStats lists the stores with open connections or recent pushes,
// ordered by store id. It only reads counters in memory.
func (s *Server) StoreStats() []StoreStats {
	now := time.Now()
	byID := map[string]*StoreStats{}
	s.mu.Lock()
	for id, ref := range s.hubs {
		byID[id] = &StoreStats{StoreID: id, Clients: ref.conns}
	}
	s.mu.Unlock()
	s.pushMeter.each(now, func(id string, rate float64, last time.Time) {
		st := byID[id]
		if st == nil {
			st = &StoreStats{StoreID: id}
			byID[id] = st
		}
		st.PushRate, st.LastPush = rate, last
	})
	out := make([]StoreStats, 0, len(byID))
	for _, st := range byID {
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StoreID < out[j].StoreID })
	return out
}

// rateBuckets is the number of one-second buckets of a rate meter; one more
// than the window so that the current, partial second is not averaged in.
const rateBuckets = int64(RateWindow/time.Second) + 1

// pushMeter counts pushed events per store in one-second buckets. Stores
// idle for longer than the window are forgotten, so it holds only the
// stores being written to.
type pushMeter struct {
	mu     sync.Mutex
	stores map[string]*storeRate
	prune  int // map size at which add forgets idle stores
}

type storeRate struct {
	counts [rateBuckets]int64
	secs   [rateBuckets]int64 // unix second each bucket counts
	last   time.Time
}

func (m *pushMeter) add(storeID string, events int, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stores == nil {
		m.stores = map[string]*storeRate{}
	}
	r := m.stores[storeID]
	if r == nil {
		if len(m.stores) >= max(m.prune, 64) {
			m.pruneLocked(now)
			m.prune = 2 * len(m.stores)
		}
		r = &storeRate{}
		m.stores[storeID] = r
	}
	sec := now.Unix()
	i := sec % rateBuckets
	if r.secs[i] != sec {
		r.secs[i], r.counts[i] = sec, 0
	}
	r.counts[i] += int64(events)
	r.last = now
}

// each calls fn with the rate of every store pushed to within the window.
func (m *pushMeter) each(now time.Time, fn func(storeID string, rate float64, last time.Time)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneLocked(now)
	sec := now.Unix()
	for id, r := range m.stores {
		var n int64
		for i := range rateBuckets {
			// The window is the RateWindow whole seconds before the current one.
			if d := sec - r.secs[i]; d >= 1 && d < rateBuckets {
				n += r.counts[i]
			}
		}
		fn(id, float64(n)/RateWindow.Seconds(), r.last)
	}
}

func (m *pushMeter) pruneLocked(now time.Time) {
	for id, r := range m.stores {
		if now.Sub(r.last) > RateWindow+time.Second {
			delete(m.stores, id)
		}
	}
}
