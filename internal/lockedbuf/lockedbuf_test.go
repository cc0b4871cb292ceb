package lockedbuf_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/livestore-go/livestore/internal/lockedbuf"
)

func TestConcurrentWritesAreAllKept(t *testing.T) {
	var b lockedbuf.Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				fmt.Fprintf(&b, "%d\n", i)
			}
		}()
	}
	wg.Wait()
	if got := strings.Count(b.String(), "\n"); got != 800 {
		t.Fatalf("got %d lines, want 800", got)
	}
}

// A bounded buffer keeps the first Max bytes and reports every write whole.
func TestMaxKeepsTheBeginning(t *testing.T) {
	b := lockedbuf.Buffer{Max: 10}
	for _, w := range []string{"0123", "4567", "89ab", "cdef"} {
		if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	if got := b.String(); got != "0123456789" {
		t.Fatalf("kept %q, want the first 10 bytes", got)
	}
}

func ExampleBuffer() {
	var b lockedbuf.Buffer
	fmt.Fprint(&b, "started on 127.0.0.1:4000")
	fmt.Println(b.String())
	// Output: started on 127.0.0.1:4000
}
