package sqlitestore

import "context"

// HoldWriter makes the writer run a write that waits for release, and
// returns once it runs: writes queued meanwhile are committed as one group
// after release. queued reports how many writes wait.
func (s *Store) HoldWriter() (release func(), queued func() int) {
	running, held := make(chan struct{}), make(chan struct{})
	go func() {
		_ = s.write(context.Background(), func(*tx) error {
			close(running)
			<-held
			return nil
		})
	}()
	<-running
	return func() { close(held) }, func() int { return len(s.jobs) }
}

// Checkpoint runs a passive checkpoint on the checkpointer's connection
// and returns the log's size in frames and how many are copied.
func (s *Store) Checkpoint() (logFrames, copied int64, err error) {
	return checkpoint(s.ckpt.conn, "PASSIVE")
}

// CopyLog does what the checkpointer does when woken.
func (s *Store) CopyLog() error { return s.ckpt.run() }

// CheckpointWakes is how often the writer woke the checkpointer; read it
// only after the writes it counts returned.
func (s *Store) CheckpointWakes() int64 { return s.ckptWakes }

// CheckpointBytes is how much the writer writes between wakeups of the
// checkpointer.
const CheckpointBytes = checkpointBytes
