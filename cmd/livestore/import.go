package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/inspect"
	"github.com/livestore-go/livestore/progress"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// maxImportLine bounds one line of an import (one event).
const maxImportLine = 64 << 20

const importUsage = `Usage: livestore import [flags] [FILE]
       livestore import --dir DIR FILE

Appends the events of FILE (standard input without FILE or with -), JSON lines as
written by ` + "`livestore export`" + `, to a sync server's storage. Each store's events must
continue its log: events it already holds (seqNum at or below its head) are skipped
when they are the same events, so an interrupted import can be run again; an event
that differs from the one the store holds at its seqNum is an error, and nothing of
that store is appended. Nothing is appended past a bad line.

With --dir, FILE is a recovery file a store wrote when its sync server changed
identity (` + "`livestore inspect --dir DIR`" + ` lists them): its pending events, the ones no
server had confirmed, are appended to the store's eventlog as new pending events,
and the application pushes them when it next runs; events the eventlog already
holds are skipped. The application must not be running. Its next start rebuilds
the store's state from the eventlog.
`

func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var sf storageFlags
	var rename string
	var keepBackend bool
	var batchSize int
	var dir string
	fs := newFlagSet("import", importUsage, stderr)
	sf.register(fs)
	fs.StringVar(&rename, "store", "", "import into this store: for lines without a storeId, or to rename the one store of the input")
	fs.BoolVar(&keepBackend, "keep-backend-id", true, "create new stores with the backend id of the export, so that their clients keep syncing")
	fs.IntVar(&batchSize, "batch", 1000, "most events appended in one transaction")
	fs.StringVar(&dir, "dir", "", "restore the pending events of the recovery FILE into this client store directory instead")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("%w: at most one FILE", errUsage)
	}
	if dir != "" {
		if fs.NArg() != 1 || fs.Arg(0) == "-" {
			return fmt.Errorf("%w: --dir needs the recovery FILE", errUsage)
		}
		return restoreDir(ctx, dir, fs.Arg(0), stdout)
	}
	if batchSize < 1 || batchSize > syncserver.DefaultMaxBatchSize {
		return fmt.Errorf("%w: --batch must be between 1 and %d", errUsage, syncserver.DefaultMaxBatchSize)
	}
	in, closeIn, err := openImportInput(fs.Arg(0))
	if err != nil {
		return err
	}
	defer closeIn()
	st, closeFn, err := sf.open(ctx, false)
	if err != nil {
		return err
	}
	defer closeFn()
	// The input's size, when it is a file, gives the bar its end; the
	// events are counted in the summary.
	size := int64(-1)
	if fi, err := in.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	bar := progress.NewBytes(stderr, size, "importing")
	im := &importer{st: st, rename: rename, keepBackend: keepBackend, batchSize: batchSize, done: map[string]bool{}}
	err = im.run(ctx, &countingReader{r: in, bar: bar})
	im.report(bar, err, stdout, stderr)
	return err
}

// openImportInput opens the file named, or standard input for "" and "-".
func openImportInput(name string) (*os.File, func(), error) {
	if name == "" || name == "-" {
		return os.Stdin, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { _ = f.Close() }, nil
}

// report ends the bar, writes a line per store to stdout and the summary,
// marked as stopped when runErr is not nil, to stderr.
func (im *importer) report(bar *progress.Bar, runErr error, stdout, stderr io.Writer) {
	var imported, skipped int64
	for _, r := range im.reports {
		imported += r.imported
		skipped += r.skipped
	}
	summary := fmt.Sprintf("imported %d events into %d stores in %s", imported, len(im.reports), progress.Seconds(bar.Elapsed()))
	if skipped > 0 {
		summary += fmt.Sprintf(" (skipped %d already present)", skipped)
	}
	if runErr != nil {
		summary = "stopped: " + summary
	}
	// The bar goes before the per-store lines, which may share its
	// terminal; the summary comes last.
	bar.Done("")
	for _, r := range im.reports {
		fmt.Fprintf(stdout, "%s: imported %d events, skipped %d already present, head e%d\n", r.storeID, r.imported, r.skipped, r.head)
	}
	fmt.Fprintln(stderr, summary)
}

// countingReader moves a progress bar by the bytes read through it.
type countingReader struct {
	r   io.Reader
	bar *progress.Bar
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.bar.Add(int64(n))
	return n, err
}

// importer appends the lines of an export, one store at a time.
type importer struct {
	st          syncserver.Storage
	rename      string
	keepBackend bool
	batchSize   int

	cur       *storeImport
	done      map[string]bool // stores finished (lines of a store must be together)
	firstFrom string          // the first source storeId, when renaming
	reports   []*storeImport
}

type storeImport struct {
	storeID  string
	stored   int64                    // head of the store when the import started
	held     []syncserver.StoredEvent // a window of the stored events, to compare skipped lines with
	head     int64                    // last seqNum appended or batched
	lastSeen int64                    // last seqNum read, skipped or not
	batch    []syncproto.Event
	batchAt  time.Time
	imported int64
	skipped  int64
}

func (im *importer) run(ctx context.Context, in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 1<<16), maxImportLine)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		if err := im.line(ctx, raw); err != nil {
			if ferr := im.flush(ctx); ferr != nil {
				err = errors.Join(err, ferr)
			}
			return fmt.Errorf("line %d: %w", lineNo, err)
		}
	}
	if err := sc.Err(); err != nil {
		if ferr := im.flush(ctx); ferr != nil {
			err = errors.Join(err, ferr)
		}
		return fmt.Errorf("line %d: %w", lineNo+1, err)
	}
	return im.flush(ctx)
}

func (im *importer) line(ctx context.Context, raw []byte) error {
	var l exportLine
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return fmt.Errorf("not an exported event: %w", err)
	}
	switch {
	case l.Name == "":
		return errors.New("event has no name")
	case l.SeqNum < 1 || l.ParentSeqNum < 0 || l.ParentSeqNum >= l.SeqNum:
		return fmt.Errorf("event %s: bad seqNum %d / parentSeqNum %d", l.Name, l.SeqNum, l.ParentSeqNum)
	}
	createdAt := time.Now()
	if l.CreatedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, l.CreatedAt)
		if err != nil {
			return fmt.Errorf("event e%d: createdAt: %w", l.SeqNum, err)
		}
		createdAt = t
	}
	target := l.StoreID
	if im.rename != "" {
		if im.firstFrom == "" {
			im.firstFrom = l.StoreID
		} else if l.StoreID != im.firstFrom {
			return fmt.Errorf("the input holds stores %q and %q; --store renames only a single store", im.firstFrom, l.StoreID)
		}
		target = im.rename
	}
	if target == "" {
		return errors.New("event has no storeId (pass --store)")
	}
	if err := syncserver.CheckStoreID(target); err != nil {
		return err
	}
	if im.cur == nil || im.cur.storeID != target {
		if err := im.flush(ctx); err != nil {
			return err
		}
		if im.cur != nil {
			im.done[im.cur.storeID] = true
		}
		if im.done[target] {
			return fmt.Errorf("store %q appears again: the lines of a store must be together", target)
		}
		if err := im.start(ctx, target, l.BackendID); err != nil {
			return err
		}
	}
	cur := im.cur
	if l.SeqNum <= cur.lastSeen {
		return fmt.Errorf("event e%d after e%d: events must be in order", l.SeqNum, cur.lastSeen)
	}
	cur.lastSeen = l.SeqNum
	if l.SeqNum <= cur.stored {
		if err := im.sameAsHeld(ctx, l); err != nil {
			return err
		}
		cur.skipped++
		return nil
	}
	if l.ParentSeqNum != cur.head {
		return fmt.Errorf("event e%d follows e%d, but store %q ends at e%d", l.SeqNum, l.ParentSeqNum, target, cur.head)
	}
	if len(cur.batch) > 0 && (len(cur.batch) == im.batchSize || !createdAt.Equal(cur.batchAt)) {
		if err := im.flush(ctx); err != nil {
			return err
		}
	}
	if len(cur.batch) == 0 {
		cur.batchAt = createdAt
	}
	cur.batch = append(cur.batch, syncproto.Event{
		Name: l.Name, Args: l.Args, SeqNum: l.SeqNum, ParentSeqNum: l.ParentSeqNum,
		ClientID: l.ClientID, SessionID: l.SessionID,
	})
	cur.head = l.SeqNum
	return nil
}

// start begins importing into storeID, creating it with backendID when
// asked to and possible.
func (im *importer) start(ctx context.Context, storeID, backendID string) error {
	if im.keepBackend && backendID != "" {
		if cr, ok := im.st.(syncserver.StoreCreator); ok {
			if err := cr.CreateStore(ctx, storeID, backendID); err != nil {
				var conflict *syncserver.BackendIDConflictError
				if errors.As(err, &conflict) {
					return fmt.Errorf("%w (pass --keep-backend-id=false to import under the existing id; its clients then see no change)", err)
				}
				return err
			}
		}
	}
	head, err := im.st.Head(ctx, storeID)
	if err != nil {
		return err
	}
	im.cur = &storeImport{storeID: storeID, stored: head, head: head}
	im.reports = append(im.reports, im.cur)
	return nil
}

// flush appends the current batch.
func (im *importer) flush(ctx context.Context) error {
	cur := im.cur
	if cur == nil || len(cur.batch) == 0 {
		return nil
	}
	if err := im.st.Append(ctx, cur.storeID, cur.batch, cur.batchAt); err != nil {
		// Nothing of the batch was stored: report the head before it.
		cur.head = cur.batch[0].ParentSeqNum
		cur.batch = cur.batch[:0]
		return fmt.Errorf("append to %q: %w", cur.storeID, err)
	}
	cur.imported += int64(len(cur.batch))
	cur.batch = cur.batch[:0]
	return nil
}

// heldWindow is how many stored events are read at once to compare with
// the lines that would be skipped.
const heldWindow = 256

// sameAsHeld checks that the event of l is the one the current store holds
// at l's seqNum: skipping a different one would splice two histories,
// appending the rest of the input's onto the store's.
func (im *importer) sameAsHeld(ctx context.Context, l exportLine) error {
	cur := im.cur
	for len(cur.held) > 0 && cur.held[0].SeqNum < l.SeqNum {
		cur.held = cur.held[1:]
	}
	if len(cur.held) == 0 || cur.held[0].SeqNum != l.SeqNum {
		evs, err := im.st.Read(ctx, cur.storeID, l.SeqNum-1, cur.stored, heldWindow)
		if err != nil {
			return fmt.Errorf("read e%d of store %q to compare: %w", l.SeqNum, cur.storeID, err)
		}
		cur.held = evs
	}
	if len(cur.held) == 0 || cur.held[0].SeqNum != l.SeqNum {
		return fmt.Errorf("store %q has no e%d although its head is e%d", cur.storeID, l.SeqNum, cur.stored)
	}
	if diff := eventDiff(cur.held[0].Event, l); diff != "" {
		return fmt.Errorf("store %q already holds a different e%d (%s): the input is another history of the store; nothing of it was appended", cur.storeID, l.SeqNum, diff)
	}
	return nil
}

// eventDiff names the first field in which the stored event and the line
// differ, or returns "" when they are the same event. Args are compared as
// JSON values, since a storage may keep them in another spelling (PostgreSQL
// jsonb orders keys and drops blanks).
func eventDiff(held syncproto.Event, l exportLine) string {
	switch {
	case held.Name != l.Name:
		return fmt.Sprintf("name %q, the input's %q", held.Name, l.Name)
	case held.ParentSeqNum != l.ParentSeqNum:
		return fmt.Sprintf("parentSeqNum %d, the input's %d", held.ParentSeqNum, l.ParentSeqNum)
	case held.ClientID != l.ClientID:
		return fmt.Sprintf("clientId %q, the input's %q", held.ClientID, l.ClientID)
	case held.SessionID != l.SessionID:
		return fmt.Sprintf("sessionId %q, the input's %q", held.SessionID, l.SessionID)
	case !sameJSON(held.Args, l.Args):
		return "other args"
	}
	return ""
}

// sameJSON reports whether a and b hold the same JSON value; absent args
// and null are the same.
func sameJSON(a, b json.RawMessage) bool {
	decode := func(raw json.RawMessage) (any, bool) {
		if len(bytes.TrimSpace(raw)) == 0 {
			return nil, true
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		return v, true
	}
	va, okA := decode(a)
	vb, okB := decode(b)
	if !okA || !okB {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(va, vb)
}

// restoreDir re-commits the pending events of a recovery file into the
// client store directory dir.
func restoreDir(ctx context.Context, dir, file string, stdout io.Writer) error {
	evs, err := livestore.ReadRecoveryFile(file)
	if err != nil {
		return err
	}
	res, err := inspect.RestorePending(ctx, dir, evs)
	if err != nil {
		return err
	}
	switch {
	case res.Added == 0:
		fmt.Fprintf(stdout, "restored 0 events into %s", dir)
	case res.Added == 1:
		fmt.Fprintf(stdout, "restored 1 pending event into %s as %s", dir, res.First)
	default:
		fmt.Fprintf(stdout, "restored %d pending events into %s as %s..%s", res.Added, dir, res.First, res.Last)
	}
	fmt.Fprintf(stdout, " (%d already in its eventlog, %d confirmed by the old server left out)\n", res.Skipped, res.Confirmed)
	if res.Added > 0 {
		fmt.Fprintln(stdout, "The application rebuilds the store's state from its eventlog when it next opens it, and pushes the events to its sync server.")
	}
	return nil
}
