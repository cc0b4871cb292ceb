package syncserver_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/storagetest"
)

// memStorage is an in-memory syncserver.Storage for the fuzz targets: the
// SQLite driver is a large body of code, and coverage instrumentation makes
// it far too slow to fuzz through. It follows the Storage rules: a store
// exists only once a push to it was accepted.
type memStorage struct {
	mu     sync.Mutex
	secret []byte
	stores map[string]*memLog
}

type memLog struct {
	backendID string
	createdAt time.Time
	events    []syncserver.StoredEvent
}

func newMemStorage() *memStorage {
	return &memStorage{secret: syncserver.NewBackendIDSecret(), stores: map[string]*memLog{}}
}

func (m *memStorage) BackendID(_ context.Context, storeID string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.stores[storeID]; l != nil {
		return l.backendID, nil
	}
	return syncserver.DeriveBackendID(m.secret, storeID), nil
}

// events returns the store's events; none for a missing store.
func (m *memStorage) events(storeID string) []syncserver.StoredEvent {
	if l := m.stores[storeID]; l != nil {
		return l.events
	}
	return nil
}

func (m *memStorage) Head(_ context.Context, storeID string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.events(storeID))), nil
}

func (m *memStorage) Append(_ context.Context, storeID string, batch []syncproto.Event, createdAt time.Time) error {
	if len(batch) == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if head := int64(len(m.events(storeID))); batch[0].ParentSeqNum != head {
		return &syncproto.ServerAheadError{MinimumExpectedNum: head, ProvidedNum: batch[0].ParentSeqNum}
	}
	l := m.stores[storeID]
	if l == nil {
		l = &memLog{backendID: syncserver.DeriveBackendID(m.secret, storeID), createdAt: createdAt}
		m.stores[storeID] = l
	}
	for _, ev := range batch {
		l.events = append(l.events, syncserver.StoredEvent{Event: ev, CreatedAt: createdAt})
	}
	return nil
}

func (m *memStorage) Read(_ context.Context, storeID string, after, upTo int64, limit int) ([]syncserver.StoredEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	events := m.events(storeID)
	var out []syncserver.StoredEvent
	for i := max(after, 0); i < min(upTo, int64(len(events))) && len(out) < limit; i++ {
		out = append(out, events[i])
	}
	return out, nil
}

func (m *memStorage) Count(_ context.Context, storeID string, after, upTo int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return max(0, min(upTo, int64(len(m.events(storeID))))-max(after, 0)), nil
}

// Stores lists the stores that exist, as the conformance suite expects.
func (m *memStorage) Stores(_ context.Context) ([]syncserver.StoreInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]syncserver.StoreInfo, 0, len(m.stores))
	for id, l := range m.stores {
		out = append(out, syncserver.StoreInfo{StoreID: id, BackendID: l.backendID, Head: int64(len(l.events)), CreatedAt: l.createdAt})
	}
	slices.SortFunc(out, func(a, b syncserver.StoreInfo) int { return strings.Compare(a.StoreID, b.StoreID) })
	return out, nil
}

// CreateStore implements syncserver.StoreCreator.
func (m *memStorage) CreateStore(_ context.Context, storeID, backendID string) error {
	if backendID == "" {
		return fmt.Errorf("create store %q: empty backend id", storeID)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.stores[storeID]; l != nil {
		if l.backendID != backendID {
			return &syncserver.BackendIDConflictError{StoreID: storeID, Existing: l.backendID, Wanted: backendID}
		}
		return nil
	}
	m.stores[storeID] = &memLog{backendID: backendID, createdAt: time.Now()}
	return nil
}

// The fuzz targets find server bugs only if memStorage behaves as the real
// storages do.
func TestMemStorageConformance(t *testing.T) {
	storagetest.Run(t, func(*testing.T) syncserver.Storage { return newMemStorage() })
}
