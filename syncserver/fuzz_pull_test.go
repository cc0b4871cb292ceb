package syncserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

// FuzzPull sends a SyncWsRpc.Pull with a fuzzed payload on a connection to
// a store of 250 events, next to another store whose events must never
// appear, acknowledges every page and, for a live pull, interrupts it once
// it has caught up. Checked: a payload that does not decode is answered with
// a defect; a cursor naming another backend fails with
// BackendIdMismatchError (expected: the store's id); otherwise the pages
// carry exactly the events after the cursor, in order, each page at most 100
// events, with the page info counting the events still to come, and end
// with NoMore; nothing of the other store is ever sent; the connection stays
// usable. Placeholders in inputs: @store@ and @backend@ (the connection's
// store and its backend id), @other@ and @otherbackend@ (the other store).
// Seed corpus: testdata/fuzz/FuzzPull.
func FuzzPull(f *testing.F) {
	ft := newFuzzTarget(f)
	const storeID, otherID = "fa", "fb"
	ctx := context.Background()
	if err := ft.storage.Append(ctx, storeID, fuzzChain(0, 250), time.Now()); err != nil {
		f.Fatal(err)
	}
	secret := fuzzChain(0, 20)
	for i := range secret {
		secret[i].Args = json.RawMessage(fmt.Sprintf(`{"secret":"other-store-%d"}`, i))
		secret[i].ClientID = "otherclient"
	}
	if err := ft.storage.Append(ctx, otherID, secret, time.Now()); err != nil {
		f.Fatal(err)
	}
	backendID, _ := ft.storage.BackendID(ctx, storeID)
	otherBackend, _ := ft.storage.BackendID(ctx, otherID)
	log, err := ft.readLog(storeID)
	if err != nil {
		f.Fatal(err)
	}

	f.Add([]byte(`{"storeId":"@store@","live":false,"cursor":{"_tag":"None"}}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		c := ft.dial(t, storeID)
		payload = substitute(payload, storeID, backendID)
		payload = bytes.ReplaceAll(payload, []byte("@otherbackend@"), []byte(otherBackend))
		payload = bytes.ReplaceAll(payload, []byte("@other@"), []byte(otherID))
		envelope := []byte(`{"_tag":"Request","id":"3","tag":"SyncWsRpc.Pull","payload":` + string(payload) + `,"headers":[]}`)
		c.send(envelope)

		msg, derr := syncproto.DecodeClientMessage(envelope)
		req, isReq := msg.(*syncproto.Request)
		if derr != nil || !isReq || req.ID != "3" || req.Tag != syncproto.TagPull {
			// The payload broke the envelope: no stream may start.
			switch m := c.next().(type) {
			case *syncproto.Chunk:
				t.Fatalf("broken envelope %q started a stream", envelope)
			case *syncproto.Exit:
				if m.Success {
					t.Fatalf("broken envelope %q succeeded", envelope)
				}
			}
			c.alive()
			return
		}
		p, perr := syncproto.DecodePullRequest(req.Payload)
		var got []syncproto.Event
		var exit *syncproto.Exit
		interrupted := false
		for exit == nil {
			switch m := c.next().(type) {
			case *syncproto.Exit:
				if m.RequestID != "3" {
					t.Fatalf("Exit for request %q", m.RequestID)
				}
				exit = m
			case *syncproto.Chunk:
				if perr != nil {
					t.Fatalf("undecodable pull %s (%v) started a stream", req.Payload, perr)
				}
				if m.RequestID != "3" || len(m.Values) != 1 {
					t.Fatalf("chunk %#v", m)
				}
				for _, v := range m.Values {
					if bytes.Contains(v, []byte("other-store")) || bytes.Contains(v, []byte(otherBackend)) {
						t.Fatalf("the other store's data was sent: %s", v)
					}
				}
				page, err := syncproto.DecodePullResponse(m.Values[0])
				if err != nil {
					t.Fatal(err)
				}
				if page.BackendID != backendID || len(page.Batch) > syncproto.MaxEventsPerMessage {
					t.Fatalf("page of backend %q with %d events", page.BackendID, len(page.Batch))
				}
				for _, it := range page.Batch {
					got = append(got, it.Event)
				}
				if rest := int64(len(log)) - got0(got, log); page.PageInfo.Kind == syncproto.MoreKnown && page.PageInfo.Remaining != rest ||
					page.PageInfo.Kind == syncproto.NoMore && rest != 0 && len(got) > 0 {
					t.Fatalf("page info %+v after %d events (%d to come)", page.PageInfo, len(got), rest)
				}
				ack, _ := syncproto.Marshal(&syncproto.Ack{RequestID: "3"})
				c.send(ack)
				if p.Live && page.PageInfo.Kind == syncproto.NoMore && !interrupted {
					// Caught up: end the live pull.
					intr, _ := syncproto.Marshal(&syncproto.Interrupt{RequestID: "3"})
					c.send(intr)
					interrupted = true
				}
			case *syncproto.Defect:
				t.Fatalf("defect for a decodable envelope: %s", m.Defect)
			default:
				t.Fatalf("unexpected %#v", m)
			}
		}
		err := exit.Err()
		var defect *syncproto.DefectError
		var mismatch *syncproto.BackendIDMismatchError
		var unknown *syncproto.UnknownError
		switch {
		case perr != nil:
			if !errors.As(err, &defect) {
				t.Fatalf("undecodable pull %s: got %v, want a defect", req.Payload, err)
			}
		case p.Cursor != nil && p.Cursor.BackendID != backendID:
			if !errors.As(err, &mismatch) || mismatch.Expected != backendID || mismatch.Received != p.Cursor.BackendID {
				t.Fatalf("pull with cursor %+v: got %v, want BackendIdMismatchError", p.Cursor, err)
			}
		case errors.As(err, &unknown) && p.StoreID != storeID:
			// A server may refuse a request naming another store.
		default:
			if interrupted {
				if !errors.Is(err, syncproto.ErrInterrupted) {
					t.Fatalf("interrupted live pull ended with %v", err)
				}
			} else if err != nil {
				t.Fatalf("pull %s: %v", req.Payload, err)
			}
			var after int64
			if p.Cursor != nil {
				after = min(max(p.Cursor.EventSequenceNumber, 0), int64(len(log)))
			}
			if want := log[after:]; !sameEvents(got, want) {
				t.Fatalf("pull %s: got %d events from e%d, want %d from e%d", req.Payload, len(got), first(got), len(want), after+1)
			}
		}
		c.alive()
	})
}

// got0 is the seqNum the pull has reached: the last event received (or 0).
func got0(got, _ []syncproto.Event) int64 {
	if len(got) == 0 {
		return 0
	}
	return got[len(got)-1].SeqNum
}

func first(evs []syncproto.Event) int64 {
	if len(evs) == 0 {
		return 0
	}
	return evs[0].SeqNum
}
