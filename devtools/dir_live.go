package devtools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/inspect"
)

// dirSync is the sync status recorded in a store directory, in the fields
// of livestore.SyncStatus where they apply.
type dirSync struct {
	LocalHead    string  `json:"localHead"`
	UpstreamHead int64   `json:"upstreamHead"`
	PendingCount int64   `json:"pendingCount"`
	BackendID    string  `json:"backendId,omitempty"`
	Connected    bool    `json:"connected"`
	IsSynced     bool    `json:"isSynced"`
	Enabled      bool    `json:"enabled"`
	NextRetryAt  *string `json:"nextRetryAt"`
	Recorded     bool    `json:"recorded"`
	Note         string  `json:"note"`
}

// readSync reads the recorded sync status along the eventlog's key, never
// counting the whole log: the live stream reads it after every commit.
func (h *dirHandler) readSync(ctx context.Context, d *inspect.Dir) (dirSync, error) {
	lh, err := h.pollHead(ctx, d)
	if err != nil {
		return dirSync{}, err
	}
	pending, err := h.query(ctx, d, fmt.Sprintf(`SELECT count(*) FROM eventlog WHERE seqNumGlobal > %d AND seqNumClient = 0`, lh.syncHead))
	if err != nil {
		return dirSync{}, fmt.Errorf("count pending events: %w", err)
	}
	n, _ := pending.Rows[0][0].(int64)
	return dirSync{
		LocalHead: lh.head, UpstreamHead: lh.syncHead, PendingCount: n, BackendID: lh.backend, Recorded: true,
		Note: "as recorded in the directory: whether the owning program is connected is not written there",
	}, nil
}

func (h *dirHandler) sync(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	d, ok := h.open(w, ctx)
	if !ok {
		return
	}
	defer d.Close()
	s, err := h.readSync(ctx, d)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, s)
}

// liveHead is what a directory's live stream compares between polls.
type liveHead struct {
	head     string
	syncHead int64
	backend  string
}

func (h *dirHandler) pollHead(ctx context.Context, d *inspect.Dir) (liveHead, error) {
	res, err := h.query(ctx, d, `SELECT (SELECT seqNumGlobal || '.' || seqNumClient || '.' || seqNumRebaseGeneration FROM eventlog
 ORDER BY seqNumGlobal DESC, seqNumClient DESC LIMIT 1), head, backendId FROM __livestore_sync_status LIMIT 1`)
	if err != nil {
		return liveHead{}, err
	}
	var lh liveHead
	if len(res.Rows) == 0 {
		return lh, nil
	}
	row := res.Rows[0]
	if s, ok := row[0].(string); ok {
		var seq eventlog.SeqNum
		parts := strings.Split(s, ".")
		if len(parts) == 3 {
			seq.Global, _ = strconv.ParseInt(parts[0], 10, 64)
			seq.Client, _ = strconv.ParseInt(parts[1], 10, 64)
			seq.RebaseGeneration, _ = strconv.ParseInt(parts[2], 10, 64)
		}
		lh.head = seq.String()
	} else {
		lh.head = eventlog.Root.String()
	}
	lh.syncHead, _ = row[1].(int64)
	lh.backend, _ = row[2].(string)
	return lh, nil
}

func (h *dirHandler) live(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := h.streamContext(r)
	defer cancel()
	d, err := inspect.Open(ctx, h.dir)
	if err != nil {
		h.fail(w, http.StatusInternalServerError, err)
		return
	}
	defer d.Close()
	out, err := startSSE(w)
	if err != nil {
		return
	}
	var last liveHead
	var tables []string
	first := true
	tick := time.NewTicker(livePoll)
	defer tick.Stop()
	for {
		qctx, qcancel := context.WithTimeout(ctx, h.timeout)
		err := h.pollLive(qctx, d, &last, &tables, first, out)
		qcancel()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, errStreamGone) {
				return
			}
			h.log.Warn("devtools live stream", "dir", h.dir, "err", err)
		}
		first = false
		if out.flush(time.Now()) != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

var errStreamGone = errors.New("live stream closed")

// pollLive sends "commit" and "sync" events for what changed since last
// (everything on the first poll).
func (h *dirHandler) pollLive(ctx context.Context, d *inspect.Dir, last *liveHead, tables *[]string, first bool, out *sse) error {
	now, err := h.pollHead(ctx, d)
	if err != nil {
		return err
	}
	if first || now.head != last.head {
		list, err := h.listTables(ctx, d, false)
		if err != nil {
			return err
		}
		*tables = (*tables)[:0]
		for _, t := range list {
			*tables = append(*tables, t.Name)
		}
		// Without the schema the changed tables are unknown: every table
		// may have changed.
		b, err := json.Marshal(map[string]any{"head": now.head, "tables": *tables})
		if err != nil {
			return err
		}
		if out.send("commit", b) != nil {
			return errStreamGone
		}
	}
	if first || now.syncHead != last.syncHead || now.backend != last.backend || now.head != last.head {
		s, err := h.readSync(ctx, d)
		if err != nil {
			return err
		}
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		if out.send("sync", b) != nil {
			return errStreamGone
		}
	}
	*last = now
	return nil
}
