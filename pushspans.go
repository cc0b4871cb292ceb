package livestore

import (
	"sort"
	"sync"

	"go.opentelemetry.io/otel/trace"
)

// maxPushParents bounds the commit spans a store remembers for pushes.
const maxPushParents = 1024

// pushParents remembers, in memory only, the commit span of each pending
// synced event, so that the push of an event is traced as a child of the
// commit that made it. It keeps one range of global sequence numbers per
// commit, at most maxPushParents of them, dropping the oldest first; an
// event whose commit was dropped, or was made before the store was opened,
// is pushed under a span of its own.
//
// mu is a leaf of the store's lock order: it is taken under the write lock
// (commits, rebases) and without it (pushes), and nothing is taken under
// it.
type pushParents struct {
	mu     sync.Mutex
	ranges []commitRange // in ascending order
}

// commitRange is the span of the commit that made the synced events first
// to last.
type commitRange struct {
	first, last int64
	sc          trace.SpanContext
}

// add remembers sc as the commit span of the events first to last.
func (p *pushParents) add(first, last int64, sc trace.SpanContext) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ranges) >= maxPushParents {
		n := copy(p.ranges, p.ranges[1:])
		p.ranges = p.ranges[:n]
	}
	p.ranges = append(p.ranges, commitRange{first, last, sc})
}

// lookup returns the commit span of event first, and links to the commit
// spans of the other events up to last.
func (p *pushParents) lookup(first, last int64) (parent trace.SpanContext, links []trace.Link) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := sort.Search(len(p.ranges), func(i int) bool { return p.ranges[i].last >= first })
	for ; i < len(p.ranges) && p.ranges[i].first <= last; i++ {
		r := p.ranges[i]
		if r.first <= first && !parent.IsValid() {
			parent = r.sc
			continue
		}
		links = append(links, trace.Link{SpanContext: r.sc})
	}
	return parent, links
}

// forgetThrough forgets the events up to seq.
func (p *pushParents) forgetThrough(seq int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.ranges {
		if r.last <= seq {
			continue
		}
		r.first = max(r.first, seq+1)
		p.ranges[n] = r
		n++
	}
	p.ranges = p.ranges[:n]
}

// shift follows a rebase that renumbered the events from `from` on to
// delta later.
func (p *pushParents) shift(from, delta int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.ranges {
		r := &p.ranges[i]
		if r.last < from {
			continue
		}
		r.first = max(r.first, from) + delta
		r.last += delta
	}
	sort.Slice(p.ranges, func(i, j int) bool { return p.ranges[i].first < p.ranges[j].first })
}

// reset forgets everything, after the pending events were renumbered onto
// another server's log.
func (p *pushParents) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ranges = nil
}
