package pgstore_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/pgstore"
	"github.com/livestore-go/livestore/syncserver/pgstore/pgtest"
)

// A real class-53 error from PostgreSQL (53400, a temporary file past
// temp_file_limit, the kind a configured size limit gives) is classified
// StorageFull.
func TestFullClassified(t *testing.T) {
	u := pgtest.URL(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SET work_mem = '64kB'; SET temp_file_limit = '64kB'"); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "SELECT g FROM generate_series(1, 200000) g ORDER BY g DESC")
	if !pgstore.IsCode(err, "53400") {
		t.Fatalf("sort past temp_file_limit: %v, want SQLSTATE 53400", err)
	}
	if k := syncserver.StorageErrorKindOf(pgstore.StorageErr("sort", err)); k != syncserver.StorageFull {
		t.Fatalf("classified %s", k)
	}
	_, err = conn.Exec(ctx, "BEGIN READ ONLY; CREATE TEMP TABLE x (a int); COMMIT")
	if k := syncserver.StorageErrorKindOf(pgstore.StorageErr("create", err)); !pgstore.IsCode(err, pgstore.ReadOnlyTransaction) || k != syncserver.StorageReadOnly {
		t.Fatalf("write in a read-only transaction: %v classified %s", err, k)
	}
}
