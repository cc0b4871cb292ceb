package clientdb

import (
	"fmt"
	"reflect"
	"sort"
	"testing"
)

func takeRows(t *testing.T, d DB) []string {
	t.Helper()
	var got []string
	if err := d.TakeChangedRows(func(table string, key any) { got = append(got, fmt.Sprintf("%s:%v", table, key)) }); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	return got
}

// TestWatchRows watches a table and checks the keys recorded for inserts,
// updates (of the key too), deletes, rows deleted by a REPLACE on a unique
// column and a rolled-back savepoint.
func TestWatchRows(t *testing.T) {
	d, c := openDB(t)
	if err := c.Exec("CREATE TABLE items (id TEXT NOT NULL PRIMARY KEY, u INTEGER UNIQUE); CREATE TABLE other (id INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if err := d.WatchRows("items", "id"); err != nil {
		t.Fatal(err)
	}
	if err := d.WatchRows("items", "id"); err != nil {
		t.Fatalf("watching twice: %v", err)
	}
	if got, err := d.WatchedTables(); err != nil || !reflect.DeepEqual(got, []string{"items"}) {
		t.Fatalf("watched %v, %v", got, err)
	}
	steps := []struct {
		sql  string
		want []string
	}{
		{"INSERT INTO items VALUES ('a', 1), ('b', 2); INSERT INTO other VALUES (1);", []string{"items:a", "items:b"}},
		{"UPDATE items SET id = 'c' WHERE id = 'a'", []string{"items:a", "items:c"}},
		{"INSERT OR REPLACE INTO items VALUES ('d', 2)", []string{"items:b", "items:d"}},
		{"DELETE FROM items", []string{"items:c", "items:d"}},
	}
	for _, s := range steps {
		if err := c.Exec(s.sql); err != nil {
			t.Fatal(err)
		}
		got := takeRows(t, d)
		for i := 0; i+1 < len(got); i++ { // updates record both keys, duplicates allowed
			if got[i] == got[i+1] {
				got = append(got[:i], got[i+1:]...)
				i--
			}
		}
		if !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: recorded %v, want %v", s.sql, got, s.want)
		}
	}
	if err := c.Exec("BEGIN"); err != nil {
		t.Fatal(err)
	}
	err := c.Savepoint(func() error {
		if err := c.Exec("INSERT INTO items VALUES ('x', NULL)"); err != nil {
			return err
		}
		return fmt.Errorf("undo")
	})
	if err == nil {
		t.Fatal("savepoint did not fail")
	}
	if got := takeRows(t, d); len(got) != 0 {
		t.Fatalf("rolled-back insert recorded: %v", got)
	}
	if err := c.Exec("COMMIT"); err != nil {
		t.Fatal(err)
	}
	// Dropping the table drops its triggers; unwatching removes them.
	if err := c.Exec("DROP TABLE items"); err != nil {
		t.Fatal(err)
	}
	if got, err := d.WatchedTables(); err != nil || len(got) != 0 {
		t.Fatalf("watched after drop: %v, %v", got, err)
	}
	if err := d.WatchRows("other", "id"); err != nil {
		t.Fatal(err)
	}
	if err := d.UnwatchRows("other"); err != nil {
		t.Fatal(err)
	}
	if got, err := d.WatchedTables(); err != nil || len(got) != 0 {
		t.Fatalf("watched after unwatch: %v, %v", got, err)
	}
}
