package clientdb

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/sqlite"
)

// openDB opens a new database file with the bookkeeping tables created.
func openDB(t *testing.T) (DB, *sqlite.Conn) {
	t.Helper()
	c, err := sqlite.Open(filepath.Join(t.TempDir(), "store.db"), sqlite.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	d := On(c)
	if err := d.Create(); err != nil {
		t.Fatal(err)
	}
	return d, c
}

func TestCreateIsIdempotent(t *testing.T) {
	d, c := openDB(t)
	if err := d.WriteSyncStatus(eventlog.SyncStatus{Head: 7, BackendID: "b1"}); err != nil {
		t.Fatal(err)
	}
	if err := d.Create(); err != nil {
		t.Fatalf("second Create: %v", err)
	}
	rows, _, err := c.QueryInt64("SELECT count(*) FROM __livestore_sync_status")
	if err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("sync status rows = %d, want 1", rows)
	}
	st, err := d.ReadSyncStatus()
	if err != nil {
		t.Fatal(err)
	}
	if st != (eventlog.SyncStatus{Head: 7, BackendID: "b1"}) {
		t.Errorf("sync status after a second Create = %+v, want it kept", st)
	}
}

func TestProbe(t *testing.T) {
	dir := t.TempDir()
	c, err := sqlite.Open(filepath.Join(dir, "empty.db"), sqlite.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := On(c)
	p, err := d.Probe()
	if err != nil {
		t.Fatal(err)
	}
	if p != (Probe{}) {
		t.Errorf("empty database: %+v", p)
	}
	if err := d.Create(); err != nil {
		t.Fatal(err)
	}
	if p, err = d.Probe(); err != nil {
		t.Fatal(err)
	}
	if p != (Probe{Tables: 6, Meta: true, Eventlog: true}) {
		t.Errorf("created store: %+v", p)
	}

	pc, err := sqlite.Open(filepath.Join(dir, "partial.db"), sqlite.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := pc.Exec("CREATE TABLE eventlog (x); CREATE TABLE other (x)"); err != nil {
		t.Fatal(err)
	}
	if p, err = On(pc).Probe(); err != nil {
		t.Fatal(err)
	}
	if p != (Probe{Tables: 2}) {
		t.Errorf("eventlog without sync status: %+v", p)
	}

	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte("this is not a SQLite database, not even close to one, at all........"), 0o644); err != nil {
		t.Fatal(err)
	}
	jc, err := sqlite.Open(junk, sqlite.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer jc.Close()
	if _, err := On(jc).Probe(); !sqlite.IsNotADatabase(err) {
		t.Errorf("probe of a text file: %v, want not-a-database", err)
	}
}

func TestMeta(t *testing.T) {
	d, _ := openDB(t)
	m, err := d.ReadMeta()
	if err != nil {
		t.Fatal(err)
	}
	if m != (Meta{}) {
		t.Errorf("new store meta = %+v", m)
	}
	want := Meta{ClientID: "abc123", FormatVersion: "1"}
	if err := d.WriteMeta(want); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteMeta(want); err != nil {
		t.Fatalf("rewrite: %v", err)
	}
	if m, err = d.ReadMeta(); err != nil || m != want {
		t.Errorf("ReadMeta = %+v, %v; want %+v", m, err, want)
	}
}

func TestSyncStatusStoresNoBackendAsNull(t *testing.T) {
	d, c := openDB(t)
	st, err := d.ReadSyncStatus()
	if err != nil || st != (eventlog.SyncStatus{}) {
		t.Fatalf("new store: %+v, %v", st, err)
	}
	if err := d.WriteSyncStatus(eventlog.SyncStatus{Head: 3, BackendID: "b"}); err != nil {
		t.Fatal(err)
	}
	if st, _ = d.ReadSyncStatus(); st != (eventlog.SyncStatus{Head: 3, BackendID: "b"}) {
		t.Errorf("after write: %+v", st)
	}
	if err := d.WriteSyncStatus(eventlog.SyncStatus{Head: 4}); err != nil {
		t.Fatal(err)
	}
	nulls, _, err := c.QueryInt64("SELECT count(*) FROM __livestore_sync_status WHERE backendId IS NULL AND head = 4")
	if err != nil {
		t.Fatal(err)
	}
	if nulls != 1 {
		t.Errorf("an empty backend id is not stored as NULL")
	}
}

func TestTableRecords(t *testing.T) {
	d, c := openDB(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	if err := d.RecordTable("todos", 11, at); err != nil {
		t.Fatal(err)
	}
	if err := d.RecordTable("users", 22, at); err != nil {
		t.Fatal(err)
	}
	if err := d.RecordEventDef("v1.TodoCreated", 33, at); err != nil {
		t.Fatal(err)
	}
	if err := d.SaveChangeset(eventlog.SeqNum{Global: 1}, []byte{1}); err != nil {
		t.Fatal(err)
	}
	got, err := d.TableHashes()
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"todos": 11, "users": 22}; !reflect.DeepEqual(got, want) {
		t.Errorf("TableHashes = %v, want %v", got, want)
	}
	var stamp string
	if err := c.Query("SELECT updatedAt FROM __livestore_schema WHERE tableName = 'todos'", nil, func(r *sqlite.Row) error {
		stamp = r.Text(0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if stamp != "2026-01-02T02:04:05Z" {
		t.Errorf("updatedAt = %q, want UTC RFC 3339", stamp)
	}

	if err := d.MarkStateStale(at); err != nil {
		t.Fatal(err)
	}
	got, _ = d.TableHashes()
	if want := map[string]int64{"todos": 0, "users": 0, StaleMarker: 0}; !reflect.DeepEqual(got, want) {
		t.Errorf("after MarkStateStale: %v, want %v", got, want)
	}

	if err := d.ForgetState(); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"__livestore_schema", "__livestore_schema_event_defs", "__livestore_session_changeset"} {
		n, _, err := c.QueryInt64("SELECT count(*) FROM " + table)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s holds %d rows after ForgetState", table, n)
		}
	}
}

// ev makes an event numbered seq after parent.
func ev(seq, parent eventlog.SeqNum, name string) eventlog.Event {
	return eventlog.Event{SeqNum: seq, ParentSeqNum: parent, Name: name,
		Args: json.RawMessage(`{"n":"` + seq.String() + `"}`), ClientID: "c1", SessionID: "s1", SchemaHash: 42}
}

var (
	e1   = eventlog.SeqNum{Global: 1}
	e1c1 = eventlog.SeqNum{Global: 1, Client: 1}
	e2   = eventlog.SeqNum{Global: 2}
	e2c1 = eventlog.SeqNum{Global: 2, Client: 1}
	e3   = eventlog.SeqNum{Global: 3, RebaseGeneration: 1}
	e4   = eventlog.SeqNum{Global: 4, RebaseGeneration: 1}
)

// sampleLog is e1 e1.1 e2 e2.1 e3r1 e4r1, confirmed up to e2.
func sampleLog(t *testing.T, d DB) []eventlog.Event {
	t.Helper()
	evs := []eventlog.Event{
		ev(e1, eventlog.Root, "a"), ev(e1c1, e1, "local"), ev(e2, e1c1, "b"),
		ev(e2c1, e2, "local"), ev(e3, e2c1, "a"), ev(e4, e3, "b"),
	}
	evs[0].SyncMetadata = json.RawMessage(`{"createdAt":"2026-01-01T00:00:00Z"}`)
	for i := range evs {
		if err := d.Append(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.WriteSyncStatus(eventlog.SyncStatus{Head: 2, BackendID: "b"}); err != nil {
		t.Fatal(err)
	}
	return evs
}

func scanAll(t *testing.T, scan func(fn func(eventlog.Event) error) error) []eventlog.Event {
	t.Helper()
	var out []eventlog.Event
	if err := scan(func(e eventlog.Event) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func seqs(evs []eventlog.Event) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.SeqNum.String())
	}
	return out
}

func TestAppendScanHead(t *testing.T) {
	d, _ := openDB(t)
	head, err := d.Head()
	if err != nil || head != eventlog.Root {
		t.Fatalf("empty log head = %s, %v", head, err)
	}
	evs := sampleLog(t, d)
	all := scanAll(t, func(fn func(eventlog.Event) error) error { return d.Scan(eventlog.Root, 0, fn) })
	if !reflect.DeepEqual(all, evs) {
		t.Errorf("Scan from the root:\n got %+v\nwant %+v", all, evs)
	}
	if head, _ = d.Head(); head != e4 {
		t.Errorf("Head = %s, want %s", head, e4)
	}
	cases := []struct {
		name string
		scan func(fn func(eventlog.Event) error) error
		want []string
	}{
		{"after e1", func(fn func(eventlog.Event) error) error { return d.Scan(e1, 0, fn) }, []string{"e1.1", "e2", "e2.1", "e3r1", "e4r1"}},
		{"after e1, 2", func(fn func(eventlog.Event) error) error { return d.Scan(e1, 2, fn) }, []string{"e1.1", "e2"}},
		{"after e2 ignores generation", func(fn func(eventlog.Event) error) error {
			return d.Scan(eventlog.SeqNum{Global: 2, RebaseGeneration: 5}, 0, fn)
		}, []string{"e2.1", "e3r1", "e4r1"}},
		{"range (e1.1, e3]", func(fn func(eventlog.Event) error) error { return d.ScanRange(e1c1, e3, fn) }, []string{"e2", "e2.1", "e3r1"}},
		{"empty range", func(fn func(eventlog.Event) error) error { return d.ScanRange(e3, e3, fn) }, []string{}},
	}
	for _, c := range cases {
		if got := seqs(scanAll(t, c.scan)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	dup := ev(e2, e1c1, "again")
	if err := d.Append(&dup); err == nil {
		t.Error("appending a sequence number the log holds succeeded")
	}
	noArgs := ev(eventlog.SeqNum{Global: 5}, e4, "c")
	noArgs.Args = nil
	if err := d.Append(&noArgs); err != nil {
		t.Fatal(err)
	}
	last := scanAll(t, func(fn func(eventlog.Event) error) error { return d.Scan(e4, 0, fn) })
	if len(last) != 1 || string(last[0].Args) != "{}" || last[0].SyncMetadata != nil {
		t.Errorf("event without args reads back as %+v", last)
	}
}

func TestCounts(t *testing.T) {
	d, _ := openDB(t)
	sampleLog(t, d)
	n, err := d.Count()
	if err != nil || n != 6 {
		t.Errorf("Count = %d, %v; want 6", n, err)
	}
	counts, err := d.Counts(2)
	if err != nil {
		t.Fatal(err)
	}
	if counts != (Counts{Events: 6, Pending: 2, ClientOnly: 2}) {
		t.Errorf("Counts(2) = %+v", counts)
	}
	for head, want := range map[int64]int64{0: 4, 2: 2, 3: 1, 4: 0} {
		if n, err := d.PendingCount(head); err != nil || n != want {
			t.Errorf("PendingCount(%d) = %d, %v; want %d", head, n, err, want)
		}
	}
	// Client-only e2.1 counts after e1 but not after e2.
	for global, want := range map[int64]int64{1: 4, 2: 2, 4: 0} {
		if n, err := d.CountAfter(global); err != nil || n != want {
			t.Errorf("CountAfter(%d) = %d, %v; want %d", global, n, err, want)
		}
	}
}

func TestPendingBatch(t *testing.T) {
	d, _ := openDB(t)
	sampleLog(t, d)
	cases := []struct {
		after int64
		limit int
		want  []string
	}{
		{2, 10, []string{"e3r1", "e4r1"}},
		{2, 1, []string{"e3r1"}},
		{3, 10, []string{"e4r1"}},
		{0, 10, []string{"e1", "e2", "e3r1", "e4r1"}},
		{4, 10, []string{}},
	}
	for _, c := range cases {
		batch, err := d.PendingBatch(c.after, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		if got := seqs(batch); !reflect.DeepEqual(got, c.want) {
			t.Errorf("PendingBatch(%d, %d) = %v, want %v", c.after, c.limit, got, c.want)
		}
	}
}

func TestSetSyncMetadataAndDelete(t *testing.T) {
	d, _ := openDB(t)
	sampleLog(t, d)
	meta := json.RawMessage(`{"createdAt":"2026-02-02T00:00:00Z"}`)
	if err := d.SetSyncMetadata(e3, meta); err != nil {
		t.Fatal(err)
	}
	// Another generation of the same position is another event.
	if err := d.SetSyncMetadata(eventlog.SeqNum{Global: 4}, meta); err != nil {
		t.Fatal(err)
	}
	got := scanAll(t, func(fn func(eventlog.Event) error) error { return d.ScanRange(e2c1, e4, fn) })
	if len(got) != 2 || string(got[0].SyncMetadata) != string(meta) || got[1].SyncMetadata != nil {
		t.Errorf("after SetSyncMetadata(e3r1): %+v", got)
	}
	if err := d.DeleteAfter(e2); err != nil {
		t.Fatal(err)
	}
	rest := scanAll(t, func(fn func(eventlog.Event) error) error { return d.Scan(eventlog.Root, 0, fn) })
	if want := []string{"e1", "e1.1", "e2"}; !reflect.DeepEqual(seqs(rest), want) {
		t.Errorf("after DeleteAfter(e2): %v, want %v", seqs(rest), want)
	}
	if err := d.DeleteEvents(); err != nil {
		t.Fatal(err)
	}
	if n, _ := d.Count(); n != 0 {
		t.Errorf("%d events after DeleteEvents", n)
	}
}

func TestPage(t *testing.T) {
	d, _ := openDB(t)
	sampleLog(t, d)
	type row struct {
		Seq       string
		Confirmed bool
	}
	read := func(q PageQuery) []row {
		t.Helper()
		out := []row{}
		if err := d.Page(q, func(e eventlog.Event, confirmed bool) error {
			out = append(out, row{e.SeqNum.String(), confirmed})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	cases := []struct {
		name string
		q    PageQuery
		want []row
	}{
		{"all", PageQuery{}, []row{{"e1", true}, {"e1.1", false}, {"e2", true}, {"e2.1", false}, {"e3r1", false}, {"e4r1", false}}},
		{"after e1.1, 2", PageQuery{After: e1c1, Limit: 2}, []row{{"e2", true}, {"e2.1", false}}},
		{"from e2 to e3", PageQuery{From: &e2, To: &e3}, []row{{"e2", true}, {"e2.1", false}, {"e3r1", false}}},
		{"name", PageQuery{Name: "b"}, []row{{"e2", true}, {"e4r1", false}}},
		{"confirmed", PageQuery{Confirmation: OnlyConfirmed}, []row{{"e1", true}, {"e2", true}}},
		{"pending", PageQuery{Confirmation: OnlyPending}, []row{{"e3r1", false}, {"e4r1", false}}},
		{"pending named a", PageQuery{Confirmation: OnlyPending, Name: "a"}, []row{{"e3r1", false}}},
	}
	for _, c := range cases {
		if got := read(c.q); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
