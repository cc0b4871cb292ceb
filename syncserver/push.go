package syncserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

var pushAck = json.RawMessage(`{}`)

// push handles a SyncWsRpc.Push request in the order of the reference: empty
// batch, backend id, (ours) size and chain, then the head check and the write
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
		c.send(syncproto.ExitSuccess(req.ID, pushAck))
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
	if err := syncproto.CheckChain(p.Batch); err != nil {
		c.send(syncproto.ExitFail(req.ID, &syncproto.UnknownError{Message: "malformed batch: " + err.Error()}))
		return pushRejected
	}

	err = c.hub.push(c.ctx, p.Batch, func() { c.send(syncproto.ExitSuccess(req.ID, pushAck)) })
	var ahead *syncproto.ServerAheadError
	switch {
	case err == nil:
		c.srv.metrics.eventsPushed.Add(float64(len(p.Batch)))
		return pushOK
	case errors.As(err, &ahead):
		c.send(syncproto.ExitFail(req.ID, ahead))
		return pushServerAhead
	default:
		c.send(syncproto.ExitFail(req.ID, c.srv.storageFailed(c.ctx, c.log, "store push", err, true)))
		return pushFailed
	}
}
