package devtools

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/livestore-go/livestore/inspect"
)

// dirColumnJSON and dirTableJSON are a table as the page lists it.
type dirColumnJSON struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	PrimaryKey bool   `json:"primaryKey"`
	Nullable   bool   `json:"nullable"`
}

type dirTableJSON struct {
	Name           string          `json:"name"`
	Kind           string          `json:"kind"`
	Columns        []dirColumnJSON `json:"columns"`
	RowCount       int64           `json:"rowCount"`
	Editable       bool            `json:"editable"`
	ReadOnlyReason string          `json:"readOnlyReason"`
}

// listTables reads the state tables from SQLite's catalogue: every table but
// SQLite's own, LiveStore's system tables and the eventlog.
func (h *dirHandler) listTables(ctx context.Context, d *inspect.Dir, withCounts bool) ([]dirTableJSON, error) {
	res, err := h.query(ctx, d, `SELECT name FROM sqlite_schema WHERE type = 'table'
 AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_\_livestore\_%' ESCAPE '\' AND name <> 'eventlog' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	out := make([]dirTableJSON, 0, len(res.Rows))
	for _, row := range res.Rows {
		name, _ := row[0].(string)
		t := dirTableJSON{Name: name, Kind: "table", Columns: []dirColumnJSON{}, ReadOnlyReason: readOnlyDir}
		cols, err := h.query(ctx, d, `SELECT name, type, pk, "notnull" FROM pragma_table_info(`+dirQuoteString(name)+`) ORDER BY cid`)
		if err != nil {
			return nil, fmt.Errorf("columns of %s: %w", name, err)
		}
		for _, c := range cols.Rows {
			n, _ := c[0].(string)
			typ, _ := c[1].(string)
			pk, _ := c[2].(int64)
			notNull, _ := c[3].(int64)
			t.Columns = append(t.Columns, dirColumnJSON{Name: n, Type: typ, PrimaryKey: pk > 0, Nullable: notNull == 0 && pk == 0})
		}
		// A client document table is id → JSON value; without the schema
		// its shape is all there is to tell it by.
		if len(t.Columns) == 2 && t.Columns[0].Name == "id" && t.Columns[0].PrimaryKey && t.Columns[1].Name == "value" {
			t.Kind = "clientDocument"
		}
		if withCounts {
			n, err := h.query(ctx, d, `SELECT count(*) FROM `+quoteIdent(name))
			if err != nil {
				return nil, fmt.Errorf("count rows of %s: %w", name, err)
			}
			t.RowCount, _ = n.Rows[0][0].(int64)
		}
		out = append(out, t)
	}
	return out, nil
}

func (h *dirHandler) tables(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	d, ok := h.open(w, ctx)
	if !ok {
		return
	}
	defer d.Close()
	list, err := h.listTables(ctx, d, true)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, list)
}

func (h *dirHandler) rows(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	q := r.URL.Query()
	offset, err := intParam(r, "offset", 0)
	if err != nil || offset < 0 {
		h.fail(w, http.StatusBadRequest, errors.New("offset: want a non-negative integer"))
		return
	}
	limit, err := intParam(r, "limit", DefaultLimit)
	if err != nil || limit < 1 || limit > MaxLimit {
		h.fail(w, http.StatusBadRequest, fmt.Errorf("limit: want an integer from 1 to %d", MaxLimit))
		return
	}
	dir := strings.ToLower(q.Get("dir"))
	if dir != "" && dir != "asc" && dir != "desc" {
		h.fail(w, http.StatusBadRequest, errors.New(`dir: want "asc" or "desc"`))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	d, ok := h.open(w, ctx)
	if !ok {
		return
	}
	defer d.Close()
	tables, err := h.listTables(ctx, d, false)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	i := slices.IndexFunc(tables, func(t dirTableJSON) bool { return t.Name == name })
	if i < 0 {
		h.fail(w, http.StatusNotFound, fmt.Errorf("no table %q in the store", name))
		return
	}
	t := tables[i]
	var order []string
	if sort := q.Get("sort"); sort != "" {
		if !slices.ContainsFunc(t.Columns, func(c dirColumnJSON) bool { return c.Name == sort }) {
			h.fail(w, http.StatusBadRequest, fmt.Errorf("sort: table %s has no column %q", name, sort))
			return
		}
		order = append(order, quoteIdent(sort)+" "+strings.ToUpper(orDefault(dir, "asc")))
	}
	// The primary key after the sort column keeps pages stable.
	for _, c := range t.Columns {
		if c.PrimaryKey {
			order = append(order, quoteIdent(c.Name)+" "+strings.ToUpper(orDefault(dir, "asc")))
		}
	}
	stmt := "SELECT * FROM " + quoteIdent(name)
	if len(order) > 0 {
		stmt += " ORDER BY " + strings.Join(order, ", ")
	}
	stmt += fmt.Sprintf(" LIMIT %d OFFSET %d", limit, offset)
	// The rest of the answer ({"total":…,"offset":…,"truncated":…}) fits in 128 bytes.
	res, err := d.Query(ctx, stmt, inspect.Limits{MaxRows: int(limit), MaxBytes: h.maxBytes - 128, Timeout: h.timeout})
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	total, err := h.query(ctx, d, "SELECT count(*) FROM "+quoteIdent(name))
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	answer := map[string]any{
		"columns": res.Columns, "rows": res.Rows, "total": total.Rows[0][0], "offset": offset,
		"truncated": res.TruncatedBy == inspect.LimitBytes,
	}
	if res.TruncatedBy == inspect.LimitBytes {
		answer["truncatedBy"] = inspect.LimitBytes
		answer["next"] = fmt.Sprintf("rows cut at the answer limit of %d bytes: ask for the rest with offset=%d", h.maxBytes, offset+int64(len(res.Rows)))
	}
	writeJSON(w, answer)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func dirQuoteString(s string) string {
	return `'` + strings.ReplaceAll(s, `'`, `''`) + `'`
}
