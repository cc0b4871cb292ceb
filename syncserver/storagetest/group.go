package storagetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver"
)

// Append is one append of a group: a store and a batch.
type Append struct {
	StoreID string
	Batch   []syncproto.Event
}

// Grouped checks that appends a storage commits together (in one
// transaction) keep their own results: appendGroup must run the appends as
// one group and return each one's error. Of a group of good appends to
// several stores, one batch the storage refuses (two events with one
// seqNum, which the event key forbids) and one on a moved head, only those
// two fail, and they store nothing.
func Grouped(t *testing.T, s syncserver.Storage, appendGroup func(appends []Append) []error) {
	c := ctx(t)
	if err := s.Append(c, "moved", Chain(0, 2, "first"), time.Now()); err != nil {
		t.Fatal(err)
	}
	bad := Chain(0, 3, "bad")
	bad[2].SeqNum = bad[1].SeqNum
	group := []Append{
		{"good-1", Chain(0, 3, "g1")},
		{"bad", bad},
		{"good-2", Chain(0, 2, "g2")},
		{"moved", Chain(0, 1, "late")},
		{"good-3", Chain(0, 1, "g3")},
	}
	errs := appendGroup(group)
	if len(errs) != len(group) {
		t.Fatalf("%d results for %d appends", len(errs), len(group))
	}
	for i, a := range group {
		err := errs[i]
		var ahead *syncproto.ServerAheadError
		switch a.StoreID {
		case "bad":
			if err == nil || errors.As(err, &ahead) {
				t.Errorf("append of a batch repeating a seqNum: %v; want a storage error", err)
			}
			assertEmpty(t, s, "bad")
		case "moved":
			if !errors.As(err, &ahead) || ahead.MinimumExpectedNum != 2 || ahead.ProvidedNum != 0 {
				t.Errorf("append on a moved head: %v; want server ahead (2, 0)", err)
			}
		default:
			if err != nil {
				t.Errorf("append to %s in a group with failures: %v", a.StoreID, err)
				continue
			}
			assertLog(t, s, a.StoreID, a.Batch)
		}
	}
	assertLog(t, s, "moved", Chain(0, 2, "first"))
}

func assertEmpty(t *testing.T, s syncserver.Storage, storeID string) {
	t.Helper()
	c := ctx(t)
	head, err := s.Head(c, storeID)
	if err != nil || head != 0 {
		t.Errorf("head of %s = %d, %v; want 0", storeID, head, err)
	}
	if evs, err := s.Read(c, storeID, 0, 1<<40, 10); err != nil || len(evs) != 0 {
		t.Errorf("%s holds %d events, %v; want none", storeID, len(evs), err)
	}
}

// assertLog checks that storeID holds exactly want.
func assertLog(t *testing.T, s syncserver.Storage, storeID string, want []syncproto.Event) {
	t.Helper()
	c := ctx(t)
	evs, err := s.Read(c, storeID, 0, 1<<40, len(want)+10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(want) {
		t.Fatalf("%s holds %d events, want %d", storeID, len(evs), len(want))
	}
	for i, ev := range evs {
		w := want[i]
		if ev.SeqNum != w.SeqNum || ev.ParentSeqNum != w.ParentSeqNum || ev.ClientID != w.ClientID || ev.Name != w.Name || string(ev.Args) != string(w.Args) {
			t.Fatalf("%s event %d = %+v, want %+v", storeID, i, ev.Event, w)
		}
	}
	if head, err := s.Head(c, storeID); err != nil || head != want[len(want)-1].SeqNum {
		t.Fatalf("head of %s = %d, %v; want %d", storeID, head, err, want[len(want)-1].SeqNum)
	}
}

// CrashStores is the number of stores [AppendUntilKilled] appends to.
const CrashStores = 8

// AppendUntilKilled is the work of a child process in a crash test: it
// appends batches of 3 events to [CrashStores] stores at once, each store's
// batches one after the other, and writes a line "storeID head" to out
// after each append s acknowledged, until ctx ends or the process is
// killed. The parent kills it, opens the storage again and calls
// [CheckAfterCrash].
func AppendUntilKilled(ctx context.Context, s syncserver.Storage, out io.Writer) error {
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, CrashStores)
	for i := range CrashStores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			storeID := "crash-" + strconv.Itoa(i)
			for head := int64(0); ctx.Err() == nil; head += 3 {
				if err := s.Append(ctx, storeID, Chain(head, 3, storeID), time.Now()); err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				mu.Lock()
				_, err := fmt.Fprintf(out, "%s %d\n", storeID, head+3)
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// KillAfterAppends starts cmd, a child process running
// [AppendUntilKilled] with its output on stdout, kills it (SIGKILL) once it
// has acknowledged n appends, and returns all it wrote.
func KillAfterAppends(t *testing.T, cmd *exec.Cmd, n int) *bytes.Buffer {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var seen bytes.Buffer
	r := io.TeeReader(stdout, &seen)
	sc := bufio.NewScanner(r)
	for lines := 0; lines < n && sc.Scan(); lines++ {
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, r)
	_ = cmd.Wait()
	return &seen
}

// CheckAfterCrash reads the lines a killed [AppendUntilKilled] wrote and
// checks, on the storage opened again, that every acknowledged append is
// there and each store's log is a gap-free chain of whole batches. It
// returns the number of acknowledged appends.
func CheckAfterCrash(t *testing.T, s syncserver.Storage, lines io.Reader) int {
	t.Helper()
	acked := make(map[string]int64)
	n := 0
	sc := bufio.NewScanner(lines)
	for sc.Scan() {
		storeID, head, ok := strings.Cut(sc.Text(), " ")
		h, err := strconv.ParseInt(head, 10, 64)
		if !ok || err != nil {
			continue // a line cut by the kill
		}
		acked[storeID] = max(acked[storeID], h)
		n++
	}
	c := ctx(t)
	for i := range CrashStores {
		storeID := "crash-" + strconv.Itoa(i)
		head, err := s.Head(c, storeID)
		if err != nil {
			t.Fatal(err)
		}
		if head < acked[storeID] || head%3 != 0 {
			t.Fatalf("%s: head %d after the crash; %d was acknowledged (batches of 3)", storeID, head, acked[storeID])
		}
		evs, err := s.Read(c, storeID, 0, head, int(head)+1)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(evs)) != head {
			t.Fatalf("%s: %d events up to head %d", storeID, len(evs), head)
		}
		for j, ev := range evs {
			if ev.SeqNum != int64(j+1) || ev.ParentSeqNum != int64(j) || ev.ClientID != storeID {
				t.Fatalf("%s: event %d is %+v", storeID, j, ev.Event)
			}
		}
	}
	return n
}
