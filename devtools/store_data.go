package devtools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
)

// columnJSON describes a column in api/tables.
type columnJSON struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	PrimaryKey bool   `json:"primaryKey"`
	Nullable   bool   `json:"nullable"`
}

// tableJSON is one table of api/tables.
type tableJSON struct {
	Name           string       `json:"name"`
	Kind           string       `json:"kind"`
	Columns        []columnJSON `json:"columns"`
	RowCount       int64        `json:"rowCount"`
	Editable       bool         `json:"editable"`
	ReadOnlyReason string       `json:"readOnlyReason,omitempty"`
}

func columnsOf(t *livestore.Table) []columnJSON {
	var out []columnJSON
	for _, c := range t.Columns() {
		out = append(out, columnJSON{Name: c.Name(), Type: c.Type().String(), PrimaryKey: c.IsPrimaryKey(), Nullable: c.IsNullable()})
	}
	return out
}

func (a *storeAPI) tables(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	out := []tableJSON{}
	for _, t := range a.s.Schema().Tables() {
		tj := tableJSON{Name: t.Name(), Kind: "table", Columns: columnsOf(t), Editable: true}
		if t.IsClientDocument() {
			tj.Kind = "clientDocument"
		} else if a.edit == nil {
			tj.Editable, tj.ReadOnlyReason = false, readOnlyNoEdit
		}
		n, err := a.count(ctx, t.Name())
		if err != nil {
			a.failed(w, r, "count the rows of "+t.Name(), err)
			return
		}
		tj.RowCount = n
		out = append(out, tj)
	}
	sendJSON(w, out)
}

func (a *storeAPI) count(ctx context.Context, table string) (int64, error) {
	var n int64
	_, err := a.s.QueryReadOnly(ctx, "SELECT count(*) FROM "+quoteIdent(table), nil, func(row []any) error {
		n, _ = row[0].(int64)
		return nil
	})
	return n, err
}

// rowsJSON is the answer of api/tables/{name}/rows.
type rowsJSON struct {
	Columns   []columnJSON `json:"columns"`
	Rows      [][]any      `json:"rows"`
	Total     int64        `json:"total"`
	Offset    int64        `json:"offset"`
	Truncated bool         `json:"truncated"`
	// NextOffset is where the rest of a cut page starts.
	NextOffset int64 `json:"nextOffset,omitempty"`
}

// The tail a rows answer may need: ,"truncated":true,"nextOffset":N}.
const rowsTail = 64

func (a *storeAPI) rows(w http.ResponseWriter, r *http.Request) {
	t, ok := a.s.Schema().Table(r.PathValue("name"))
	if !ok {
		sendError(w, http.StatusNotFound, fmt.Errorf("no table %q in the store's schema", r.PathValue("name")))
		return
	}
	offset, err := intParam(r, "offset", 0)
	if err != nil || offset < 0 {
		sendError(w, http.StatusBadRequest, errors.New("offset: want a non-negative integer"))
		return
	}
	limit, err := intParam(r, "limit", DefaultLimit)
	if err != nil || limit < 1 || limit > MaxRowsLimit {
		sendError(w, http.StatusBadRequest, fmt.Errorf("limit: want an integer from 1 to %d", MaxRowsLimit))
		return
	}
	order, err := rowsOrder(t, r.URL.Query())
	if err != nil {
		sendError(w, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	ans := rowsJSON{Columns: columnsOf(t), Rows: [][]any{}, Offset: offset}
	if ans.Total, err = a.count(ctx, t.Name()); err != nil {
		a.failed(w, r, "count the rows of "+t.Name(), err)
		return
	}
	if err := a.readRows(ctx, t, order, limit, &ans); err != nil {
		a.failed(w, r, "read the rows of "+t.Name(), err)
		return
	}
	sendJSON(w, ans)
}

// rowsOrder is the ORDER BY of a rows page: the sort= column in the dir=
// direction, if given, then the primary key.
func rowsOrder(t *livestore.Table, q url.Values) ([]string, error) {
	var order []string
	if col := q.Get("sort"); col != "" {
		if _, ok := t.Column(col); !ok {
			return nil, fmt.Errorf("sort: table %s has no column %q", t.Name(), col)
		}
		dir := strings.ToLower(q.Get("dir"))
		switch dir {
		case "", "asc":
			dir = "ASC"
		case "desc":
			dir = "DESC"
		default:
			return nil, errors.New("dir: want asc or desc")
		}
		order = append(order, quoteIdent(col)+" "+dir)
	}
	// The primary key orders equal sort values, so pages never overlap.
	for _, c := range t.Columns() {
		if c.IsPrimaryKey() {
			order = append(order, quoteIdent(c.Name()))
		}
	}
	return order, nil
}

// readRows reads up to limit rows of t from ans.Offset into ans, as many as
// fit the answer limit; a cut page says where the rest starts.
func (a *storeAPI) readRows(ctx context.Context, t *livestore.Table, order []string, limit int64, ans *rowsJSON) error {
	cols := t.Columns()
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = quoteIdent(c.Name())
	}
	head, _ := json.Marshal(ans)
	budget := a.maxBytes - len(head) - rowsTail
	errFull := errors.New("answer full")
	query := fmt.Sprintf("SELECT %s FROM %s ORDER BY %s LIMIT ? OFFSET ?", strings.Join(names, ", "), quoteIdent(t.Name()), strings.Join(order, ", "))
	_, err := a.s.QueryReadOnly(ctx, query, []any{limit, ans.Offset}, func(row []any) error {
		for i, c := range cols {
			row[i] = columnValue(c.Type(), row[i])
		}
		b, err := json.Marshal(row)
		if err != nil {
			return err
		}
		if len(b)+1 > budget && len(ans.Rows) == 0 {
			// A row larger than an answer comes alone, its large values
			// replaced, so that paging goes on past it.
			omitLarge(row, budget/len(row))
			if b, err = json.Marshal(row); err != nil {
				return err
			}
		}
		if len(b)+1 > budget {
			ans.Truncated, ans.NextOffset = true, ans.Offset+int64(len(ans.Rows))
			return errFull
		}
		budget -= len(b) + 1
		ans.Rows = append(ans.Rows, row)
		return nil
	})
	if errors.Is(err, errFull) {
		return nil
	}
	return err
}

// omitLarge replaces the values of row larger than size bytes as JSON with
// a note saying how large they are.
func omitLarge(row []any, size int) {
	for i, v := range row {
		if b, err := json.Marshal(v); err == nil && len(b) > size {
			row[i] = fmt.Sprintf("(%d bytes as JSON: too large for an answer; read it with api/sql and substr)", len(b))
		}
	}
}

// columnValue turns a stored value into the JSON the page shows: booleans
// as true/false, JSON columns as their JSON.
func columnValue(typ livestore.ColumnType, v any) any {
	switch typ {
	case livestore.BooleanColumn:
		if n, ok := v.(int64); ok {
			return n != 0
		}
	case livestore.JSONColumn:
		if s, ok := v.(string); ok && json.Valid([]byte(s)) {
			return json.RawMessage(s)
		}
	}
	return v
}

// editJSON is the body of api/tables/{name}/edit.
type editJSON struct {
	Key    map[string]any  `json:"key"`
	Column string          `json:"column"`
	Value  json.RawMessage `json:"value"`
}

// editedJSON is the answer of an edit: the event committed.
type editedJSON struct {
	Event struct {
		Name string `json:"name"`
		Seq  string `json:"seq,omitempty"`
	} `json:"event"`
}

func (a *storeAPI) editRow(w http.ResponseWriter, r *http.Request) {
	t, ok := a.s.Schema().Table(r.PathValue("name"))
	if !ok {
		sendError(w, http.StatusNotFound, fmt.Errorf("no table %q in the store's schema", r.PathValue("name")))
		return
	}
	var req editJSON
	if err := readBody(w, r, maxRequestBytes, &req); err != nil {
		sendError(w, http.StatusBadRequest, err)
		return
	}
	if len(req.Value) == 0 {
		sendError(w, http.StatusBadRequest, errors.New("value: missing (give the new value as JSON; null for NULL)"))
		return
	}
	key, err := checkKey(t, req.Key)
	if err != nil {
		sendError(w, http.StatusBadRequest, err)
		return
	}
	col, ok := t.Column(req.Column)
	if !ok {
		sendError(w, http.StatusBadRequest, fmt.Errorf("column: table %s has no column %q", t.Name(), req.Column))
		return
	}
	ev, ok := a.editEvent(w, r, t, key, col, req.Value)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	before, err := a.s.Head(ctx)
	if err != nil {
		a.failed(w, r, "read the head", err)
		return
	}
	if err := a.s.Commit(ctx, ev); err != nil {
		// Anything but a closed store or the time limit is the edit's fault:
		// an unknown event, args that do not decode, a failing materializer.
		if !errors.Is(err, livestore.ErrStoreClosed) && ctx.Err() == nil {
			sendError(w, http.StatusUnprocessableEntity, fmt.Errorf("the edit's event %s was not committed: %w", ev.Name, err))
			return
		}
		a.failed(w, r, "commit "+ev.Name, err)
		return
	}
	var ans editedJSON
	ans.Event.Name = ev.Name
	ans.Event.Seq = a.findCommitted(ctx, before, ev.Name)
	sendJSON(w, ans)
}

// editEvent returns the event that makes the edit: a client document's set
// event, or the one the edit function returns for a row that exists. An
// error has been answered.
func (a *storeAPI) editEvent(w http.ResponseWriter, r *http.Request, t *livestore.Table, key map[string]any, col livestore.Column, value json.RawMessage) (livestore.Event, bool) {
	var ev livestore.Event
	var err error
	switch {
	case t.IsClientDocument():
		if col.IsPrimaryKey() {
			sendError(w, http.StatusBadRequest, errors.New("column: the id of a client document cannot be changed; edit its value"))
			return ev, false
		}
		id, ok := key["id"].(string)
		if !ok {
			sendError(w, http.StatusBadRequest, errors.New("key: the id of a client document is a string"))
			return ev, false
		}
		if ev, err = t.SetDocumentEvent(id, value); err != nil {
			sendError(w, http.StatusBadRequest, err)
			return ev, false
		}
	case a.edit == nil:
		sendError(w, http.StatusForbidden, fmt.Errorf("table %s is read-only: %s", t.Name(), readOnlyNoEdit))
		return ev, false
	default:
		ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
		found, err := a.rowExists(ctx, t, key)
		cancel()
		if err != nil {
			a.failed(w, r, "find the row", err)
			return ev, false
		}
		if !found {
			sendError(w, http.StatusNotFound, fmt.Errorf("table %s has no row with key %s", t.Name(), keyText(key)))
			return ev, false
		}
		if ev, err = a.edit(t.Name(), key, col.Name(), value); err != nil {
			sendError(w, http.StatusUnprocessableEntity, fmt.Errorf("edit refused: %w", err))
			return ev, false
		}
	}
	return ev, true
}

// findCommitted returns the sequence number of the first event named name
// this session committed after before: the edit's event, unless the program
// committed one of the same name at the same moment. Empty if not found.
func (a *storeAPI) findCommitted(ctx context.Context, before eventlog.SeqNum, name string) string {
	evs, _, err := a.s.EventLog(ctx, livestore.EventLogQuery{After: before, Name: name, Limit: 100})
	if err != nil {
		return ""
	}
	for _, e := range evs {
		if e.SessionID == a.s.SessionID() {
			return e.SeqNum.String()
		}
	}
	return ""
}

// checkKey checks that key names exactly the primary key of t and returns
// it with JSON numbers made int64 or float64.
func checkKey(t *livestore.Table, key map[string]any) (map[string]any, error) {
	if len(key) == 0 {
		return nil, errors.New("key: missing (give the row's primary key, e.g. {\"id\":\"a1\"})")
	}
	out := map[string]any{}
	n := 0
	for _, c := range t.Columns() {
		if !c.IsPrimaryKey() {
			continue
		}
		n++
		v, ok := key[c.Name()]
		if !ok {
			return nil, fmt.Errorf("key: primary key column %q missing", c.Name())
		}
		if num, ok := v.(json.Number); ok {
			if i, err := num.Int64(); err == nil {
				v = i
			} else if f, err := num.Float64(); err == nil {
				v = f
			}
		}
		switch v.(type) {
		case string, int64, float64, bool:
		default:
			return nil, fmt.Errorf("key: %s must be a string or a number", c.Name())
		}
		out[c.Name()] = v
	}
	if len(key) != n {
		return nil, fmt.Errorf("key: give exactly the primary key columns of %s", t.Name())
	}
	return out, nil
}

func keyText(key map[string]any) string {
	b, _ := json.Marshal(key)
	return string(b)
}

func (a *storeAPI) rowExists(ctx context.Context, t *livestore.Table, key map[string]any) (bool, error) {
	var conds []string
	var args []any
	for name, v := range key {
		if b, ok := v.(bool); ok {
			v = map[bool]int64{false: 0, true: 1}[b]
		}
		conds = append(conds, quoteIdent(name)+" = ?")
		args = append(args, v)
	}
	found := false
	_, err := a.s.QueryReadOnly(ctx, "SELECT 1 FROM "+quoteIdent(t.Name())+" WHERE "+strings.Join(conds, " AND ")+" LIMIT 1", args, func([]any) error {
		found = true
		return nil
	})
	return found, err
}

func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
