package livestore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/syncproto"
)

// RecoveryEvent is one line of the JSON-lines format of `livestore export`
// (the one definition of that format: export, import, the devtools' export
// and recovery files all use it), so that `livestore import` reads a
// recovery file as it is. A pending event — one no sync server had confirmed — carries no
// BackendID; a confirmed one carries the id of the server that confirmed it.
type RecoveryEvent struct {
	StoreID      string          `json:"storeId"`
	BackendID    string          `json:"backendId,omitempty"`
	SeqNum       int64           `json:"seqNum"`
	ParentSeqNum int64           `json:"parentSeqNum"`
	Name         string          `json:"name"`
	Args         json.RawMessage `json:"args,omitempty"`
	ClientID     string          `json:"clientId"`
	SessionID    string          `json:"sessionId"`
	CreatedAt    string          `json:"createdAt,omitempty"`
}

// Pending reports whether no sync server had confirmed the event when it
// was saved: it may exist nowhere but in the recovery file.
func (e RecoveryEvent) Pending() bool { return e.BackendID == "" }

// Event returns the event to commit again, e.g. the pending events of a
// recovery file into a store that was reset. The commit numbers it anew and
// records this client and session as its author.
func (e RecoveryEvent) Event() Event { return Event{Name: e.Name, Args: e.Args} }

// RecoveryFilePattern matches the names of recovery files in a store
// directory (filepath.Match syntax). A name is
// recovery-<UTC time>-<old backend id>.jsonl.
const RecoveryFilePattern = "recovery-*.jsonl"

// RecoveryFiles lists the recovery files in a store directory, oldest first.
func RecoveryFiles(dir string) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, RecoveryFilePattern))
	if err != nil {
		return nil, fmt.Errorf("livestore: list recovery files in %s: %w", dir, err)
	}
	// The UTC timestamp after the prefix sorts chronologically.
	sort.Strings(paths)
	return paths, nil
}

// ReadRecoveryFile reads the events of a recovery file, in log order.
func ReadRecoveryFile(path string) ([]RecoveryEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("livestore: read recovery file: %w", err)
	}
	defer f.Close()
	var out []RecoveryEvent
	dec := json.NewDecoder(bufio.NewReader(f))
	for {
		var ev RecoveryEvent
		if err := dec.Decode(&ev); err == io.EOF {
			return out, nil
		} else if err != nil {
			return out, fmt.Errorf("livestore: read recovery file %s: event %d: %w", path, len(out)+1, err)
		}
		out = append(out, ev)
	}
}

// RecoveredEvents returns the events saved when this Open of the store last
// met a sync server with a new backend id: read back from the recovery file
// for a store with a directory, kept in memory for an in-memory store (which
// has nowhere to write one). It returns nil when no such change happened.
func (s *Store) RecoveredEvents() ([]RecoveryEvent, error) {
	y := s.syncer
	if y == nil {
		return nil, nil
	}
	y.mu.Lock()
	path, kept := y.recoveryFile, y.recovered
	y.mu.Unlock()
	if path != "" {
		return ReadRecoveryFile(path)
	}
	return append([]RecoveryEvent(nil), kept...), nil
}

// saveRecoveryLocked copies the synced events of the local eventlog —
// confirmed by the server oldID and pending — to a recovery file in the
// store directory, or to memory for an in-memory store, before a change of
// backend may drop them. Client-only events are not copied: no server ever
// holds them, and the export format has no place for them. The caller holds
// the write lock. It returns where the events are, for messages.
func (y *syncer) saveRecoveryLocked(oldID string) (string, error) {
	s := y.s
	confirmed := s.sync.Head
	var evs []RecoveryEvent
	err := s.db.Scan(eventlog.Root, 0, func(ev eventlog.Event) error {
		if ev.SeqNum.IsClientOnly() {
			return nil
		}
		line := RecoveryEvent{
			StoreID: s.storeID, SeqNum: ev.SeqNum.Global, ParentSeqNum: ev.SeqNum.Global - 1,
			Name: ev.Name, Args: ev.Args, ClientID: ev.ClientID, SessionID: ev.SessionID,
		}
		if ev.SeqNum.Global <= confirmed {
			line.BackendID = oldID
			line.CreatedAt = createdAt(ev.SyncMetadata)
		}
		evs = append(evs, line)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read eventlog: %w", err)
	}
	if s.opts.Dir == "" {
		y.mu.Lock()
		y.recovered, y.recoveredCount = evs, len(evs)
		y.mu.Unlock()
		return "memory (Store.RecoveredEvents)", nil
	}
	if len(evs) == 0 {
		y.mu.Lock()
		y.recoveryFile, y.recoveredCount = "", 0
		y.mu.Unlock()
		return "no file (no synced events)", nil
	}
	path, err := writeRecoveryFile(s.opts.Dir, oldID, evs, time.Now())
	if err != nil {
		return "", err
	}
	y.mu.Lock()
	y.recoveryFile, y.recoveredCount = path, len(evs)
	y.mu.Unlock()
	return path, nil
}

// createdAt extracts the server's createdAt from stored sync metadata.
func createdAt(meta json.RawMessage) string {
	if len(meta) == 0 {
		return ""
	}
	var m syncproto.SyncMetadata
	if json.Unmarshal(meta, &m) != nil {
		return ""
	}
	return m.CreatedAt
}

// writeRecoveryFile writes evs durably to a new recovery file in dir: a
// temporary file, fsynced, renamed, and the directory fsynced, so that a
// crash leaves either no file or the whole file. When a recovery file for
// the same old backend holds exactly the same events (a store reopened under
// the shutdown policy meets the same change again), that file is reused.
func writeRecoveryFile(dir, oldID string, evs []RecoveryEvent, now time.Time) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, ev := range evs {
		if err := enc.Encode(ev); err != nil {
			return "", fmt.Errorf("encode recovery event e%d: %w", ev.SeqNum, err)
		}
	}
	suffix := "-" + fileSafe(oldID) + ".jsonl"
	if same, err := findSameRecovery(dir, suffix, buf.Bytes()); err != nil || same != "" {
		return same, err
	}
	tmp, err := os.CreateTemp(dir, ".recovery-*.tmp")
	if err != nil {
		return "", fmt.Errorf("create recovery file: %w", err)
	}
	_, err = tmp.Write(buf.Bytes())
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("write recovery file: %w", err)
	}
	// On a clash the time moves on a millisecond, so that names keep
	// sorting in the order the files were written.
	var path string
	for t := now.UTC(); ; t = t.Add(time.Millisecond) {
		path = filepath.Join(dir, "recovery-"+t.Format("20060102T150405.000Z")+suffix)
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("write recovery file: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("write recovery file: %w", err)
	}
	return path, nil
}

// findSameRecovery returns the recovery file in dir whose name ends with
// suffix and whose content is data, or "".
func findSameRecovery(dir, suffix string, data []byte) (string, error) {
	paths, err := RecoveryFiles(dir)
	if err != nil {
		return "", err
	}
	for _, p := range paths {
		if !strings.HasSuffix(p, suffix) {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil || fi.Size() != int64(len(data)) {
			continue
		}
		old, err := os.ReadFile(p)
		if err == nil && bytes.Equal(old, data) {
			return p, nil
		}
	}
	return "", nil
}

// syncDir flushes a directory's entries, making a rename in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// fileSafe maps a backend id to a file name part: letters, digits, '-' and
// '_' stay, anything else becomes '_'.
func fileSafe(id string) string {
	if id == "" {
		return "none"
	}
	b := []byte(id)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}

// rebaseOntoNewBackendLocked prepares the repush policy: the events the old
// server confirmed leave the local log (they are in the recovery file), the
// pending and client-only events are renumbered from the start in log order,
// state is rebuilt from them, and the sync status names the new backend with
// nothing confirmed. The next pull then rebases these events onto the new
// server's log as for any pending events, and they are pushed. The caller
// holds the write lock.
func (s *Store) rebaseOntoNewBackendLocked(ctx context.Context, newID string) error {
	confirmed := s.sync.Head
	var kept []eventlog.Event
	err := s.db.Scan(eventlog.Root, 0, func(ev eventlog.Event) error {
		if ev.SeqNum.IsClientOnly() || ev.SeqNum.Global > confirmed {
			kept = append(kept, ev)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read eventlog: %w", err)
	}
	old := s.sync
	if err := s.w.Begin(); err != nil {
		return err
	}
	head, err := s.replaceLogTx(ctx, kept, eventlog.SyncStatus{BackendID: newID})
	if err == nil {
		err = s.w.Commit()
	}
	if err != nil {
		s.w.Rollback()
		s.sync = old
		return err
	}
	s.head = head
	// The pending events have new numbers: their pushes go untraced by
	// their commits.
	s.tel.parents.reset()
	s.afterWrite(allTables)
	return nil
}

// replaceLogTx replaces the eventlog by evs, renumbered from the root one
// rebase generation later, stores st, and rebuilds state, inside the
// caller's transaction. It returns the new head and sets s.sync to st.
func (s *Store) replaceLogTx(ctx context.Context, evs []eventlog.Event, st eventlog.SyncStatus) (eventlog.SeqNum, error) {
	if err := s.db.DeleteEvents(); err != nil {
		return eventlog.SeqNum{}, err
	}
	re, failed, err := renumber(evs, eventlog.Root, s.head.RebaseGeneration+1)
	if err != nil {
		return eventlog.SeqNum{}, fmt.Errorf("renumber %s: %w", evs[failed].Name, err)
	}
	head := eventlog.Root
	for i := range re {
		if err := s.db.Append(&re[i]); err != nil {
			return eventlog.SeqNum{}, err
		}
		head = re[i].SeqNum
	}
	if err := s.db.WriteSyncStatus(st); err != nil {
		return eventlog.SeqNum{}, err
	}
	// rebuildState reads s.sync to tell confirmed events from pending ones;
	// the caller restores it if the transaction fails.
	s.sync = st
	if err := s.rebuildState(ctx); err != nil {
		return eventlog.SeqNum{}, fmt.Errorf("rebuild state: %w", err)
	}
	return head, nil
}

// backendChanged applies the backend-id mismatch policy, after saving the
// local synced events; all under one hold of the write lock, so no commit
// falls between the copy and a change of the log.
func (y *syncer) backendChanged(ctx context.Context, newID string, cause error) error {
	s := y.s
	if err := s.acquireWrite(ctx); err != nil {
		return err
	}
	defer s.releaseWrite()
	oldID := s.sync.BackendID
	where, err := y.saveRecoveryLocked(oldID)
	if err != nil {
		// Without a copy nothing may be deleted or re-sent.
		return errStopSync{fmt.Errorf("save local events before leaving backend %s: %w (after %v)", oldID, err, cause)}
	}
	s.log.Warn("sync server identity changed; local events saved", "store", s.storeID,
		"oldBackendId", oldID, "backendId", newID, "saved", where, "policy", y.opts.OnBackendIDMismatch.String())
	switch y.opts.OnBackendIDMismatch {
	case IgnoreBackendIDMismatch:
		st := s.sync
		st.BackendID = newID
		if err := s.db.WriteSyncStatus(st); err != nil {
			return errStopSync{err}
		}
		s.sync = st
		return cause // reconnect with the new id
	case RepushOnBackendIDMismatch:
		if err := s.rebaseOntoNewBackendLocked(ctx, newID); err != nil {
			return errStopSync{fmt.Errorf("rebase onto backend %s after %v: %w; local events saved to %s", newID, cause, err, where)}
		}
		return fmt.Errorf("%w; local events saved to %s; pending events go to backend %s", cause, where, newID)
	case ResetOnBackendIDMismatch:
		if err := s.resetLocalLocked(ctx); err != nil {
			return errStopSync{fmt.Errorf("reset after %v: %w; local events saved to %s", cause, err, where)}
		}
		return errStopSync{fmt.Errorf("%w; local events saved to %s (%v)", ErrBackendReset, where, cause)}
	default:
		return errStopSync{fmt.Errorf("%w; local events saved to %s", cause, where)}
	}
}

// String names the policy as its constant does, without the suffix.
func (p BackendIDMismatchPolicy) String() string {
	names := [...]string{
		ShutdownOnBackendIDMismatch: "shutdown",
		RepushOnBackendIDMismatch:   "repush",
		ResetOnBackendIDMismatch:    "reset",
		IgnoreBackendIDMismatch:     "ignore",
	}
	if p >= 0 && int(p) < len(names) {
		return names[p]
	}
	return fmt.Sprintf("BackendIDMismatchPolicy(%d)", int(p))
}

// resetLocalLocked deletes the eventlog and state. The caller holds the
// write lock.
func (s *Store) resetLocalLocked(ctx context.Context) error {
	old := s.sync
	if err := s.w.Begin(); err != nil {
		return err
	}
	err := s.db.DeleteEvents()
	if err == nil {
		err = s.db.WriteSyncStatus(eventlog.SyncStatus{})
	}
	if err == nil {
		s.sync = eventlog.SyncStatus{}
		err = s.rebuildState(ctx)
	}
	if err == nil {
		err = s.w.Commit()
	}
	if err != nil {
		s.w.Rollback()
		s.sync = old
		return err
	}
	s.head = eventlog.Root
	s.afterWrite(allTables)
	return nil
}
