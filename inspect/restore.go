package inspect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/livestore-go/livestore"
	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/clientdb"
	"github.com/livestore-go/livestore/internal/flock"
	"github.com/livestore-go/livestore/internal/sqlite"
)

// RecoveryFile describes one recovery file of a store directory (see
// [livestore.RecoveryFiles]).
type RecoveryFile struct {
	Path string `json:"path"`
	// Events counts the events of the file.
	Events int `json:"events"`
	// Pending counts the events no sync server had confirmed when the file
	// was written: those [RestorePending] commits again.
	Pending int `json:"pending"`
	// Error says why the file could not be read; the counts are then those
	// of the lines before the fault.
	Error string `json:"error,omitempty"`
}

// RecoveryFiles lists the recovery files in dir, oldest first, with their
// event counts. A file that cannot be read is listed with its Error.
func RecoveryFiles(dir string) ([]RecoveryFile, error) {
	paths, err := livestore.RecoveryFiles(dir)
	if err != nil {
		return nil, err
	}
	out := make([]RecoveryFile, 0, len(paths))
	for _, p := range paths {
		evs, err := livestore.ReadRecoveryFile(p)
		f := RecoveryFile{Path: p, Events: len(evs)}
		for _, e := range evs {
			if e.Pending() {
				f.Pending++
			}
		}
		if err != nil {
			f.Error = err.Error()
		}
		out = append(out, f)
	}
	return out, nil
}

// Restored reports what [RestorePending] did.
type Restored struct {
	// Added counts the pending events appended to the eventlog.
	Added int `json:"added"`
	// Skipped counts the pending events the eventlog already held.
	Skipped int `json:"skipped"`
	// Confirmed counts the events of the input a sync server had confirmed;
	// they are not restored (the server that confirmed them holds them).
	Confirmed int `json:"confirmed"`
	// First and Last number the appended events; zero when none was.
	First eventlog.SeqNum `json:"first"`
	Last  eventlog.SeqNum `json:"last"`
}

// RestorePending appends the pending events of evs (the lines of a
// recovery file without a backendId) to the eventlog of the client store in
// dir, as new pending events after its head: numbered on from the head,
// each the parent of the next, with their client and session ids kept. The
// store's application then pushes them to its sync server as it pushes any
// pending event.
//
// An event the eventlog already holds — same name, args, client and session
// — is skipped, so restoring the same file twice adds nothing the second
// time (counted per identity: two equal events in the input need two in the
// log to both be skipped).
//
// Without the store's schema the events cannot be materialized here, so
// RestorePending marks the state as stale: the next [livestore.Open] of dir
// rebuilds all state from the eventlog, which then includes them.
//
// The program that owns dir must not be running: RestorePending takes the
// directory lock and fails with an error matching [livestore.ErrLocked]
// when it is held. All events are appended in one transaction.
func RestorePending(ctx context.Context, dir string, evs []livestore.RecoveryEvent) (Restored, error) {
	var res Restored
	if err := ctx.Err(); err != nil {
		return res, err
	}
	file := filepath.Join(dir, livestore.DBFileName)
	if _, err := os.Stat(file); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return res, fmt.Errorf("%s is not a store directory (no %s)", dir, livestore.DBFileName)
		}
		return res, fmt.Errorf("restore into %s: %w", dir, err)
	}
	lock, err := flock.Acquire(filepath.Join(dir, "LOCK"))
	if err != nil {
		var held *flock.HeldError
		if errors.As(err, &held) {
			return res, fmt.Errorf("%w: stop the program that owns the store first",
				&livestore.LockedError{Dir: dir, Holder: held.Holder})
		}
		return res, fmt.Errorf("restore into %s: lock: %w", dir, err)
	}
	defer lock.Release()
	c, err := sqlite.Open(file, sqlite.OpenOptions{})
	if err != nil {
		return res, fmt.Errorf("restore into %s: %w", dir, err)
	}
	defer c.Close()
	d := &Dir{path: dir, c: c, db: clientdb.On(c)}
	if err := d.check(); err != nil {
		return res, err
	}
	if err := c.Begin(); err != nil {
		return res, fmt.Errorf("restore into %s: %w", dir, err)
	}
	res, err = restoreTx(ctx, d.db, evs)
	if err == nil {
		err = c.Commit()
	}
	if err != nil {
		c.Rollback()
		return Restored{}, fmt.Errorf("restore into %s: %w", dir, err)
	}
	return res, nil
}

// restoreTx does the work of RestorePending inside the caller's
// transaction.
func restoreTx(ctx context.Context, db clientdb.DB, evs []livestore.RecoveryEvent) (Restored, error) {
	var res Restored
	held := map[string]int{}
	hashes := map[string]int64{}
	err := db.Scan(eventlog.Root, 0, func(ev eventlog.Event) error {
		held[identityKey(ev.Name, ev.Args, ev.ClientID, ev.SessionID)]++
		hashes[ev.Name] = ev.SchemaHash
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("read eventlog: %w", err)
	}
	prev, err := db.Head()
	if err != nil {
		return res, err
	}
	for _, e := range evs {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if !e.Pending() {
			res.Confirmed++
			continue
		}
		if e.Name == "" {
			return res, fmt.Errorf("event e%d of the input has no name", e.SeqNum)
		}
		key := identityKey(e.Name, e.Args, e.ClientID, e.SessionID)
		if held[key] > 0 {
			held[key]--
			res.Skipped++
			continue
		}
		next, err := prev.NextSynced()
		if err != nil {
			return res, fmt.Errorf("restore %s: %w", e.Name, err)
		}
		ev := eventlog.Event{
			SeqNum: next, ParentSeqNum: prev,
			Name: e.Name, Args: e.Args, ClientID: e.ClientID, SessionID: e.SessionID,
			// The definition the other events of that name were committed
			// under; 0 (unknown) for a name the log does not hold.
			SchemaHash: hashes[e.Name],
		}
		if err := db.Append(&ev); err != nil {
			return res, err
		}
		if res.Added == 0 {
			res.First = ev.SeqNum
		}
		res.Added++
		res.Last = ev.SeqNum
		prev = ev.SeqNum
	}
	if res.Added == 0 {
		return res, nil
	}
	// Without the schema the appended events cannot be materialized: the
	// next Open rebuilds state, and replays them with the rest of the log.
	if err := db.MarkStateStale(time.Now()); err != nil {
		return res, err
	}
	return res, nil
}

// identityKey is what makes two events the same event wherever they are
// numbered. Args are compacted so that spacing does not tell them apart.
func identityKey(name string, args json.RawMessage, clientID, sessionID string) string {
	var buf bytes.Buffer
	if len(bytes.TrimSpace(args)) == 0 {
		buf.WriteString("{}")
	} else if err := json.Compact(&buf, args); err != nil {
		buf.Reset()
		buf.Write(args)
	}
	return name + "\x00" + buf.String() + "\x00" + clientID + "\x00" + sessionID
}
