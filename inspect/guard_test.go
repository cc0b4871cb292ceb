package inspect

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/internal/clientdb"
	"github.com/livestore-go/livestore/internal/sqlite"
)

// The guard must hold without the read transaction Query wraps around it:
// VACUUM fails inside a transaction anyway, so only a bare call shows it.
func TestReadOnlyGuardOutsideTransaction(t *testing.T) {
	dir := t.TempDir()
	w, err := sqlite.Open(filepath.Join(dir, livestore.DBFileName), sqlite.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Exec(`CREATE TABLE ` + clientdb.EventlogTable + ` (x); CREATE TABLE ` + clientdb.SyncStatusTable + ` (x); CREATE TABLE t (x)`); err != nil {
		t.Fatal(err)
	}
	w.Close()
	d, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	target := filepath.Join(t.TempDir(), "copy.db")
	for _, q := range []string{"VACUUM INTO '" + target + "'", "VACUUM INTO (SELECT '" + target + "')", "VACUUM"} {
		if d.c.InTransaction() {
			t.Fatal("in a transaction")
		}
		_, err := d.c.QueryReadOnly(q, nil, nil)
		if err == nil || !strings.Contains(err.Error(), "VACUUM is not allowed") {
			t.Errorf("%q: %v", q, err)
		}
		if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%q created %s (%v)", q, target, err)
		}
	}
	if _, err := d.c.QueryReadOnly("SELECT count(*) FROM t", nil, nil); err != nil {
		t.Fatalf("a reading statement after the refusals: %v", err)
	}
}
