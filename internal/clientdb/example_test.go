package clientdb_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/livestore-go/livestore/eventlog"
	"github.com/livestore-go/livestore/internal/clientdb"
	"github.com/livestore-go/livestore/internal/sqlite"
)

// A pending event is appended, pushed, and confirmed by recording the new
// upstream head.
func Example() {
	dir, err := os.MkdirTemp("", "clientdb")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	c, err := sqlite.Open(filepath.Join(dir, "store.db"), sqlite.OpenOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	db := clientdb.On(c)
	if err := db.Create(); err != nil {
		fmt.Println(err)
		return
	}
	ev := eventlog.Event{SeqNum: eventlog.SeqNum{Global: 1}, Name: "v1.TodoCreated",
		Args: json.RawMessage(`{"id":"t1"}`), ClientID: "c1", SessionID: "s1"}
	if err := db.Append(&ev); err != nil {
		fmt.Println(err)
		return
	}
	batch, _ := db.PendingBatch(0, 100)
	fmt.Println("to push:", len(batch), batch[0].Name)
	if err := db.WriteSyncStatus(eventlog.SyncStatus{Head: 1, BackendID: "backend-1"}); err != nil {
		fmt.Println(err)
		return
	}
	pending, _ := db.PendingCount(1)
	head, _ := db.Head()
	fmt.Println("pending:", pending, "head:", head)
	// Output:
	// to push: 1 v1.TodoCreated
	// pending: 0 head: e1
}
