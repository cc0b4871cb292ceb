package clientdb

import (
	"reflect"
	"testing"

	"github.com/livestore-go/livestore/eventlog"
)

func groupKeys(t *testing.T, d DB) []string {
	t.Helper()
	groups, err := d.ChangesetGroups()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, g := range groups {
		out = append(out, g.Key.String())
	}
	return out
}

func TestChangesetGroups(t *testing.T) {
	d, _ := openDB(t)
	if has, err := d.HasChangesets(); err != nil || has {
		t.Fatalf("new store HasChangesets = %v, %v", has, err)
	}
	if err := d.SaveChangeset(e1, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := d.SaveChangeset(e3, nil); err != nil {
		t.Fatal(err)
	}
	if err := d.SaveChangeset(e2c1, []byte("two")); err != nil {
		t.Fatal(err)
	}
	// Saving under a key again replaces the group.
	if err := d.SaveChangeset(e1, []byte("uno")); err != nil {
		t.Fatal(err)
	}
	groups, err := d.ChangesetGroups()
	if err != nil {
		t.Fatal(err)
	}
	want := []ChangesetGroup{{Key: e3}, {Key: e2c1, Changeset: []byte("two")}, {Key: e1, Changeset: []byte("uno")}}
	if !reflect.DeepEqual(groups, want) {
		t.Errorf("groups:\n got %+v\nwant %+v", groups, want)
	}
	if has, _ := d.HasChangesets(); !has {
		t.Error("HasChangesets = false with groups stored")
	}
	// The key includes the rebase generation.
	if err := d.DeleteChangeset(eventlog.SeqNum{Global: 3}); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteChangeset(e2c1); err != nil {
		t.Fatal(err)
	}
	if got := groupKeys(t, d); !reflect.DeepEqual(got, []string{"e3r1", "e1"}) {
		t.Errorf("after deletes: %v", got)
	}
}

func TestPruneChangesets(t *testing.T) {
	e5 := eventlog.SeqNum{Global: 5, RebaseGeneration: 1}
	cases := []struct {
		name   string
		groups []eventlog.SeqNum
		head   int64
		want   []string
	}{
		// The log is e1 e1.1 e2 e2.1 e3r1 e4r1; the first pending event
		// after head 2 is e3r1.
		{"group per commit", []eventlog.SeqNum{e1, e1c1, e2, e2c1, e3, e4}, 2, []string{"e4r1", "e3r1"}},
		{"group straddles the first pending", []eventlog.SeqNum{e1, e2, e4}, 2, []string{"e4r1", "e2"}},
		{"client-only group before it goes", []eventlog.SeqNum{e2c1, e4}, 3, []string{"e4r1"}},
		{"nothing pending", []eventlog.SeqNum{e1, e3, e4}, 4, []string{}},
		{"no group holds it", []eventlog.SeqNum{e5}, 2, []string{"e5r1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, _ := openDB(t)
			sampleLog(t, d)
			for _, k := range c.groups {
				if err := d.SaveChangeset(k, []byte(k.String())); err != nil {
					t.Fatal(err)
				}
			}
			if err := d.PruneChangesets(c.head); err != nil {
				t.Fatal(err)
			}
			if got := groupKeys(t, d); !reflect.DeepEqual(got, c.want) {
				t.Errorf("kept %v, want %v", got, c.want)
			}
		})
	}
}
