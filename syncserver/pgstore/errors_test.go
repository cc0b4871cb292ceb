package pgstore

import (
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/livestore-go/livestore/syncserver"
)

// A real class-53 error from PostgreSQL (53400, a temporary file past
// temp_file_limit, the kind a configured size limit gives) is classified
// StorageFull. (This internal test cannot use pgtest, which imports
// pgstore.)
func TestFullClassified(t *testing.T) {
	u := os.Getenv("LIVESTORE_TEST_POSTGRES_URL")
	if u == "" {
		t.Fatal("LIVESTORE_TEST_POSTGRES_URL is not set; these tests need PostgreSQL")
	}
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
	if !isCode(err, "53400") {
		t.Fatalf("sort past temp_file_limit: %v, want SQLSTATE 53400", err)
	}
	if k := syncserver.StorageErrorKindOf(storageErr("sort", err)); k != syncserver.StorageFull {
		t.Fatalf("classified %s", k)
	}
	_, err = conn.Exec(ctx, "BEGIN READ ONLY; CREATE TEMP TABLE x (a int); COMMIT")
	if k := syncserver.StorageErrorKindOf(storageErr("create", err)); !isCode(err, readOnlyTransaction) || k != syncserver.StorageReadOnly {
		t.Fatalf("write in a read-only transaction: %v classified %s", err, k)
	}
}
