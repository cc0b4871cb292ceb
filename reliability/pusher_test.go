package reliability

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
)

// rawPusher is a minimal sync client on package syncclient: it pushes
// batches of new events at the head it knows and counts an event as
// acknowledged only when the Push carrying it returned nil. When a push's
// outcome is unknown (the connection broke), it pulls to find out which of
// its events the server stored before pushing the rest again, so it never
// stores an event twice.
type rawPusher struct {
	name    string
	url     string
	storeID string
	rng     *rand.Rand
	opts    syncclient.Options

	c         *syncclient.Client
	head      int64
	backendID string
	next      int
	unsure    []syncproto.Event // pushed with an unknown outcome, or rejected
	acked     map[string]bool
	stored    map[string]bool // found in the log without an acknowledgement
	pushes    int
	failures  int
}

func newRawPusher(name, url, storeID string, rng *rand.Rand) *rawPusher {
	opts := fastClientOptions()
	opts.StoreID = storeID
	return &rawPusher{name: name, url: url, storeID: storeID, rng: rng, opts: opts,
		acked: map[string]bool{}, stored: map[string]bool{}}
}

// run pushes until ctx ends, then closes its connection.
func (p *rawPusher) run(ctx context.Context) {
	defer func() {
		if p.c != nil {
			p.c.Close()
		}
	}()
	for ctx.Err() == nil {
		if err := p.step(ctx); err != nil {
			p.failures++
			if p.c != nil {
				p.c.Close()
				p.c = nil
			}
			select {
			case <-ctx.Done():
			case <-time.After(randDur(p.rng, 5*time.Millisecond, 50*time.Millisecond)):
			}
		}
	}
}

func (p *rawPusher) step(ctx context.Context) error {
	if p.c == nil {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := syncclient.Dial(dctx, p.url, p.opts)
		cancel()
		if err != nil {
			return err
		}
		p.c = c
		// Whatever was in flight may or may not have been stored.
		if err := p.catchUp(ctx); err != nil {
			return err
		}
	}
	batch := append([]syncproto.Event(nil), p.unsure...)
	for i, n := 0, 1+p.rng.IntN(4); i < n; i++ {
		p.next++
		id := fmt.Sprintf("%s-%d", p.name, p.next)
		batch = append(batch, syncproto.Event{Name: "v1.ItemAdded",
			Args:     json.RawMessage(fmt.Sprintf(`{"id":%q,"text":"raw","owner":%q}`, id, p.name)),
			ClientID: p.name, SessionID: p.name + "-s"})
	}
	for i := range batch {
		batch[i].SeqNum = p.head + int64(i) + 1
		batch[i].ParentSeqNum = p.head + int64(i)
	}
	p.unsure = batch
	var bid *string
	if p.backendID != "" {
		bid = &p.backendID
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := p.c.Push(pctx, batch, bid)
	cancel()
	p.pushes++
	var ahead *syncproto.ServerAheadError
	switch {
	case err == nil:
		for _, ev := range batch {
			p.acked[eventKey(ev.Name, ev.Args)] = true
		}
		p.unsure = nil
		p.head += int64(len(batch))
		return nil
	case errors.As(err, &ahead):
		// Nothing stored; learn what the others pushed and retry.
		return p.catchUp(ctx)
	default:
		return err
	}
}

// catchUp pulls the events after the known head; events of p.unsure found
// there were stored and are not pushed again.
func (p *rawPusher) catchUp(ctx context.Context) error {
	var cursor *syncproto.Cursor
	if p.backendID != "" {
		cursor = &syncproto.Cursor{BackendID: p.backendID, EventSequenceNumber: p.head}
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := p.c.Pull(pctx, cursor, false)
	if err != nil {
		return err
	}
	defer st.Close()
	mine := map[string]bool{}
	for _, ev := range p.unsure {
		mine[eventKey(ev.Name, ev.Args)] = true
	}
	for {
		page, err := st.Next(pctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		p.backendID = page.BackendID
		for _, it := range page.Batch {
			if it.Event.SeqNum != p.head+1 {
				return fmt.Errorf("%s: pull: e%d after head e%d", p.name, it.Event.SeqNum, p.head)
			}
			p.head = it.Event.SeqNum
			if k := eventKey(it.Event.Name, it.Event.Args); mine[k] {
				p.stored[k] = true
				delete(mine, k)
			}
		}
	}
	var rest []syncproto.Event
	for _, ev := range p.unsure {
		if mine[eventKey(ev.Name, ev.Args)] {
			rest = append(rest, ev)
		}
	}
	p.unsure = rest
	return nil
}
