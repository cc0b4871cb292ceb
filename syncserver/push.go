package syncserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/livestore-go/livestore/syncproto"
)

// pushCall is what a push needs of the transport that carries it: the
// request's context, the store's hub, a logger, where to send the answer,
// the transport's name (ws or http) and the push's span (set by push).
type pushCall struct {
	ctx       context.Context
	hub       *hub
	log       *slog.Logger
	send      func(msg any)
	transport string
	span      trace.Span
}

// push handles a SyncWsRpc.Push request.
func (c *conn) push(req *syncproto.Request) {
	c.srv.push(pushCall{ctx: c.ctx, hub: c.hub, log: c.log, send: c.send, transport: transportWS}, req)
}

// push handles a push request (SyncWsRpc.Push or SyncHttpRpc.Push) in the
// order of the reference: empty batch, backend id, (ours) batch size, chain
// and events (checkBatch), then the head check and the write (atomic in the
// storage), acknowledgement, broadcast.
func (s *Server) push(pc pushCall, req *syncproto.Request) {
	start := time.Now()
	pc.ctx, pc.span = s.tel.startPush(pc.ctx, req, pc.hub.storeID, pc.transport)
	result := s.doPush(pc, req)
	endPush(pc.span, result)
	s.metrics.pushes.WithLabelValues(result).Inc()
	if result == pushOK {
		s.metrics.pushDuration.Observe(time.Since(start).Seconds())
	}
}

func (s *Server) doPush(pc pushCall, req *syncproto.Request) (result string) {
	p, err := syncproto.DecodePushRequest(req.Payload)
	if err != nil {
		// The reference answers a payload its schema rejects with a defect.
		pc.send(syncproto.ExitDie(req.ID, err.Error()))
		return pushRejected
	}
	describePush(pc.span, p.Batch)
	// As in the reference, the connection's URL names the store (the one
	// Auth admitted); the payload's storeId is not checked.
	if len(p.Batch) == 0 {
		pc.send(syncproto.ExitPushed(req.ID))
		return pushOK
	}
	backendID, err := pc.hub.backend(pc.ctx)
	if err != nil {
		pc.log.Error("load store", "err", err)
		pc.send(syncproto.ExitFail(req.ID, &syncproto.UnknownError{Message: "storage unavailable"}))
		return pushFailed
	}
	if p.BackendID != nil && *p.BackendID != backendID {
		pc.send(syncproto.ExitFail(req.ID, &syncproto.BackendIDMismatchError{Expected: backendID, Received: *p.BackendID}))
		return pushBackendMismatch
	}
	if max := s.opts.MaxBatchSize; len(p.Batch) > max {
		pc.send(syncproto.ExitFail(req.ID, &syncproto.UnknownError{Message: fmt.Sprintf("batch of %d events exceeds the server's limit of %d events per push", len(p.Batch), max)}))
		return pushRejected
	}
	if err := s.checkBatch(p.Batch, backendID); err != nil {
		pc.log.Info("push refused", "err", err)
		pc.send(syncproto.ExitFail(req.ID, err))
		return pushRejected
	}

	err = pc.hub.push(pc.ctx, p.Batch, func() { pc.send(syncproto.ExitPushed(req.ID)) })
	// The storage fails an append only with ServerAheadError (the client
	// pulls first) or a failure of its own; the batch was checked above.
	var ahead *syncproto.ServerAheadError
	switch {
	case err == nil:
		s.metrics.eventsPushed.Add(float64(len(p.Batch)))
		s.tel.eventsIn(pc.ctx, pc.hub.storeID, len(p.Batch))
		return pushOK
	case errors.As(err, &ahead):
		pc.send(syncproto.ExitFail(req.ID, ahead))
		return pushServerAhead
	default:
		pc.send(syncproto.ExitFail(req.ID, s.storageFailed(pc.ctx, pc.log, "store push", err, true)))
		return pushFailed
	}
}

// checkBatch applies the rules of a pushed batch that do not depend on the
// store's head, as an *syncproto.UnknownError naming the offending event:
// the events chain and are numbered as clients number them, their names,
// ids and args depth are within bounds, and each fits a pull page, so that
// every stored event can be stored by every storage and sent to every client.
func (s *Server) checkBatch(batch []syncproto.Event, backendID string) error {
	if err := syncproto.CheckBatch(batch, s.opts.MaxArgsDepth); err != nil {
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
