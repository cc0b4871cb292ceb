package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/livestore-go/livestore/inspect"
)

const inspectUsage = `Usage: livestore inspect [flags] [STOREID]

Without STOREID, lists the stores of a sync server's storage; with it, summarises
that store (head, events by name). With --dir, summarises a client store directory
(its eventlog, sync state and tables) and lists its recovery files, with their
events and pending events (restore them with ` + "`livestore import --dir`" + `); the
owning program may keep running.
`

func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var sf storageFlags
	var dir string
	var asJSON bool
	fs := newFlagSet("inspect", inspectUsage, stderr)
	sf.register(fs)
	fs.StringVar(&dir, "dir", "", "a client store directory (holding store.db) to inspect instead of the sync storage")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("%w: at most one STOREID", errUsage)
	}
	if dir != "" {
		if fs.NArg() > 0 {
			return fmt.Errorf("%w: --dir takes no STOREID", errUsage)
		}
		return inspectDir(ctx, dir, asJSON, stdout)
	}
	st, closeFn, err := sf.openReadOnly(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	if fs.NArg() == 0 {
		stores, err := st.Stores(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(stdout, stores)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STORE\tHEAD\tBACKEND ID\tCREATED")
		for _, s := range stores {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", s.StoreID, s.Head, s.BackendID, s.CreatedAt.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	}
	sum, err := summarizeStore(ctx, st, fs.Arg(0))
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, sum)
	}
	fmt.Fprintf(stdout, "store      %s\nbackend id %s\nhead       e%d\nevents     %d\n", sum.StoreID, sum.BackendID, sum.Head, sum.Events)
	if sum.Events > 0 {
		fmt.Fprintf(stdout, "first      %s\nlast       %s\n", sum.First.Format(time.RFC3339), sum.Last.Format(time.RFC3339))
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nEVENT\tCOUNT\tCLIENTS")
	for _, n := range sum.Names {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", n.Name, n.Count, n.Clients)
	}
	return tw.Flush()
}

// storeSummary describes one store of a sync storage.
type storeSummary struct {
	StoreID   string       `json:"storeId"`
	BackendID string       `json:"backendId"`
	Head      int64        `json:"head"`
	Events    int64        `json:"events"`
	First     time.Time    `json:"first,omitzero"`
	Last      time.Time    `json:"last,omitzero"`
	Names     []nameCounts `json:"names"`
}

type nameCounts struct {
	Name    string `json:"name"`
	Count   int64  `json:"count"`
	Clients int    `json:"clients"` // distinct clientIds
}

// summarizeStore reads every event of storeID up to its current head.
func summarizeStore(ctx context.Context, st storageReader, storeID string) (storeSummary, error) {
	stores, err := st.Stores(ctx)
	if err != nil {
		return storeSummary{}, err
	}
	sum := storeSummary{StoreID: storeID, Names: []nameCounts{}}
	found := false
	for _, s := range stores {
		if s.StoreID == storeID {
			sum.BackendID, sum.Head, found = s.BackendID, s.Head, true
		}
	}
	if !found {
		return storeSummary{}, fmt.Errorf("no store %q in the storage", storeID)
	}
	counts := map[string]*nameCounts{}
	clients := map[string]map[string]bool{}
	after := int64(0)
	for after < sum.Head {
		page, err := st.Read(ctx, storeID, after, sum.Head, 1000)
		if err != nil {
			return storeSummary{}, err
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			sum.Events++
			if sum.First.IsZero() {
				sum.First = e.CreatedAt.UTC()
			}
			sum.Last = e.CreatedAt.UTC()
			c := counts[e.Name]
			if c == nil {
				c = &nameCounts{Name: e.Name}
				counts[e.Name] = c
				clients[e.Name] = map[string]bool{}
			}
			c.Count++
			clients[e.Name][e.ClientID] = true
		}
		after = page[len(page)-1].SeqNum
	}
	for name, c := range counts {
		c.Clients = len(clients[name])
		sum.Names = append(sum.Names, *c)
	}
	sort.Slice(sum.Names, func(i, j int) bool {
		if sum.Names[i].Count != sum.Names[j].Count {
			return sum.Names[i].Count > sum.Names[j].Count
		}
		return sum.Names[i].Name < sum.Names[j].Name
	})
	return sum, nil
}

func inspectDir(ctx context.Context, dir string, asJSON bool, stdout io.Writer) error {
	d, err := inspect.Open(ctx, dir)
	if err != nil {
		return err
	}
	defer d.Close()
	sum, err := d.Summary(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, sum)
	}
	backend := sum.BackendID
	if backend == "" {
		backend = "(never synced)"
	}
	fmt.Fprintf(stdout, "store dir   %s\nhead        %s\nevents      %d (%d client-only)\npending     %d\nsynced to   e%d\nbackend id  %s\n",
		sum.Dir, sum.Head, sum.Events, sum.ClientOnly, sum.Pending, sum.SyncHead, backend)
	if sum.StaleState {
		fmt.Fprintln(stdout, "state       stale: restored events are rebuilt into it when the application next opens the store")
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nTABLE\tROWS")
	for _, t := range sum.Tables {
		fmt.Fprintf(tw, "%s\t%d\n", t.Name, t.Rows)
	}
	if len(sum.RecoveryFiles) > 0 {
		fmt.Fprintln(tw, "\nRECOVERY FILE\tEVENTS\tPENDING")
		for _, f := range sum.RecoveryFiles {
			fmt.Fprintf(tw, "%s\t%d\t%d\n", filepath.Base(f.Path), f.Events, f.Pending)
			if f.Error != "" {
				fmt.Fprintf(tw, "  unreadable: %s\t\t\n", f.Error)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nRestore the pending events of a file with: livestore import --dir %s FILE\n", dir)
	}
	return tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
