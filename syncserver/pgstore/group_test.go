package pgstore_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver/pgstore"
	"github.com/livestore-go/livestore/syncserver/pgstore/pgtest"
	"github.com/livestore-go/livestore/syncserver/storagetest"
)

// One append failing in a group costs only its own push.
func TestGroupedAppends(t *testing.T) {
	s := pgtest.Open(t, pgtest.Schema(t))
	storagetest.Grouped(t, s, func(appends []storagetest.Append) []error {
		ids := make([]string, len(appends))
		batches := make([][]syncproto.Event, len(appends))
		for i, a := range appends {
			ids[i], batches[i] = a.StoreID, a.Batch
		}
		return s.AppendGroup(ids, batches)
	})
}

// crashEnv makes the test binary, started by TestAppendsSurviveCrash,
// append to the schema it names until killed.
const crashEnv = "PGSTORE_TEST_CRASH"

func appendUntilKilled(schema string) {
	s, err := pgstore.Open(context.Background(), os.Getenv(pgtest.EnvURL), pgstore.Options{Schema: schema})
	if err != nil {
		os.Exit(1)
	}
	if err := storagetest.AppendUntilKilled(context.Background(), s, os.Stdout); err != nil {
		os.Exit(2)
	}
}

// Every append acknowledged before the process died is stored, and the
// logs are whole.
func TestAppendsSurviveCrash(t *testing.T) {
	schema := pgtest.Schema(t)
	pgtest.Open(t, schema) // creates the schema
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+schema)
	seen := storagetest.KillAfterAppends(t, cmd, 200)
	if n := storagetest.CheckAfterCrash(t, pgtest.Open(t, schema), seen); n < 200 {
		t.Fatalf("the child acknowledged %d appends before it was killed; want at least 200", n)
	}
}

// Schemas created with the foreign key from events to stores lose it when
// opened, and keep their data.
func TestDropsOldForeignKey(t *testing.T) {
	schema := pgtest.Schema(t)
	s := pgtest.Open(t, schema)
	ctx := t.Context()
	if err := s.Append(ctx, "old", storagetest.Chain(0, 2, "c"), time.Now()); err != nil {
		t.Fatal(err)
	}
	db := admin(t)
	events := pgx.Identifier{schema, "livestore_events"}.Sanitize()
	stores := pgx.Identifier{schema, "livestore_stores"}.Sanitize()
	if _, err := db.Exec(ctx, "ALTER TABLE "+events+" ADD CONSTRAINT livestore_events_store_id_fkey FOREIGN KEY (store_id) REFERENCES "+stores+" (store_id)"); err != nil {
		t.Fatal(err)
	}
	foreignKeys := func() int {
		var n int
		err := db.QueryRow(ctx, `SELECT count(*) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
			JOIN pg_namespace n ON n.oid = t.relnamespace
			WHERE n.nspname = $1 AND t.relname = 'livestore_events' AND c.contype = 'f'`, schema).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := foreignKeys(); n != 1 {
		t.Fatalf("%d foreign keys after adding one", n)
	}
	again := pgtest.Open(t, schema)
	if n := foreignKeys(); n != 0 {
		t.Fatalf("%d foreign keys after Open", n)
	}
	if err := again.Append(ctx, "old", storagetest.Chain(2, 1, "c"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if evs, err := again.Read(ctx, "old", 0, 10, 10); err != nil || len(evs) != 3 {
		t.Fatalf("read %d events, %v; want 3", len(evs), err)
	}
}
