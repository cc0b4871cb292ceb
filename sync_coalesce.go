package livestore

import (
	"context"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

// This file coalesces pull pages: a client with pending events pays a
// rollback and a rebase of all of them for every page it applies, so pages
// that are ready together are applied together.

// Bounds of page coalescing: pages read ahead of the processor, and events
// applied in one transaction.
const (
	readAheadPages  = 16
	maxMergedEvents = 1000
)

// Bounds of catching up with pending local events: events merged into one
// group, and the wait for the next page of a backlog the server announced.
const (
	maxCatchUpEvents = 50_000
	catchUpPageWait  = time.Second
)

// hasPending reports whether the store holds synced events the server has
// not confirmed.
func (y *syncer) hasPending(ctx context.Context) (bool, error) {
	if err := y.s.acquireWrite(ctx); err != nil {
		return false, err
	}
	defer y.s.releaseWrite()
	return y.s.head.Global > y.s.sync.Head, nil
}

// awaitBacklog waits for the pages the server announced (MoreKnown) and
// merges them into group, until the server has no more, a page fails, the
// group holds maxCatchUpEvents, or no page came for catchUpPageWait.
func awaitBacklog(ctx context.Context, group []pageResult, pages <-chan pageResult) []pageResult {
	n := 0
	for _, p := range group {
		n += len(p.page.Batch)
	}
	t := time.NewTimer(catchUpPageWait)
	defer t.Stop()
	for n < maxCatchUpEvents {
		last := group[len(group)-1]
		if last.err != nil || last.page.PageInfo.Kind != syncproto.MoreKnown {
			return group
		}
		t.Reset(catchUpPageWait)
		select {
		case next := <-pages:
			group = appendPage(group, next)
			n += len(next.page.Batch)
		case <-t.C:
			return group
		case <-ctx.Done():
			return group
		}
	}
	return group
}

// appendPage adds next to the pages in out, merged into the last one when
// both are whole pages of the same backend.
func appendPage(out []pageResult, next pageResult) []pageResult {
	last := &out[len(out)-1]
	if next.err != nil || last.err != nil || next.page.BackendID != last.page.BackendID {
		return append(out, next)
	}
	last.page.Batch = append(append([]syncproto.PullItem(nil), last.page.Batch...), next.page.Batch...)
	last.page.PageInfo = next.page.PageInfo
	return out
}

// mergeReadyPages returns first followed by the pages already waiting in
// pages, consecutive ones merged into one page where possible. Applying a
// page with pending local events costs a rollback and a rebase of all of
// them; a client with many pending events that applied the live pages of a
// busy store one by one could fall further behind with every page and never
// get to push.
func mergeReadyPages(first pageResult, pages <-chan pageResult) []pageResult {
	out := []pageResult{first}
	n := len(first.page.Batch)
	for first.err == nil && n < maxMergedEvents {
		var next pageResult
		select {
		case next = <-pages:
		default:
			return out
		}
		out = appendPage(out, next)
		if next.err != nil {
			return out
		}
		n += len(next.page.Batch)
	}
	return out
}
