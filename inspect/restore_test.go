package inspect_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/inspect"
)

func logOf(t *testing.T, dir string) []eventlog.Event {
	t.Helper()
	d, err := inspect.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var evs []eventlog.Event
	if err := d.ScanEvents(context.Background(), eventlog.Root, 0, func(e eventlog.Event) error {
		evs = append(evs, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return evs
}

// RestorePending appends only pending events the log lacks, counting equal
// events one for one, numbers them on from a client-only head, and refuses
// a directory whose program runs.
func TestRestorePending(t *testing.T) {
	a := newApp(t)
	dir := t.TempDir()
	ctx := context.Background()
	s := openStore(t, a, dir, nil, 2) // e1, e1.1 (client-only), e2
	if err := s.Commit(ctx, a.filter.New(filterSet{Filter: "done"})); err != nil {
		t.Fatal(err)
	}
	first := logOf(t, dir)[0]
	rec := []livestore.RecoveryEvent{
		// e1 again, its args spelt with other spacing: already held.
		{SeqNum: 1, Name: first.Name, Args: []byte(` { "id" : "t00", "text" : "todo 0" } `), ClientID: first.ClientID, SessionID: first.SessionID},
		// Confirmed by the old server: not restored.
		{SeqNum: 2, BackendID: "old", Name: "v1.TodoCreated", Args: []byte(`{"id":"c","text":""}`), ClientID: "x", SessionID: "y"},
		// The same new event twice: the log holds it no time, so both go in.
		{SeqNum: 3, Name: "v1.TodoCreated", Args: []byte(`{"id":"n","text":"new"}`), ClientID: "other", SessionID: "s2"},
		{SeqNum: 4, Name: "v1.TodoCreated", Args: []byte(`{"id":"n","text":"new"}`), ClientID: "other", SessionID: "s2"},
	}
	if _, err := inspect.RestorePending(ctx, dir, rec); !errors.Is(err, livestore.ErrLocked) {
		t.Fatalf("restore into an open store: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := inspect.RestorePending(ctx, dir, rec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 2 || res.Skipped != 1 || res.Confirmed != 1 || res.First.String() != "e3" || res.Last.String() != "e4" {
		t.Fatalf("restored %+v", res)
	}
	log := logOf(t, dir)
	if len(log) != 6 {
		t.Fatalf("log holds %d events, want 6", len(log))
	}
	for i, want := range []string{"e3 <- e2.1 other/s2", "e4 <- e3 other/s2"} {
		e := log[4+i]
		if got := fmt.Sprintf("%s <- %s %s/%s", e.SeqNum, e.ParentSeqNum, e.ClientID, e.SessionID); got != want || e.Name != "v1.TodoCreated" {
			t.Errorf("restored event %d: %s %s, want %s", i, got, e.Name, want)
		}
		if e.SchemaHash != first.SchemaHash {
			t.Errorf("restored event %d: schema hash %d, want that of its name's events, %d", i, e.SchemaHash, first.SchemaHash)
		}
	}
	res, err = inspect.RestorePending(ctx, dir, rec)
	if err != nil || res.Added != 0 || res.Skipped != 3 {
		t.Fatalf("second restore: %+v, %v", res, err)
	}
	d := openDir(t, dir)
	sum, err := d.Summary(ctx)
	if err != nil || !sum.StaleState || sum.Pending != 4 {
		t.Fatalf("summary after restore: %+v, %v", sum, err)
	}
}
