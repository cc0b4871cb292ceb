package sqlite

import (
	"bytes"
	"fmt"
	"math/rand"
	"reflect"
	"sort"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
)

// rowChange is one call of ChangedRows' callback.
type rowChange struct {
	table  string
	key    RowKey
	single bool
}

func changedRows(t *testing.T, cs []byte) []rowChange {
	t.Helper()
	var out []rowChange
	if err := ChangedRows(cs, func(table string, key RowKey, single bool) {
		out = append(out, rowChange{table, key, single})
	}); err != nil {
		t.Fatalf("ChangedRows: %v", err)
	}
	sortChanges(out)
	return out
}

func sortChanges(cs []rowChange) {
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].table != cs[j].table {
			return cs[i].table < cs[j].table
		}
		return cs[i].key < cs[j].key
	})
}

// referenceRows reads cs with SQLite's own changeset iterator.
func referenceRows(t *testing.T, cs []byte) []rowChange {
	t.Helper()
	it, err := sqlite.NewChangesetIterator(bytes.NewReader(cs))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []rowChange
	for {
		ok, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		op, err := it.Operation()
		if err != nil {
			t.Fatal(err)
		}
		pk, err := it.PrimaryKey()
		if err != nil {
			t.Fatal(err)
		}
		col, n := -1, 0
		for i, isPK := range pk {
			if isPK {
				col, n = i, n+1
			}
		}
		if n != 1 {
			out = append(out, rowChange{op.TableName, "", false})
			continue
		}
		var keys []RowKey
		if op.Type != sqlite.OpInsert {
			v, err := it.Old(col)
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, refKey(t, v))
		}
		if op.Type != sqlite.OpDelete {
			v, err := it.New(col)
			if err != nil {
				t.Fatal(err)
			}
			if v.Type() != sqlite.TypeNull {
				if k := refKey(t, v); len(keys) == 0 || keys[0] != k {
					keys = append(keys, k)
				}
			}
		}
		for _, k := range keys {
			out = append(out, rowChange{op.TableName, k, true})
		}
	}
	sortChanges(out)
	return out
}

func refKey(t *testing.T, v sqlite.Value) RowKey {
	t.Helper()
	var k RowKey
	var ok bool
	switch v.Type() {
	case sqlite.TypeInteger:
		k, ok = KeyOf(v.Int64())
	case sqlite.TypeFloat:
		k, ok = KeyOf(v.Float())
	case sqlite.TypeText:
		k, ok = KeyOf(v.Text())
	case sqlite.TypeBlob:
		k, ok = KeyOf(v.Blob())
	}
	if !ok {
		t.Fatalf("key value of type %v", v.Type())
	}
	return k
}

func TestChangedRowsKinds(t *testing.T) {
	c := openTest(t)
	if err := c.Exec("CREATE TABLE c (x TEXT, y INTEGER, v TEXT, PRIMARY KEY (x, y))"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec("INSERT INTO a VALUES ('x', 1, NULL), ('y', 2, NULL); INSERT INTO b VALUES (7, 'seven'); INSERT INTO c VALUES ('p', 1, 'v');"); err != nil {
		t.Fatal(err)
	}
	cs, err := c.Capture([]string{"a", "b", "c"}, func() error {
		return c.Exec(`UPDATE a SET n = 5 WHERE id = 'x';
			UPDATE a SET id = 'moved' WHERE id = 'y';
			DELETE FROM b WHERE id = 7;
			INSERT INTO b VALUES (8, 'eight');
			UPDATE c SET v = 'w';`)
	})
	if err != nil {
		t.Fatal(err)
	}
	key := func(v any) RowKey { k, _ := KeyOf(v); return k }
	want := []rowChange{
		{"a", key("moved"), true}, {"a", key("x"), true}, {"a", key("y"), true},
		{"b", key(int64(7)), true}, {"b", key(int64(8)), true},
		{"c", "", false},
	}
	sortChanges(want)
	if got := changedRows(t, cs); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestKeyOfDistinguishesTypes(t *testing.T) {
	vals := []any{int64(1), float64(1), "1", []byte("1"), int64(-1), "", []byte{}}
	seen := map[RowKey]any{}
	for _, v := range vals {
		k, ok := KeyOf(v)
		if !ok {
			t.Fatalf("KeyOf(%#v) failed", v)
		}
		if prev, dup := seen[k]; dup {
			t.Fatalf("KeyOf(%#v) == KeyOf(%#v)", v, prev)
		}
		seen[k] = v
	}
	if _, ok := KeyOf(nil); ok {
		t.Fatal("NULL has a key")
	}
}

// TestChangedRowsMatchesSQLite compares ChangedRows with SQLite's changeset
// iterator over random writes to tables keyed by text, integer, real, blob
// and two columns.
func TestChangedRowsMatchesSQLite(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	c := openTest(t)
	err := c.Exec(`CREATE TABLE r (id REAL PRIMARY KEY, v TEXT);
		CREATE TABLE bl (id BLOB PRIMARY KEY, v TEXT);
		CREATE TABLE c (x TEXT, y INTEGER, v TEXT, PRIMARY KEY (x, y));`)
	if err != nil {
		t.Fatal(err)
	}
	tables := []string{"a", "b", "r", "bl", "c"}
	stmts := []func() (string, []any){
		func() (string, []any) {
			return "INSERT OR REPLACE INTO a VALUES (?, ?, ?)", []any{fmt.Sprint("k", rng.Intn(30)), int64(rng.Intn(5)), randBlob(rng)}
		},
		func() (string, []any) {
			return "UPDATE a SET n = n + 1 WHERE id = ?", []any{fmt.Sprint("k", rng.Intn(30))}
		},
		func() (string, []any) {
			return "UPDATE OR IGNORE a SET id = ? WHERE id = ?", []any{fmt.Sprint("k", rng.Intn(30)), fmt.Sprint("k", rng.Intn(30))}
		},
		func() (string, []any) { return "DELETE FROM a WHERE id = ?", []any{fmt.Sprint("k", rng.Intn(30))} },
		func() (string, []any) {
			return "INSERT OR REPLACE INTO b VALUES (?, ?)", []any{int64(rng.Intn(40) - 20), fmt.Sprint(rng.Intn(9))}
		},
		func() (string, []any) {
			return "UPDATE OR REPLACE b SET id = id + 3 WHERE id < ?", []any{int64(rng.Intn(10))}
		},
		func() (string, []any) { return "DELETE FROM b WHERE id % 7 = ?", []any{int64(rng.Intn(7))} },
		func() (string, []any) {
			return "INSERT OR REPLACE INTO r VALUES (?, 'x')", []any{float64(rng.Intn(20)) / 4}
		},
		func() (string, []any) { return "INSERT OR REPLACE INTO bl VALUES (?, 'x')", []any{randBlob(rng)} },
		func() (string, []any) {
			return "DELETE FROM bl WHERE v = 'x' AND length(id) = ?", []any{int64(rng.Intn(3))}
		},
		func() (string, []any) {
			return "INSERT OR REPLACE INTO c VALUES (?, ?, 'v')", []any{fmt.Sprint(rng.Intn(3)), int64(rng.Intn(3))}
		},
		func() (string, []any) { return "DELETE FROM c WHERE y = ?", []any{int64(rng.Intn(3))} },
	}
	for round := 0; round < 200; round++ {
		cs, err := c.Capture(tables, func() error {
			for i := rng.Intn(8); i >= 0; i-- {
				q, args := stmts[rng.Intn(len(stmts))]()
				if err := c.Exec(q, args...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got, want := changedRows(t, cs), referenceRows(t, cs)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d:\n got %+v\nwant %+v", round, got, want)
		}
	}
}

func randBlob(rng *rand.Rand) []byte {
	b := make([]byte, rng.Intn(3))
	for i := range b {
		b[i] = byte(rng.Intn(3))
	}
	return b
}

func TestChangedRowsRejectsGarbage(t *testing.T) {
	c := openTest(t)
	cs, err := c.Capture([]string{"a"}, func() error { return c.Exec("INSERT INTO a VALUES ('x', 1, x'0102')") })
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{cs[:len(cs)-1], cs[:3], {0x17, 0}, append([]byte("T\x02\x01\x00a\x00"), 0x12, 0, 9)} {
		if err := ChangedRows(bad, func(string, RowKey, bool) {}); err == nil {
			t.Errorf("ChangedRows(%q) = nil", bad)
		}
	}
}

// TestCaptureSeesCachedDeleteAll runs "DELETE FROM a" once outside any
// capture, so that its prepared statement is cached, and then inside one:
// the changeset must still hold every deleted row.
func TestCaptureSeesCachedDeleteAll(t *testing.T) {
	c := openTest(t)
	for round := 0; round < 2; round++ {
		if err := c.Exec("INSERT INTO a VALUES ('x', 1, NULL), ('y', 2, NULL)"); err != nil {
			t.Fatal(err)
		}
		var cs []byte
		var err error
		if round == 0 {
			err = c.Exec("DELETE FROM a")
		} else {
			cs, err = c.Capture([]string{"a"}, func() error { return c.Exec("DELETE FROM a") })
		}
		if err != nil {
			t.Fatal(err)
		}
		if round == 1 {
			x, _ := KeyOf("x")
			y, _ := KeyOf("y")
			want := []rowChange{{"a", x, true}, {"a", y, true}}
			if got := changedRows(t, cs); !reflect.DeepEqual(got, want) {
				t.Fatalf("changeset of DELETE FROM a: %+v, want %+v", got, want)
			}
		}
	}
}

func TestCaptureNeedsOption(t *testing.T) {
	c, err := Open(":memory:", OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Capture(nil, func() error { return nil }); err == nil {
		t.Fatal("Capture on a connection opened without Capture succeeded")
	}
}
