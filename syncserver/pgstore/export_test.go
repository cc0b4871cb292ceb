package pgstore

import (
	"context"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

// The classification of PostgreSQL errors, for the external tests.
var (
	IsCode     = isCode
	StorageErr = storageErr
)

// ReadOnlyTransaction is the SQLSTATE of a write in a read-only transaction.
const ReadOnlyTransaction = readOnlyTransaction

// AppendGroup commits the appends of batches (by store) as one group, as the
// writer commits appends queued together, and returns their errors.
func (s *Store) AppendGroup(storeIDs []string, batches [][]syncproto.Event) []error {
	errs := make([]error, len(storeIDs))
	jobs := make([]*appendJob, 0, len(storeIDs))
	index := make(map[*appendJob]int)
	for i, id := range storeIDs {
		j, err := s.newAppendJob(context.Background(), id, batches[i], time.Now())
		if err != nil {
			errs[i] = err
			continue
		}
		jobs = append(jobs, j)
		index[j] = i
	}
	s.runGroup(jobs)
	for _, j := range jobs {
		errs[index[j]] = j.err
	}
	return errs
}
