package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/livestore-go/livestore/inspect"
)

const queryUsage = `Usage: livestore query --dir DIR [flags] SQL

Runs one reading SQL statement (SELECT, or a PRAGMA that reports) over a client
store's state and eventlog, e.g. 'SELECT * FROM todos' or 'SELECT name, count(*)
FROM eventlog GROUP BY name'. Statements that would write are refused. The owning
program may keep running.
`

func runQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var dir string
	var asJSON bool
	var limit int
	var maxAnswer int
	var timeout time.Duration
	fs := newFlagSet("query", queryUsage, stderr)
	fs.StringVar(&dir, "dir", "", "the client store directory (holding store.db); required")
	fs.BoolVar(&asJSON, "json", false, "print JSON: {columns, rows, truncated}")
	fs.IntVar(&limit, "limit", 1000, "most rows printed (0: all)")
	fs.IntVar(&maxAnswer, "max-answer-bytes", inspect.DefaultMaxBytes, "most bytes of rows (as JSON) read; -1: no limit")
	fs.DurationVar(&timeout, "query-timeout", inspect.DefaultTimeout, "the query is interrupted after this long; -1s: no limit")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if dir == "" {
		return fmt.Errorf("%w: --dir is required", errUsage)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want one SQL statement as the argument (quote it)", errUsage)
	}
	if limit < 0 {
		return fmt.Errorf("%w: --limit must not be negative", errUsage)
	}
	d, err := inspect.Open(ctx, dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if maxAnswer == 0 || timeout == 0 {
		return fmt.Errorf("%w: --max-answer-bytes and --query-timeout must not be 0 (negative: no limit)", errUsage)
	}
	res, err := d.Query(ctx, fs.Arg(0), inspect.Limits{MaxRows: limit, MaxBytes: maxAnswer, Timeout: timeout})
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, res)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(res.Columns, "\t"))
	cells := make([]string, len(res.Columns))
	for _, row := range res.Rows {
		for i, v := range row {
			cells[i] = formatCell(v)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch res.TruncatedBy {
	case inspect.LimitRows:
		fmt.Fprintf(stderr, "(only the first %d rows; pass --limit 0 for all)\n", limit)
	case inspect.LimitBytes:
		fmt.Fprintf(stderr, "(only the first %d rows: the next would pass --max-answer-bytes %d; select fewer or shorter columns, or raise it)\n", len(res.Rows), maxAnswer)
	}
	return nil
}

// formatCell renders a SQLite value for a table: NULL, blobs as x'…', text
// with tabs and newlines escaped.
func formatCell(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		return "x'" + hex.EncodeToString(v) + "'"
	case string:
		return strings.NewReplacer("\t", `\t`, "\n", `\n`, "\r", `\r`).Replace(v)
	default:
		return fmt.Sprint(v)
	}
}
