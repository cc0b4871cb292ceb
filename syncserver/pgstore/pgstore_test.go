package pgstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/pgstore"
	"github.com/livestore-go/livestore/syncserver/pgstore/pgtest"
	"github.com/livestore-go/livestore/syncserver/storagetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) syncserver.Storage { return pgtest.Open(t, pgtest.Schema(t)) })
}

func TestWatch(t *testing.T) {
	schema := pgtest.Schema(t)
	a := pgtest.Open(t, schema)
	b := pgtest.Open(t, schema)
	ctx := t.Context()

	type change struct {
		store string
		head  int64
	}
	changes := make(chan change, 16)
	watchCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Watch(watchCtx, func(store string, head int64) { changes <- change{store, head} })
	}()
	defer func() {
		stop()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v", err)
		}
	}()
	if c := <-changes; c != (change{"", 0}) {
		t.Fatalf("first change = %+v, want the catch-all", c)
	}
	if err := a.Append(ctx, "w", storagetest.Chain(0, 3, "c"), time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-changes:
		if c != (change{"w", 3}) {
			t.Fatalf("change = %+v, want {w 3}", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification")
	}
	// A refused append notifies nobody.
	_ = a.Append(ctx, "w", storagetest.Chain(0, 1, "c"), time.Now())
	if err := a.Append(ctx, "w", storagetest.Chain(3, 1, "c"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if c := <-changes; c != (change{"w", 4}) {
		t.Fatalf("change = %+v, want {w 4}", c)
	}
}

func TestSchemaName(t *testing.T) {
	for _, bad := range []string{"Public", "1abc", "a-b", "x;drop", ""} {
		if bad == "" {
			continue // empty means public
		}
		if _, err := pgstore.Open(t.Context(), pgtest.URL(t), pgstore.Options{Schema: bad}); err == nil {
			t.Errorf("schema %q accepted", bad)
		}
	}
}
