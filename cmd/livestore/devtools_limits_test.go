package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// TestServeDevtoolsAnswerLimit lowers serve's devtools answer limit: the
// store list the admin surface answers is cut there and says so.
func TestServeDevtoolsAnswerLimit(t *testing.T) {
	data := t.TempDir()
	st, err := sqlitestore.Open(filepath.Join(data, "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	for i := range n {
		if err := st.CreateStore(context.Background(), fmt.Sprintf("store-%03d-%s", i, strings.Repeat("x", 64)), syncserver.NewBackendID()); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	list := func(args ...string) (int, string) {
		s := launchServe(t, append([]string{"--data", data, "--log-level", "warn"}, args...)...)
		defer s.stop()
		resp, err := http.Get("http://" + hostPort(s.addr) + "/_devtools/api/stores")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Livestore-Truncated")
	}
	if code, note := list(); code != 200 || note != "" {
		t.Fatalf("default limit: %d, truncation %q", code, note)
	}
	code, note := list("--devtools-max-answer-bytes", "16384")
	if code != 200 || !strings.Contains(note, fmt.Sprintf("of %d stores listed", n)) {
		t.Fatalf("--devtools-max-answer-bytes 16384: %d, truncation %q", code, note)
	}
}
