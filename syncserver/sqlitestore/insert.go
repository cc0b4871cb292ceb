package sqlitestore

import (
	"fmt"
	"strings"

	"github.com/livestore-go/livestore/internal/sqlite"
	"github.com/livestore-go/livestore/syncproto"
)

// insertSizes are the row counts of the multi-row INSERT statements that
// store a batch: a batch is cut greedily into runs of these sizes, so that
// few statements are prepared (and cached) and each runs many rows.
var insertSizes = [...]int{64, 32, 16, 8, 4, 2, 1}

// eventColumns is the number of parameters an event row binds; the
// store's key and the batch's time, the same for every row, are bound
// once per statement (parameters 1 and 2).
const eventColumns = 6

// insertQueries are the statements of insertSizes: the i-th inserts
// insertSizes[i] event rows. A constraint failure rolls the transaction
// back: SQLite then keeps no statement journal, and the writer runs the
// transaction's jobs again, each in its own savepoint (see
// Store.runGroup), with safeQueries.
type insertQueries [len(insertSizes)]string

// newInsertQueries makes the statements of insertSizes with conflict
// clause onConflict.
func newInsertQueries(onConflict string) (q insertQueries) {
	for i, n := range insertSizes {
		var b strings.Builder
		b.WriteString("INSERT OR " + onConflict + " INTO events (store, seq_num, parent_seq_num, name, args, client_id, session_id, created_at_ms) VALUES ")
		for r := range n {
			if r > 0 {
				b.WriteByte(',')
			}
			p := 3 + r*eventColumns
			fmt.Fprintf(&b, "(?1,?%d,?%d,?%d,?%d,?%d,?%d,?2)", p, p+1, p+2, p+3, p+4, p+5)
		}
		q[i] = b.String()
	}
	return q
}

// insertEvents inserts batch as events of the store with key key, stored
// at createdMs, with as few statements as insertSizes allow.
func (q *insertQueries) insertEvents(conn *sqlite.Conn, key int64, batch []syncproto.Event, createdMs int64) error {
	args := make([]any, 0, 2+min(len(batch), insertSizes[0])*eventColumns)
	for len(batch) > 0 {
		i := 0
		for insertSizes[i] > len(batch) {
			i++
		}
		n := insertSizes[i]
		args = append(args[:0], key, createdMs)
		for _, ev := range batch[:n] {
			var evArgs any
			if len(ev.Args) > 0 && string(ev.Args) != "null" {
				evArgs = string(ev.Args)
			}
			args = append(args, ev.SeqNum, ev.ParentSeqNum, ev.Name, evArgs, ev.ClientID, ev.SessionID)
		}
		if err := conn.Query(q[i], args, nil); err != nil {
			return fmt.Errorf("insert events %d to %d: %w", batch[0].SeqNum, batch[n-1].SeqNum, err)
		}
		batch = batch[n:]
	}
	return nil
}

// eventBytes estimates the bytes the rows of batch take in the database.
func eventBytes(batch []syncproto.Event) int64 {
	var n int
	for _, ev := range batch {
		n += 24 + len(ev.Name) + len(ev.Args) + len(ev.ClientID) + len(ev.SessionID)
	}
	return int64(n)
}
