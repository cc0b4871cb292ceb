package sqlite

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func openTest(t *testing.T) *Conn {
	t.Helper()
	c, err := Open(filepath.Join(t.TempDir(), "t.db"), OpenOptions{Capture: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Exec("CREATE TABLE a (id TEXT PRIMARY KEY, n INTEGER, b BLOB); CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT);"); err != nil {
		t.Fatal(err)
	}
	return c
}

func dumpA(t *testing.T, c *Conn) [][]any {
	t.Helper()
	var rows [][]any
	err := c.Query("SELECT id, n, b FROM a ORDER BY id", nil, func(r *Row) error {
		rows = append(rows, []any{r.Value(0), r.Value(1), r.Value(2)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestCaptureAndApplyInverse(t *testing.T) {
	c := openTest(t)
	if err := c.Exec("INSERT INTO a VALUES ('x', 1, NULL), ('y', 2, x'00ff')"); err != nil {
		t.Fatal(err)
	}
	before := dumpA(t, c)
	cs, err := c.Capture([]string{"a", "b"}, func() error {
		if err := c.Exec("UPDATE a SET n = 10 WHERE id = 'x'"); err != nil {
			return err
		}
		if err := c.Exec("DELETE FROM a WHERE id = 'y'"); err != nil {
			return err
		}
		if err := c.Exec("INSERT INTO a VALUES ('z', 3, ?)", []byte("blob")); err != nil {
			return err
		}
		return c.Exec("INSERT INTO b (v) VALUES ('q')")
	})
	if err != nil || len(cs) == 0 {
		t.Fatalf("capture: %v (%d bytes)", err, len(cs))
	}
	tables, err := ChangesetTables(cs)
	if err != nil || !reflect.DeepEqual(tables, []string{"a", "b"}) {
		t.Fatalf("tables = %v, %v", tables, err)
	}
	if err := c.ApplyInverse(cs); err != nil {
		t.Fatal(err)
	}
	if got := dumpA(t, c); !reflect.DeepEqual(got, before) {
		t.Fatalf("after inverse: %v, want %v", got, before)
	}
	if n, _, _ := c.QueryInt64("SELECT count(*) FROM b"); n != 0 {
		t.Fatalf("b has %d rows", n)
	}
	// Inverting again conflicts: the rows it would remove are gone.
	if err := c.ApplyInverse(cs); err == nil {
		t.Fatal("second inverse applied without conflict")
	}
}

func TestCaptureNoChange(t *testing.T) {
	c := openTest(t)
	cs, err := c.Capture([]string{"a"}, func() error { return c.Exec("UPDATE a SET n = 1 WHERE id = 'none'") })
	if err != nil || cs != nil {
		t.Fatalf("cs = %v, err = %v", cs, err)
	}
	boom := errors.New("boom")
	if _, err := c.Capture([]string{"a"}, func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
}

func TestAnalyze(t *testing.T) {
	c := openTest(t)
	if err := c.Exec("CREATE VIEW av AS SELECT a.id, b.v FROM a JOIN b ON b.id = a.n"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		q             string
		reads, writes []string
	}{
		{"SELECT * FROM a WHERE id = ?", []string{"a"}, []string{}},
		{"SELECT * FROM av", []string{"a", "av", "b"}, []string{}},
		{"SELECT (SELECT count(*) FROM b), id FROM a", []string{"a", "b"}, []string{}},
		{"INSERT INTO b (v) SELECT id FROM a", []string{"a"}, []string{"b"}},
		{"UPDATE a SET n = n + 1", []string{"a"}, []string{"a"}},
		{"DELETE FROM b", []string{}, []string{"b"}},
	}
	for _, tc := range cases {
		acc, err := c.Analyze(tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.q, err)
		}
		if !reflect.DeepEqual(acc.Reads, tc.reads) || !reflect.DeepEqual(acc.Writes, tc.writes) {
			t.Errorf("%s: reads %v writes %v, want %v %v", tc.q, acc.Reads, acc.Writes, tc.reads, tc.writes)
		}
	}
	if _, err := c.Analyze("SELECT * FROM missing"); err == nil {
		t.Fatal("no error for a missing table")
	}
}

func TestBindAndErrors(t *testing.T) {
	c := openTest(t)
	when := time.Date(2024, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	var got []any
	err := c.Query("SELECT ?, ?, ?, ?, ?, ?", []any{int8(-3), uint32(7), true, 1.5, when, nil}, func(r *Row) error {
		for i := 0; i < r.ColumnCount(); i++ {
			got = append(got, r.Value(i))
		}
		return nil
	})
	want := []any{int64(-3), int64(7), int64(1), 1.5, "2024-01-02T03:04:05.600Z", nil}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, %v", got, err)
	}
	if err := c.Query("SELECT ?", []any{struct{}{}}, nil); err == nil {
		t.Fatal("unsupported type bound")
	}
	if err := c.Query("SELECT ?, ?", []any{1}, nil); err == nil {
		t.Fatal("missing argument accepted")
	}
	if err := c.Exec("INSERT INTO a VALUES ('x', 1, NULL)"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec("INSERT INTO a VALUES ('x', 1, NULL)"); !errors.Is(err, ErrConstraint) {
		t.Fatalf("duplicate key: %v", err)
	}
}
