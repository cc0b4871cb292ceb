// Package heartbeat runs the keep-alive loop that both ends of a sync
// connection use: ping every interval, give each ping that interval to be
// answered, stop at the first one that is not. What a ping is, and what to
// do when one fails, stays with the caller (the client and the server of
// package syncclient and syncserver).
package heartbeat

import (
	"context"
	"time"
)

// Run calls ping every interval, each call bounded by a context that ends
// after interval, until ctx ends (Run then returns nil) or a ping returns
// an error, which Run returns at once. A caller that tolerates some failures
// returns nil for them from ping.
func Run(ctx context.Context, every time.Duration, ping func(context.Context) error) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, every)
		err := ping(pctx)
		cancel()
		if err != nil {
			return err
		}
	}
}
