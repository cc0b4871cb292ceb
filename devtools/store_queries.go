package devtools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/internal/rowbudget"
)

func (a *storeAPI) queries(w http.ResponseWriter, r *http.Request) {
	nodes := a.s.ReactiveNodes()
	// An array answer is cut like the server page's store list: the header
	// says so, so that the array stays what the page parses.
	var b bytes.Buffer
	b.WriteByte('[')
	listed := 0
	for _, n := range nodes {
		j, err := json.Marshal(n)
		if err != nil {
			a.failed(w, r, "encode the queries", err)
			return
		}
		if b.Len()+len(j)+2 > a.maxBytes {
			break
		}
		if listed > 0 {
			b.WriteByte(',')
		}
		b.Write(j)
		listed++
	}
	b.WriteByte(']')
	if listed < len(nodes) {
		w.Header().Set("X-Livestore-Truncated", fmt.Sprintf("%d of %d queries listed (answer limit %d bytes)", listed, len(nodes), a.maxBytes))
	}
	sendBody(w, b.Bytes())
}

// graphJSON is the answer of api/graph. An edge goes from a node to one
// that reads it (the way values flow).
type graphJSON struct {
	Nodes      []graphNodeJSON `json:"nodes"`
	Edges      []graphEdgeJSON `json:"edges"`
	LastCommit lastCommitJSON  `json:"lastCommit"`
	Truncated  bool            `json:"truncated,omitempty"`
}

type graphNodeJSON struct {
	ID       int64  `json:"id"`
	Kind     string `json:"kind"`
	Label    string `json:"label"`
	RunCount int64  `json:"runCount"`
	Stale    bool   `json:"stale"`
}

type graphEdgeJSON struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

// lastCommitJSON describes the refresh after the latest writes: the head
// when the answer was made, the tables written and the nodes re-run.
type lastCommitJSON struct {
	Seq    string   `json:"seq"`
	Tables []string `json:"tables"`
	Reran  []int64  `json:"reran"`
}

func (a *storeAPI) graph(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	head, err := a.s.Head(ctx)
	if err != nil {
		a.failed(w, r, "read the head", err)
		return
	}
	last := a.s.LastRefresh()
	ans := graphJSON{Nodes: []graphNodeJSON{}, Edges: []graphEdgeJSON{},
		LastCommit: lastCommitJSON{Seq: head.String(), Tables: last.Tables, Reran: last.Reran}}
	// Nodes without args, SQL or results stay small; a graph too large for
	// an answer is still cut rather than sent whole.
	size := 256 + jsonLen(ans.LastCommit)
	for _, n := range a.s.ReactiveNodes() {
		node := graphNodeJSON{ID: n.ID, Kind: n.Kind, Label: n.Label, RunCount: n.RunCount, Stale: n.Stale}
		add := jsonLen(node) + 1 + len(n.Dependencies)*48
		if size+add > a.maxBytes {
			ans.Truncated = true
			break
		}
		size += add
		ans.Nodes = append(ans.Nodes, node)
		for _, d := range n.Dependencies {
			ans.Edges = append(ans.Edges, graphEdgeJSON{From: d, To: n.ID})
		}
	}
	sendJSON(w, ans)
}

func jsonLen(v any) int {
	b, _ := json.Marshal(v)
	return len(b)
}

// sqlJSON is the answer of api/sql.
type sqlJSON struct {
	Columns     []string `json:"columns"`
	Rows        [][]any  `json:"rows"`
	Truncated   bool     `json:"truncated"`
	TruncatedBy string   `json:"truncatedBy,omitempty"`
	Error       string   `json:"error,omitempty"`
}

func (a *storeAPI) sql(w http.ResponseWriter, r *http.Request) {
	var req struct {
		SQL string `json:"sql"`
	}
	if err := readBody(w, r, maxRequestBytes, &req); err != nil {
		sendError(w, http.StatusBadRequest, err)
		return
	}
	if strings.TrimSpace(req.SQL) == "" {
		sendError(w, http.StatusBadRequest, errors.New("sql: missing (give one reading statement)"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	ans := sqlJSON{Rows: [][]any{}}
	// Column names are not known before the first row: a statement's
	// names take at most a few KiB of the answer.
	budget := a.maxBytes - len(`{"columns":[],"rows":[],"truncated":true,"truncatedBy":"bytes"}`) - 4<<10
	rows := rowbudget.New(MaxSQLRows, budget)
	cols, err := a.s.QueryReadOnly(ctx, req.SQL, nil, rows.Add)
	ans.Rows, ans.TruncatedBy = rows.Rows(), rows.TruncatedBy()
	ans.Truncated = ans.TruncatedBy != ""
	ans.Columns = cols
	if ans.Columns == nil {
		ans.Columns = []string{}
	}
	if err != nil && !errors.Is(err, rowbudget.ErrFull) {
		code := http.StatusBadRequest
		switch {
		case r.Context().Err() == nil && (errors.Is(ctx.Err(), context.DeadlineExceeded) || isInterrupt(err)):
			err = fmt.Errorf("stopped after %s (Options.QueryTimeout); nothing was changed: narrow the query", a.timeout)
			code = http.StatusRequestTimeout
		case errors.Is(err, livestore.ErrStoreClosed):
			code = http.StatusServiceUnavailable
		}
		ans.Error = err.Error()
		ans.Rows = [][]any{}
		b, _ := json.Marshal(ans)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		w.Write(append(b, '\n'))
		return
	}
	sendJSON(w, ans)
}
