package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/progress"
	"github.com/livestore-go/livestore/syncserver"
)

// exportLine is one event of an export: a JSON object per line, in log order
// per store. `livestore import` reads the same lines.
type exportLine = livestore.RecoveryEvent

const exportUsage = `Usage: livestore export [flags] [STOREID...]

Writes the events of the named stores (all stores without a STOREID) of a sync
server's storage as JSON lines, in order, each with its storeId and backendId.
` + "`livestore import`" + ` reads them back, e.g. to move stores from SQLite to PostgreSQL.
`

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var sf storageFlags
	var after int64
	var out string
	fs := newFlagSet("export", exportUsage, stderr)
	sf.register(fs)
	fs.Int64Var(&after, "after", 0, "export only the events after this seqNum")
	fs.StringVar(&out, "out", "", "write to this file instead of standard output")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if after < 0 {
		return fmt.Errorf("%w: --after must not be negative", errUsage)
	}
	st, closeFn, err := sf.openReadOnly(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	selected, err := selectStores(ctx, st, fs.Args())
	if err != nil {
		return err
	}

	var want int64
	for _, s := range selected {
		want += max(s.Head-after, 0)
	}
	bar := progress.New(stderr, want, "exporting", "events")
	write := func(w io.Writer) (int64, error) {
		return exportStores(ctx, st, selected, after, w, bar)
	}
	var total int64
	if out == "" {
		total, err = write(stdout)
	} else {
		err = writeFileAtomic(out, func(w io.Writer) (err error) {
			total, err = write(w)
			return err
		})
	}
	if err != nil {
		bar.Done("")
		return err
	}
	bar.Done(fmt.Sprintf("exported %d events of %d stores in %s", total, len(selected), progress.Seconds(bar.Elapsed())))
	return nil
}

// selectStores returns the stores named by ids, in that order, or all the
// stores of st when ids is empty.
func selectStores(ctx context.Context, st storageReader, ids []string) ([]syncserver.StoreInfo, error) {
	stores, err := st.Stores(ctx)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return stores, nil
	}
	byID := map[string]syncserver.StoreInfo{}
	for _, s := range stores {
		byID[s.StoreID] = s
	}
	selected := make([]syncserver.StoreInfo, 0, len(ids))
	for _, id := range ids {
		s, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("no store %q in the storage", id)
		}
		selected = append(selected, s)
	}
	return selected, nil
}

// exportStores writes the events of the stores after `after` to w as JSON
// lines and returns how many it wrote.
func exportStores(ctx context.Context, st storageReader, stores []syncserver.StoreInfo, after int64, w io.Writer, bar *progress.Bar) (int64, error) {
	bw := bufio.NewWriterSize(w, 1<<16)
	enc := json.NewEncoder(bw)
	var total int64
	for _, s := range stores {
		n, err := exportStore(ctx, st, s, after, enc, bar)
		total += n
		if err != nil {
			return total, fmt.Errorf("store %s: %w", s.StoreID, err)
		}
	}
	return total, bw.Flush()
}

// exportStore writes the events of s after `after`, up to the head it had
// when listed.
func exportStore(ctx context.Context, st storageReader, s syncserver.StoreInfo, after int64, enc *json.Encoder, bar *progress.Bar) (int64, error) {
	var n int64
	for after < s.Head {
		page, err := st.Read(ctx, s.StoreID, after, s.Head, 1000)
		if err != nil {
			return n, err
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			line := exportLine{
				StoreID: s.StoreID, BackendID: s.BackendID,
				SeqNum: e.SeqNum, ParentSeqNum: e.ParentSeqNum,
				Name: e.Name, Args: e.Args, ClientID: e.ClientID, SessionID: e.SessionID,
			}
			if !e.CreatedAt.IsZero() {
				line.CreatedAt = e.CreatedAt.UTC().Format(time.RFC3339Nano)
			}
			if err := enc.Encode(line); err != nil {
				return n, err
			}
			n++
		}
		bar.Add(int64(len(page)))
		after = page[len(page)-1].SeqNum
	}
	return n, nil
}

// writeFileAtomic writes path through fill: into a temporary file beside
// it, synced and then renamed over path, so that a reader (or a crash, or a
// failed export) sees the old file or the complete new one, never a part.
func writeFileAtomic(path string, fill func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("create a temporary file for %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if old, err := os.Stat(path); err == nil {
		if err := f.Chmod(old.Mode().Perm()); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := fill(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	// The rename is durable once the directory is synced.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory of %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory of %s: %w", path, err)
	}
	return nil
}
