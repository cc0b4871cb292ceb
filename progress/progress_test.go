package progress_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/creack/pty"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/progress"
)

type note struct {
	ID string `json:"id"`
}

// schema returns a schema whose notes table has the given extra column, so
// that changing it makes Open rebuild state.
func schema(t *testing.T, extra string) *livestore.Schema {
	t.Helper()
	notes := livestore.NewTable("notes", livestore.Text("id").PrimaryKey(), livestore.Text(extra).Nullable())
	added := livestore.Synced[note]("v1.NoteAdded")
	s, err := livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{notes},
		Events: []livestore.Definition{added},
		Materializers: []livestore.Materializer{
			livestore.Materialize(added, func(_ *livestore.MaterializeContext, e note) ([]livestore.Statement, error) {
				return []livestore.Statement{notes.Insert(livestore.Values{"id": e.ID})}, nil
			}),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// storeWithEvents writes n events into a new store directory.
func storeWithEvents(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	s, err := livestore.Open(ctx, schema(t, "a"), livestore.Options{Dir: dir, Durability: livestore.DurabilityProcess})
	if err != nil {
		t.Fatal(err)
	}
	added := livestore.Synced[note]("v1.NoteAdded")
	for i := 0; i < n; i += 500 {
		var evs []livestore.Event
		for j := i; j < min(i+500, n); j++ {
			evs = append(evs, added.New(note{ID: fmt.Sprint(j)}))
		}
		if err := s.Commit(ctx, evs...); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// reopenChanged opens dir with a changed table, which rebuilds state,
// reporting to w.
func reopenChanged(t *testing.T, dir string, w io.Writer) {
	t.Helper()
	s, err := livestore.Open(context.Background(), schema(t, "b"), livestore.Options{Dir: dir, OnRematerialize: progress.Rematerialize(w)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// A rebuild of state on a terminal draws a bar, then the summary line.
func TestRematerializeOnTerminal(t *testing.T) {
	dir := storeWithEvents(t, 3000)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	var screen bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		io.Copy(&screen, ptmx)
	}()
	if !progress.IsTerminal(tty) {
		t.Fatal("a pseudo-terminal is not taken for a terminal")
	}
	reopenChanged(t, dir, tty)
	tty.Close()
	<-read
	ptmx.Close()
	s := screen.String()
	for _, want := range []string{"rebuilding state", "events/", "/3000", "[0s:", "\r", "rebuilt state from 3000 events in "} {
		if !strings.Contains(s, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, s)
		}
	}
	if strings.Count(s, "rebuilt state") != 1 {
		t.Errorf("summary written %d times:\n%q", strings.Count(s, "rebuilt state"), s)
	}
}

// Without a terminal a rebuild writes one line.
func TestRematerializeWithoutTerminal(t *testing.T) {
	dir := storeWithEvents(t, 3000)
	var out bytes.Buffer
	if progress.IsTerminal(&out) {
		t.Fatal("a buffer is taken for a terminal")
	}
	reopenChanged(t, dir, &out)
	if !regexp.MustCompile(`^rebuilt state from 3000 events in \d+\.\ds\n$`).MatchString(out.String()) {
		t.Fatalf("output %q", out.String())
	}
	// A regular file is no terminal either.
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if progress.IsTerminal(f) {
		t.Fatal("a file is taken for a terminal")
	}
}
