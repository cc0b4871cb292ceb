package livestore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/memsync"
)

// keyApp is a schema for invalidation by row: items keyed by text (with a
// unique column), nums keyed by integer, pairs keyed by two columns, and a
// client document table. One event, keyOp, runs one write chosen by Kind.
type keyApp struct {
	items  *livestore.Table
	nums   *livestore.Table
	pairs  *livestore.Table
	ui     *livestore.ClientDocumentTable[uiState]
	op     *livestore.EventDef[keyOp]
	schema *livestore.Schema
}

type keyOp struct {
	Kind string `json:"kind"`
	ID   string `json:"id,omitempty"`
	To   string `json:"to,omitempty"`
	V    int    `json:"v,omitempty"`
	U    *int   `json:"u,omitempty"`
	N    int64  `json:"n,omitempty"`
}

type keyItem struct {
	ID string `db:"id" json:"id"`
	V  int    `db:"v" json:"v"`
	U  *int   `db:"u" json:"u"`
}

type keyNum struct {
	ID    int64  `db:"id" json:"id"`
	Label string `db:"label" json:"label"`
}

type keyPair struct {
	A string `db:"a" json:"a"`
	B int64  `db:"b" json:"b"`
	V int    `db:"v" json:"v"`
}

type countOf struct {
	Count int `db:"count" json:"count"`
}

func newKeyApp(t testing.TB) *keyApp {
	t.Helper()
	a := &keyApp{
		items: livestore.NewTable("items", livestore.Text("id").PrimaryKey(), livestore.Integer("v").Default(0),
			livestore.Integer("u").Nullable()).WithUniqueIndex("items_u", "u"),
		nums:  livestore.NewTable("nums", livestore.Integer("id").PrimaryKey(), livestore.Text("label").Default("")),
		pairs: livestore.NewTable("pairs", livestore.Text("a").PrimaryKey(), livestore.Integer("b").PrimaryKey(), livestore.Integer("v").Default(0)),
		ui:    livestore.ClientDocument("uiState", uiState{Filter: "all"}),
		op:    livestore.Synced[keyOp]("v1.KeyOp"),
	}
	var err error
	a.schema, err = livestore.NewSchema(livestore.SchemaDef{
		Tables:        []*livestore.Table{a.items, a.nums, a.pairs, a.ui.Table},
		Events:        []livestore.Definition{a.op},
		Materializers: []livestore.Materializer{livestore.Materialize(a.op, a.materialize)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var errKeyOpFails = errors.New("this operation fails")

func (a *keyApp) materialize(_ *livestore.MaterializeContext, o keyOp) ([]livestore.Statement, error) {
	one := func(st livestore.Statement) ([]livestore.Statement, error) { return []livestore.Statement{st}, nil }
	switch o.Kind {
	case "put": // builder upsert by key
		return one(a.items.Insert(livestore.Values{"id": o.ID, "v": o.V}).OnConflict().Update(livestore.Values{"v": o.V}))
	case "set":
		return one(a.items.Update(livestore.Values{"v": o.V}).Where(livestore.Eq("id", o.ID)))
	case "del":
		return one(a.items.Delete().Where(livestore.Eq("id", o.ID)))
	case "rekey": // raw SQL changing the key column, replacing a row holding the new key
		return one(livestore.SQL("UPDATE OR REPLACE items SET id = ? WHERE id = ?", o.To, o.ID))
	case "replace": // raw SQL whose unique column may delete another row
		var u any
		if o.U != nil {
			u = int64(*o.U)
		}
		return one(livestore.SQL("INSERT OR REPLACE INTO items (id, v, u) VALUES (?, ?, ?)", o.ID, o.V, u))
	case "bulk":
		return one(livestore.SQL("UPDATE items SET v = v + 1 WHERE v % 3 = ?", o.V%3))
	case "purge":
		return one(livestore.SQL("DELETE FROM items WHERE v > ?", o.V))
	case "clear":
		return one(livestore.SQL("DELETE FROM items"))
	case "num":
		return one(a.nums.Insert(livestore.Values{"id": o.N, "label": o.ID}).OnConflict().Replace())
	case "numdel":
		return one(a.nums.Delete().Where(livestore.Eq("id", o.N)))
	case "numbump":
		return one(livestore.SQL("UPDATE OR REPLACE nums SET id = id + 3 WHERE id = ?", o.N))
	case "pair":
		return one(a.pairs.Insert(livestore.Values{"a": o.ID, "b": o.N, "v": o.V}).OnConflict().Update(livestore.Values{"v": o.V}))
	case "pairdel":
		return one(livestore.SQL("DELETE FROM pairs WHERE b = ?", o.N))
	case "fail":
		return []livestore.Statement{a.items.Update(livestore.Values{"v": o.V}).Where(livestore.Eq("id", o.ID))}, errKeyOpFails
	}
	return nil, fmt.Errorf("unknown op %q", o.Kind)
}

// runCounts maps the labels of the store's reactive nodes to their run
// counts.
func runCounts(s *livestore.Store) map[string]int64 {
	out := map[string]int64{}
	for _, n := range s.ReactiveNodes() {
		out[n.Label] = n.RunCount
	}
	return out
}

// TestKeyPinnedQueriesRerunByRow commits single writes and checks which
// live queries re-ran: a query pinned to keys re-runs only when a row with
// one of its keys changed, every other query on every write to its table.
// A synced store reads the rows from the changeset it keeps for rebases; a
// store without sync captures one when the table has enough pinned queries
// (lowered here to one).
func TestKeyPinnedQueriesRerunByRow(t *testing.T) {
	t.Run("local", func(t *testing.T) {
		a := newKeyApp(t)
		s := openStore(t, a.schema, t.TempDir())
		livestore.SetMinRowPins(s, 1)
		keyPinnedReruns(t, a, s)
	})
	t.Run("synced", func(t *testing.T) {
		a := newKeyApp(t)
		link := memsync.NewServer().NewLink()
		link.SetOnline(false)
		keyPinnedReruns(t, a, openSynced(t, a.schema, t.TempDir(), syncOpts(link)))
	})
}

func keyPinnedReruns(t *testing.T, a *keyApp, s *livestore.Store) {
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		mustCommit(t, s, a.op.New(keyOp{Kind: "put", ID: fmt.Sprint("k", i), V: i}))
	}
	queries := map[string]livestore.Statement{
		"k0":  a.items.Where(livestore.Eq("id", "k0")),
		"k1":  a.items.Where(livestore.Eq("id", "k1")),
		"k2":  a.items.Where(livestore.Eq("id", "k2")),
		"k9":  a.items.Where(livestore.Eq("id", "k9")),
		"in":  a.items.Where(livestore.In("id", "k3", "k4")),
		"all": a.items.Select().OrderBy("id"),
		"raw": livestore.SQL("SELECT * FROM items WHERE id = ?", "k0"),
		"u":   a.items.Where(livestore.Eq("u", 1)),
		"doc": a.ui.Table.Where(livestore.Eq("id", "d")),
		"num": a.nums.Where(livestore.Eq("id", 1)),
	}
	live := map[string]*livestore.DBQuery[[]map[string]any]{}
	for label, st := range queries {
		q := livestore.QueryDB[map[string]any](st, label)
		un, err := livestore.Subscribe(ctx, s, q, func([]map[string]any) {})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(un)
		live[label] = q
	}
	cases := []struct {
		name  string
		op    keyOp
		reran []string
	}{
		{"update k1", keyOp{Kind: "set", ID: "k1", V: 10}, []string{"k1", "all", "raw", "u"}},
		{"update k4", keyOp{Kind: "set", ID: "k4", V: 10}, []string{"in", "all", "raw", "u"}},
		{"insert k9", keyOp{Kind: "put", ID: "k9", V: 1}, []string{"k9", "all", "raw", "u"}},
		{"delete k0", keyOp{Kind: "del", ID: "k0"}, []string{"k0", "all", "raw", "u"}},
		{"rekey k2 to k3", keyOp{Kind: "rekey", ID: "k2", To: "k3"}, []string{"k2", "in", "all", "raw", "u"}},
		{"update nothing", keyOp{Kind: "set", ID: "nope", V: 1}, []string{"all", "raw", "u"}},
		{"write nums", keyOp{Kind: "num", N: 2, ID: "two"}, []string{}},
		{"write nums key", keyOp{Kind: "num", N: 1, ID: "one"}, []string{"num"}},
	}
	for _, c := range cases {
		before := runCounts(s)
		mustCommit(t, s, a.op.New(c.op))
		for _, q := range live {
			if _, err := livestore.Get(ctx, s, q); err != nil {
				t.Fatal(err)
			}
		}
		after := runCounts(s)
		want := map[string]bool{}
		for _, l := range c.reran {
			want[l] = true
		}
		for label := range live {
			if got := after[label] - before[label]; got != 0 != want[label] {
				t.Errorf("%s: query %s ran %d times, want re-run %v", c.name, label, got, want[label])
			}
		}
	}
	// A rebuild re-runs everything.
	before := runCounts(s)
	if err := s.Rematerialize(ctx); err != nil {
		t.Fatal(err)
	}
	for _, q := range live {
		if _, err := livestore.Get(ctx, s, q); err != nil {
			t.Fatal(err)
		}
	}
	after := runCounts(s)
	for label := range live {
		if after[label] == before[label] {
			t.Errorf("rematerialize: query %s did not re-run", label)
		}
	}
}

// TestFewPinnedQueriesInvalidateByTable checks that in a store without
// sync, a table with fewer pinned queries than the threshold is
// invalidated as a whole (no changeset is captured for it).
func TestFewPinnedQueriesInvalidateByTable(t *testing.T) {
	a := newKeyApp(t)
	s := openStore(t, a.schema, t.TempDir())
	ctx := context.Background()
	mustCommit(t, s, a.op.New(keyOp{Kind: "put", ID: "k1", V: 1}), a.op.New(keyOp{Kind: "put", ID: "k2", V: 2}))
	q1 := livestore.QueryDB[keyItem](a.items.Where(livestore.Eq("id", "k1")), "k1")
	q2 := livestore.QueryDB[keyItem](a.items.Where(livestore.Eq("id", "k2")), "k2")
	for _, q := range []*livestore.DBQuery[[]keyItem]{q1, q2} {
		un, err := livestore.Subscribe(ctx, s, q, func([]keyItem) {})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(un)
	}
	before := runCounts(s)
	mustCommit(t, s, a.op.New(keyOp{Kind: "set", ID: "k1", V: 5}))
	for _, q := range []*livestore.DBQuery[[]keyItem]{q1, q2} {
		if _, err := livestore.Get(ctx, s, q); err != nil {
			t.Fatal(err)
		}
	}
	after := runCounts(s)
	if after["k1"] == before["k1"] || after["k2"] == before["k2"] {
		t.Fatalf("runs before %v, after %v: want both re-run", before, after)
	}
}
