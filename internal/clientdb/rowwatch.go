package clientdb

import (
	"fmt"
	"strings"

	"github.com/livestore-go/livestore/internal/sqlite"
)

// Row watching: temporary triggers on a state table record the primary key
// of every row an INSERT, UPDATE or DELETE changes in a temporary table,
// inside the writing transaction (so a rolled-back savepoint takes its
// records with it). It tells a commit which rows it changed, whoever wrote
// them, at the cost of one small insert per changed row — far less than a
// SQLite session, which prepares statements of its own on every use.
//
// The triggers and the table live in the connection's temp schema: they
// are the connection's alone, never reach the database file, and vanish
// when the connection closes or the watched table is dropped.

const changedRowsTable = "__livestore_changed_rows"

// WatchRows installs the triggers that record the key column keyCol of
// every row changed in table. It turns on recursive triggers on the
// connection, without which rows deleted by a REPLACE conflict fire no
// trigger, and keeps temporary tables in memory. It must run outside a
// transaction; installing it expires the connection's prepared statements
// once.
func (d DB) WatchRows(table, keyCol string) error {
	t, k := quote(table), quote(keyCol)
	name := func(op string) string { return quote("__livestore_rows_" + table + "_" + op) }
	lit := "'" + strings.ReplaceAll(table, "'", "''") + "'"
	record := "INSERT INTO " + changedRowsTable + " VALUES "
	stmts := []string{
		"PRAGMA temp_store = MEMORY",
		"PRAGMA recursive_triggers = ON",
		"CREATE TEMP TABLE IF NOT EXISTS " + changedRowsTable + " (tbl TEXT NOT NULL, k)",
		"CREATE TEMP TRIGGER IF NOT EXISTS " + name("i") + " AFTER INSERT ON main." + t +
			" BEGIN " + record + "(" + lit + ", NEW." + k + "); END",
		"CREATE TEMP TRIGGER IF NOT EXISTS " + name("u") + " AFTER UPDATE ON main." + t +
			" BEGIN " + record + "(" + lit + ", OLD." + k + "), (" + lit + ", NEW." + k + "); END",
		"CREATE TEMP TRIGGER IF NOT EXISTS " + name("d") + " AFTER DELETE ON main." + t +
			" BEGIN " + record + "(" + lit + ", OLD." + k + "); END",
	}
	for _, st := range stmts {
		if err := d.c.Exec(st); err != nil {
			return fmt.Errorf("watch rows of %s: %w", table, err)
		}
	}
	return nil
}

// UnwatchRows removes the triggers WatchRows installed on table.
func (d DB) UnwatchRows(table string) error {
	for _, op := range []string{"i", "u", "d"} {
		if err := d.c.Exec("DROP TRIGGER IF EXISTS temp." + quote("__livestore_rows_"+table+"_"+op)); err != nil {
			return fmt.Errorf("unwatch rows of %s: %w", table, err)
		}
	}
	return nil
}

// WatchedTables lists the tables whose rows are watched (with all three
// triggers in place: dropping a table drops its triggers).
func (d DB) WatchedTables() ([]string, error) {
	var tables []string
	err := d.c.Query(`SELECT tbl_name FROM sqlite_temp_master
 WHERE type = 'trigger' AND substr(name, 1, 17) = '__livestore_rows_'
 GROUP BY tbl_name HAVING count(*) = 3 ORDER BY tbl_name`, nil, func(r *sqlite.Row) error {
		tables = append(tables, r.Text(0))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("watched tables: %w", err)
	}
	return tables, nil
}

// TakeChangedRows calls fn with each recorded change (a table and the key
// of a row changed in it; a row may come more than once) and forgets them.
// It needs a table to have been watched on the connection.
func (d DB) TakeChangedRows(fn func(table string, key any)) error {
	err := d.c.Query("SELECT tbl, k FROM temp."+changedRowsTable, nil, func(r *sqlite.Row) error {
		fn(r.Text(0), r.Value(1))
		return nil
	})
	if err == nil {
		err = d.c.Exec("DELETE FROM temp." + changedRowsTable)
	}
	if err != nil {
		return fmt.Errorf("changed rows: %w", err)
	}
	return nil
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
