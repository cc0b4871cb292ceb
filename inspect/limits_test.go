package inspect_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/inspect"
)

// rowsOf is a query producing n rows of (i, value) without storing them.
func rowsOf(n int, value string) string {
	return `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ` +
		itoa(n) + `) SELECT i, ` + value + ` AS v FROM c`
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestQueryAnswerStaysUnderByteCap(t *testing.T) {
	a := newApp(t)
	dir := t.TempDir()
	openStore(t, a, dir, nil, 1)
	d := openDir(t, dir)
	ctx := context.Background()
	for _, tc := range []struct {
		name, value string
		maxBytes    int
		wantRows    int
	}{
		// 100 KB blobs are 133,336 bytes of base64 each: seven fit in 1 MiB.
		{"blobs", "zeroblob(100000)", 0, 7},
		// Text made of characters JSON escapes to six bytes each.
		{"escaped text", "replace(printf('%.20000c', 'x'), 'x', '<')", 300_000, 2},
		{"small rows", "'v'", 2048, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := d.Query(ctx, rowsOf(300, tc.value), inspect.Limits{MaxBytes: tc.maxBytes})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Truncated || res.TruncatedBy != inspect.LimitBytes {
				t.Fatalf("truncated %v by %q, want by bytes", res.Truncated, res.TruncatedBy)
			}
			if tc.wantRows >= 0 && len(res.Rows) != tc.wantRows {
				t.Fatalf("%d rows, want %d", len(res.Rows), tc.wantRows)
			}
			b, err := json.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			limit := tc.maxBytes
			if limit == 0 {
				limit = inspect.DefaultMaxBytes
			}
			if len(b) > limit {
				t.Fatalf("answer is %d bytes, over the cap %d", len(b), limit)
			}
			// The next row would not have fitted: the cap is used, not merely respected.
			if len(res.Rows) == 0 || len(b) < limit/2 {
				t.Fatalf("answer is %d bytes with %d rows for a cap of %d", len(b), len(res.Rows), limit)
			}
		})
	}
	// A row larger than the whole cap gives an empty, truncated answer.
	res, err := d.Query(ctx, "SELECT zeroblob(2000000)", inspect.Limits{})
	if err != nil || len(res.Rows) != 0 || res.TruncatedBy != inspect.LimitBytes || len(res.Columns) != 1 {
		t.Fatalf("one row over the cap: %+v, %v", res, err)
	}
}

func TestQueryValueLengthLimit(t *testing.T) {
	a := newApp(t)
	dir := t.TempDir()
	openStore(t, a, dir, nil, 1)
	d := openDir(t, dir)
	_, err := d.Query(context.Background(), "SELECT length(randomblob(1000000000))", inspect.Limits{})
	if err == nil || !strings.Contains(err.Error(), "too big") {
		t.Fatalf("a 1 GB value: %v, want string or blob too big", err)
	}
	// The limit is the query's only: the eventlog reads as before.
	if _, err := d.Summary(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestQueryTimeLimit(t *testing.T) {
	a := newApp(t)
	dir := t.TempDir()
	openStore(t, a, dir, nil, 2)
	d := openDir(t, dir)
	ctx := context.Background()
	forever := `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c`
	start := time.Now()
	_, err := d.Query(ctx, forever, inspect.Limits{Timeout: 200 * time.Millisecond})
	took := time.Since(start)
	if !errors.Is(err, inspect.ErrTimeout) || !strings.Contains(err.Error(), "stopped after 200ms") {
		t.Fatalf("endless query: %v, want the time limit", err)
	}
	if took > 3*time.Second {
		t.Fatalf("endless query stopped after %s", took)
	}
	// The Dir is usable afterwards: the read transaction was closed.
	res, err := d.Query(ctx, "SELECT count(*) FROM todos", inspect.Limits{})
	if err != nil || len(res.Rows) != 1 || res.Rows[0][0] != int64(2) {
		t.Fatalf("after the timeout: %+v, %v", res, err)
	}
	// A caller's own cancellation is not reported as the time limit.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = d.Query(cctx, forever, inspect.Limits{Timeout: time.Minute})
	if err == nil || errors.Is(err, inspect.ErrTimeout) {
		t.Fatalf("cancelled by the caller: %v", err)
	}
}

func TestQueryRefusesVacuum(t *testing.T) {
	a := newApp(t)
	dir := t.TempDir()
	openStore(t, a, dir, nil, 2)
	d := openDir(t, dir)
	target := filepath.Join(t.TempDir(), "copy.db")
	for _, q := range []string{
		"VACUUM INTO '" + target + "'",
		"  /* note */ -- line\n vacuum main INTO '" + target + "'",
		"VACUUM INTO (SELECT '" + target + "')",
		"VACUUM",
	} {
		_, err := d.Query(context.Background(), q, inspect.Limits{})
		if err == nil || !strings.Contains(err.Error(), "VACUUM is not allowed") {
			t.Errorf("%q: %v, want VACUUM refused", q, err)
		}
		if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%q created %s (%v)", q, target, err)
		}
	}
}
