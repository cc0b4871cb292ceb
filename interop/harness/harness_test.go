package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestNodeClientsThroughReferenceServer is the harness's own end-to-end check:
// JS clients converge through the reference server, concurrently, and a
// client with file storage reopens its store.
func TestNodeClientsThroughReferenceServer(t *testing.T) {
	start := time.Now()
	url := StartReferenceServer(t)
	t.Logf("reference server start: %v", time.Since(start).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const store = "harness-todos"
	client := func(args ...string) (*ClientResult, error) {
		base := []string{"--url", url, "--store", store, "--timeout-ms", "120000"}
		res, err := RunNodeClient(ctx, t, append(base, args...)...)
		if err == nil {
			t.Logf("client %v: %d rows in %v", args, len(res.Todos), res.Duration.Round(time.Millisecond))
		}
		return res, err
	}

	first, err := client("--commit", "3", "--prefix", "a", "--wait-rows", "3",
		"--complete", "1", "--delete", "1", "--annotate")
	if err != nil {
		t.Fatal(err)
	}
	if first.Committed != 8 || len(first.Todos) != 3 || len(first.Annotations) != 3 {
		t.Fatalf("first client: %s", first.Raw)
	}
	if a0 := first.Todos[0]; !a0.Completed || a0.DeletedAt == nil || *a0.DeletedAt != "2025-01-02T03:04:05.678Z" {
		t.Errorf("a-000 after complete and delete: %+v", a0)
	}

	// Two writers at once; each waits for the other's rows.
	var wg sync.WaitGroup
	results := make([]*ClientResult, 2)
	errs := make([]error, 2)
	for i, prefix := range []string{"b", "c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = client("--commit", "2", "--prefix", prefix, "--wait-rows", "7")
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	dir := filepath.Join(t.TempDir(), "reader")
	reader, err := client("--storage", "fs:"+dir, "--wait-rows", "7")
	if err != nil {
		t.Fatal(err)
	}
	reopened, err := client("--storage", "fs:"+dir, "--wait-rows", "7")
	if err != nil {
		t.Fatal(err)
	}
	if reader.ClientID != reopened.ClientID {
		t.Errorf("fs client id changed on reopen: %s, then %s", reader.ClientID, reopened.ClientID)
	}

	want := reader.Todos
	if len(want) != 7 {
		t.Fatalf("reader sees %d rows, want 7: %s", len(want), reader.Raw)
	}
	for i, r := range append(results, reopened) {
		if !reflect.DeepEqual(r.Todos, want) {
			t.Errorf("client %d todos differ from the reader's:\n got: %+v\nwant: %+v", i, r.Todos, want)
		}
	}
	ids := make([]string, len(want))
	for i, r := range want {
		ids[i] = r.ID
	}
	if got, exp := fmt.Sprint(ids), "[a-000 a-001 a-002 b-000 b-001 c-000 c-001]"; got != exp {
		t.Errorf("row ids %s, want %s", got, exp)
	}
}

// TestRunNodeClientReportsFailure checks that a failing client's stderr reaches the error.
func TestRunNodeClientReportsFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := RunNodeClient(ctx, t, "--store", "x") // no --url
	if err == nil {
		t.Fatal("no error for a client without --url")
	}
	if want := "usage: node client.mjs"; !contains(err.Error(), want) {
		t.Errorf("error does not carry the client's stderr (%q):\n%v", want, err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
