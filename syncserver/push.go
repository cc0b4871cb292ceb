package syncserver

import (
	"errors"
	"fmt"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

// push handles a SyncWsRpc.Push request in the order of the reference: empty
// batch, backend id, (ours) batch size, chain and events (checkBatch), then
// the head check and the write
// (atomic in the storage), acknowledgement, broadcast.
func (c *conn) push(req *syncproto.Request) {
	start := time.Now()
	result := c.doPush(req)
	c.srv.metrics.pushes.WithLabelValues(result).Inc()
	if result == pushOK {
		c.srv.metrics.pushDuration.Observe(time.Since(start).Seconds())
	}
}

func (c *conn) doPush(req *syncproto.Request) (result string) {
	p, err := syncproto.DecodePushRequest(req.Payload)
	if err != nil {
		// The reference answers a payload its schema rejects with a defect.
		c.send(syncproto.ExitDie(req.ID, err.Error()))
		return pushRejected
	}
	// As in the reference, the connection's URL names the store (the one
	// Auth admitted); the payload's storeId is not checked.
	if len(p.Batch) == 0 {
		c.send(syncproto.ExitPushed(req.ID))
		return pushOK
	}
	backendID, err := c.hub.backend(c.ctx)
	if err != nil {
		c.log.Error("load store", "err", err)
		c.send(syncproto.ExitFail(req.ID, &syncproto.UnknownError{Message: "storage unavailable"}))
		return pushFailed
	}
	if p.BackendID != nil && *p.BackendID != backendID {
		c.send(syncproto.ExitFail(req.ID, &syncproto.BackendIDMismatchError{Expected: backendID, Received: *p.BackendID}))
		return pushBackendMismatch
	}
	if max := c.srv.opts.MaxBatchSize; len(p.Batch) > max {
		c.send(syncproto.ExitFail(req.ID, &syncproto.UnknownError{Message: fmt.Sprintf("batch of %d events exceeds the server's limit of %d events per push", len(p.Batch), max)}))
		return pushRejected
	}
	if err := c.checkBatch(p.Batch, backendID); err != nil {
		c.log.Info("push refused", "err", err)
		c.send(syncproto.ExitFail(req.ID, err))
		return pushRejected
	}

	err = c.hub.push(c.ctx, p.Batch, func() { c.send(syncproto.ExitPushed(req.ID)) })
	var ahead *syncproto.ServerAheadError
	var refused *syncproto.UnknownError
	switch {
	case err == nil:
		c.srv.metrics.eventsPushed.Add(float64(len(p.Batch)))
		return pushOK
	case errors.As(err, &ahead):
		c.send(syncproto.ExitFail(req.ID, ahead))
		return pushServerAhead
	case errors.As(err, &refused):
		// The hub refuses what the client got wrong; nothing was stored.
		c.log.Info("push refused", "err", err)
		c.send(syncproto.ExitFail(req.ID, refused))
		return pushRejected
	default:
		c.send(syncproto.ExitFail(req.ID, c.srv.storageFailed(c.ctx, c.log, "store push", err, true)))
		return pushFailed
	}
}

// checkBatch applies the rules of a pushed batch that do not depend on the
// store's head, as an *syncproto.UnknownError naming the offending event:
// the events chain and are numbered as clients number them, their names,
// ids and args depth are within bounds, and each fits a pull page, so that
// every stored event can be stored by every storage and sent to every client.
func (c *conn) checkBatch(batch []syncproto.Event, backendID string) error {
	if err := syncproto.CheckBatch(batch, c.srv.opts.MaxArgsDepth); err != nil {
		return &syncproto.UnknownError{Message: "malformed batch: " + err.Error()}
	}
	limit, err := syncproto.MaxPulledEventBytes(backendID)
	if err != nil {
		return &syncproto.UnknownError{Message: err.Error()}
	}
	for i := range batch {
		if err := syncproto.CheckEventSize(i, &batch[i], limit); err != nil {
			return &syncproto.UnknownError{Message: err.Error()}
		}
	}
	return nil
}
