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
