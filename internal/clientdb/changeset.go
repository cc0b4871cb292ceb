package clientdb

import (
	"fmt"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/sqlite"
)

// ChangesetGroup is the state changes of a group of events committed
// together, kept so that a rebase can undo them: a SQLite session
// changeset, stored under the sequence number of the group's first event.
type ChangesetGroup struct {
	// Key numbers the group's first event.
	Key eventlog.SeqNum
	// Changeset is nil when the group changed no state.
	Changeset []byte
}

// SaveChangeset stores the changes of the group whose first event is key,
// replacing a group stored under the same key.
func (d DB) SaveChangeset(key eventlog.SeqNum, changeset []byte) error {
	var blob any
	if changeset != nil {
		blob = changeset
	}
	err := d.c.Exec(`INSERT OR REPLACE INTO __livestore_session_changeset
 (seqNumGlobal, seqNumClient, seqNumRebaseGeneration, changeset, debug) VALUES (?, ?, ?, ?, NULL)`,
		key.Global, key.Client, key.RebaseGeneration, blob)
	if err != nil {
		return fmt.Errorf("store changeset of %s: %w", key, err)
	}
	return nil
}

// ChangesetGroups reads the stored groups, newest first: the order in
// which they are undone.
func (d DB) ChangesetGroups() ([]ChangesetGroup, error) {
	var groups []ChangesetGroup
	err := d.c.Query(`SELECT seqNumGlobal, seqNumClient, seqNumRebaseGeneration, changeset FROM __livestore_session_changeset
ORDER BY seqNumGlobal DESC, seqNumClient DESC`, nil, func(r *sqlite.Row) error {
		g := ChangesetGroup{Key: eventlog.SeqNum{Global: r.Int64(0), Client: r.Int64(1), RebaseGeneration: r.Int64(2)}}
		if !r.IsNull(3) {
			g.Changeset = r.Bytes(3)
		}
		groups = append(groups, g)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read changesets: %w", err)
	}
	return groups, nil
}

// HasChangesets reports whether any group is stored.
func (d DB) HasChangesets() (bool, error) {
	n, _, err := d.c.QueryInt64("SELECT count(*) FROM __livestore_session_changeset")
	if err != nil {
		return false, fmt.Errorf("count changesets: %w", err)
	}
	return n > 0, nil
}

// DeleteChangeset deletes the group stored under key.
func (d DB) DeleteChangeset(key eventlog.SeqNum) error {
	err := d.c.Exec(`DELETE FROM __livestore_session_changeset WHERE seqNumGlobal = ? AND seqNumClient = ? AND seqNumRebaseGeneration = ?`,
		key.Global, key.Client, key.RebaseGeneration)
	if err != nil {
		return fmt.Errorf("delete changeset of %s: %w", key, err)
	}
	return nil
}

// PruneChangesets deletes the groups no rebase can need any more, given
// the upstream head: those entirely before the first pending synced event.
// The group holding that event and all later ones stay. Client-only events
// before it sort before every future upstream event and are never rolled
// back; without pending events every group goes.
func (d DB) PruneChangesets(upstreamHead int64) error {
	firstPending, found, err := d.c.QueryInt64(`SELECT min(seqNumGlobal) FROM eventlog WHERE seqNumGlobal > ? AND seqNumClient = 0`, upstreamHead)
	if err != nil {
		return fmt.Errorf("prune changesets: %w", err)
	}
	if !found || firstPending == 0 {
		if err := d.c.Exec(`DELETE FROM __livestore_session_changeset`); err != nil {
			return fmt.Errorf("prune changesets: %w", err)
		}
		return nil
	}
	var keyG, keyC int64
	var have bool
	err = d.c.Query(`SELECT seqNumGlobal, seqNumClient FROM __livestore_session_changeset
WHERE seqNumGlobal < ? OR (seqNumGlobal = ? AND seqNumClient = 0)
ORDER BY seqNumGlobal DESC, seqNumClient DESC LIMIT 1`, []any{firstPending, firstPending}, func(r *sqlite.Row) error {
		keyG, keyC, have = r.Int64(0), r.Int64(1), true
		return nil
	})
	if err != nil {
		return fmt.Errorf("prune changesets: %w", err)
	}
	if !have {
		return nil
	}
	err = d.c.Exec(`DELETE FROM __livestore_session_changeset WHERE seqNumGlobal < ? OR (seqNumGlobal = ? AND seqNumClient < ?)`, keyG, keyG, keyC)
	if err != nil {
		return fmt.Errorf("prune changesets: %w", err)
	}
	return nil
}
