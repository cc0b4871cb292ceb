package syncserver_test

import (
	"context"
	"sync"
	"time"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// memStorage is an in-memory syncserver.Storage for the fuzz targets: the
// SQLite driver is a large body of code, and coverage instrumentation makes
// it far too slow to fuzz through.
type memStorage struct {
	mu     sync.Mutex
	stores map[string]*memLog
}

type memLog struct {
	backendID string
	events    []syncserver.StoredEvent
}

func newMemStorage() *memStorage { return &memStorage{stores: map[string]*memLog{}} }

func (m *memStorage) log(storeID string) *memLog {
	l := m.stores[storeID]
	if l == nil {
		l = &memLog{backendID: syncserver.NewBackendID()}
		m.stores[storeID] = l
	}
	return l
}

func (m *memStorage) BackendID(_ context.Context, storeID string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.log(storeID).backendID, nil
}

func (m *memStorage) Head(_ context.Context, storeID string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.log(storeID).events)), nil
}

func (m *memStorage) Append(_ context.Context, storeID string, batch []syncproto.Event, createdAt time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.log(storeID)
	if head := int64(len(l.events)); batch[0].ParentSeqNum != head {
		return &syncproto.ServerAheadError{MinimumExpectedNum: head, ProvidedNum: batch[0].ParentSeqNum}
	}
	for _, ev := range batch {
		l.events = append(l.events, syncserver.StoredEvent{Event: ev, CreatedAt: createdAt})
	}
	return nil
}

func (m *memStorage) Read(_ context.Context, storeID string, after, upTo int64, limit int) ([]syncserver.StoredEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.log(storeID)
	var out []syncserver.StoredEvent
	for i := max(after, 0); i < min(upTo, int64(len(l.events))) && len(out) < limit; i++ {
		out = append(out, l.events[i])
	}
	return out, nil
}

func (m *memStorage) Count(_ context.Context, storeID string, after, upTo int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.log(storeID)
	return max(0, min(upTo, int64(len(l.events)))-max(after, 0)), nil
}
