package reliability

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncclient"
	"github.com/livestore-go/livestore/syncproto"
	"github.com/livestore-go/livestore/syncserver/sqlitestore"
)

// ---- stores of large events ----

// seedStore writes n todos of textBytes each as store storeID into the
// SQLite storage of dataDir (before a server runs on it) and returns their
// ids.
func seedStore(t testing.TB, dataDir, storeID string, n, textBytes int) []string {
	t.Helper()
	st, err := sqlitestore.Open(filepath.Join(dataDir, "sync.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ids := todoIDs(storeID, n)
	text := strings.Repeat("x", textBytes)
	for i := 0; i < n; i += 10 {
		var batch []syncproto.Event
		for j := i; j < min(n, i+10); j++ {
			batch = append(batch, todoEvent(ids[j], text, int64(j+1)))
		}
		if err := st.Append(context.Background(), storeID, batch, time.Now()); err != nil {
			t.Fatalf("seed %s: %v", storeID, err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// ---- attacks ----

// pullRequest is a non-live pull of storeID from the start.
func pullRequest(id, storeID string) []byte {
	return []byte(request(id, "SyncWsRpc.Pull", `{"storeId":"`+storeID+`","live":false,"cursor":{"_tag":"None"}}`))
}

// unackedPulls opens n non-live pulls of storeID on one connection, one
// after the other, reads the first answer of each and never acks. It
// returns the connection, left open, how many were served (a Chunk) and how
// many refused; a refusal must be an UnknownError naming the limit. With
// stopAt > 0 it gives up as soon as pull stopAt is served.
func unackedPulls(addr, storeID string, n, stopAt int) (c *rawConn, served, refused int, err error) {
	c, err = rawUpgrade(addr, "storeId="+storeID+"&transport=ws", 10*time.Second)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("pulling client: %w", err)
	}
	for i := 1; i <= n; i++ {
		id := strconv.Itoa(i)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(clientFrame(opText, pullRequest(id, storeID))); err != nil {
			return c, served, refused, fmt.Errorf("pull %d: %w", i, err)
		}
		for {
			text, err := c.readText(32 << 20)
			if err != nil {
				return c, served, refused, fmt.Errorf("pull %d: no answer: %w", i, err)
			}
			if !strings.Contains(text, `"requestId":"`+id+`"`) {
				continue
			}
			if strings.HasPrefix(text, `{"_tag":"Chunk"`) {
				served++
				if i == stopAt {
					return c, served, refused, nil
				}
				break
			}
			var ue *syncproto.UnknownError
			if err := refusal(text); !errors.As(err, &ue) || !strings.Contains(strings.ToLower(ue.Message), "limit") {
				return c, served, refused, fmt.Errorf("pull %d: answer %.300q, want a Chunk or an UnknownError naming the limit", i, text)
			}
			refused++
			break
		}
	}
	return c, served, refused, nil
}

// bigMessage is a push of about size bytes: one event at parent 5 of a
// store that is behind it, so that it is refused and stores nothing.
func bigMessage(storeID string, size int) []byte {
	head := request("1", "SyncWsRpc.Push", pushPayload(storeID, "["+rawEvent(`"v1.TodoCreated"`, `{"id":"idle","text":"PAD"}`, 6, 5)+"]"))
	return []byte(strings.Replace(head, "PAD", strings.Repeat("p", size-len(head)), 1))
}

// idleAfterBigMessage opens n connections that each send one message of
// size bytes, read its answer and then stay idle; 8 at a time.
func idleAfterBigMessage(addr, storeID string, n, size int) ([]*rawConn, error) {
	msg := clientFrame(opText, bigMessage(storeID, size))
	conns := make([]*rawConn, n)
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || firstErr.Load() != nil {
					return
				}
				c, err := rawUpgrade(addr, "storeId="+storeID+"&transport=ws", 30*time.Second)
				if err != nil {
					firstErr.Store(fmt.Errorf("idle connection %d: %w", i, err))
					return
				}
				conns[i] = c
				c.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := c.Write(msg); err != nil {
					firstErr.Store(fmt.Errorf("idle connection %d: send: %w", i, err))
					return
				}
				if _, err := c.readText(1 << 20); err != nil {
					firstErr.Store(fmt.Errorf("idle connection %d: no answer to its %d-byte message: %w", i, size, err))
					return
				}
				c.SetDeadline(time.Time{})
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		for _, c := range conns {
			if c != nil {
				resetClose(c)
			}
		}
		return nil, err
	}
	return conns, nil
}

// upgradeStatus sends an upgrade request and returns the HTTP status and
// body; a connection that was upgraded is returned open.
func upgradeStatus(addr, storeID string) (int, string, net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, "", nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(upgradeRequest(addr, "storeId="+storeID+"&transport=ws")); err != nil {
		c.Close()
		return 0, "", nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return 0, "", nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		c.SetDeadline(time.Time{})
		return resp.StatusCode, "", c, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	c.Close()
	return resp.StatusCode, string(body), nil, nil
}

// ---- the tests ----

// TestHostileUnackedPulls: one connection opened 150 non-live pulls of a
// store of large events, read every chunk and never acked; the server held
// every encoded page (3.4 GiB). Pulls beyond --max-pulls-per-connection
// (default 8) must be refused with UnknownError naming the limit, and the
// server's RSS must stay bounded.
func TestHostileUnackedPulls(t *testing.T) {
	t.Parallel()
	js := useJS(t)
	dataDir := t.TempDir()
	const store = "bigpull"
	want := seedStore(t, dataDir, store, 120, 100_000) // 12 MB: one 256-event window
	srv := startServe(t, freeAddr(t), "--data", dataDir)
	pid := srv.cmd.Process.Pid
	w := watchRSS(t, pid, 1<<30)
	base := rssBytes(pid)

	const maxPulls = 8 // the default of --max-pulls-per-connection
	puller, served, refused, err := unackedPulls(srv.addr, store, 150, maxPulls+1)
	if puller != nil {
		defer resetClose(puller)
	}
	w.check(t, "150 unacknowledged pulls")
	if err != nil {
		t.Fatal(err)
	}
	if served != maxPulls || refused != 150-maxPulls {
		t.Fatalf("150 unacknowledged pulls on one connection: %d served, %d refused; want %d served (--max-pulls-per-connection default), the rest refused", served, refused, maxPulls)
	}
	now := rssBytes(pid)
	t.Logf("server RSS %s before, %s with %d unacknowledged pulls open (peak %s)", mib(base), mib(now), served, mib(w.peak.Load()))
	if bound := int64(256 << 20); w.peak.Load() > bound {
		t.Errorf("server RSS peaked at %s with %d unacknowledged pulls, want under %s", mib(w.peak.Load()), served, mib(bound))
	}

	// The attacker's connection stays open; honest clients carry on.
	more := todoIDs("after", 2)
	pushTodos(t, srv.url(), store, int64(len(want)), more, 20)
	checkUsable(t, js, srv.url(), store, append(want, more...), usable{jsPush: true})
}

// TestHostileIdleBigMessages: 200 connections that each sent one 2 MiB
// message and went idle held ~4 MiB each. The server's RSS must stay
// bounded, and --max-connections N must refuse connection N+1 with HTTP 503
// naming the limit.
func TestHostileIdleBigMessages(t *testing.T) {
	t.Parallel()
	js := useJS(t)
	const maxConns = 210
	srv := startServe(t, freeAddr(t), "--data", t.TempDir(), "--max-connections", strconv.Itoa(maxConns))
	pid := srv.cmd.Process.Pid
	w := watchRSS(t, pid, 1<<30)
	base := rssBytes(pid)
	const store = "idlebig"
	before := todoIDs("a", 2)
	head := pushTodos(t, srv.url(), store, 0, before, 20)

	const idle, size = 200, 2<<20 - 1024 // just under --max-message-bytes (2 MiB)
	start := time.Now()
	conns, err := idleAfterBigMessage(srv.addr, store, idle, size)
	w.check(t, "200 idle connections after a 2 MiB message each")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range conns {
			resetClose(c)
		}
	}()
	// Generous for runtime slack, far below 200 × 2 MiB.
	settled := waitRSSBelow(t, pid, 192<<20, 20*time.Second, fmt.Sprintf("%d idle connections after a 2 MiB message each", idle))
	t.Logf("server RSS %s before, %s after %d connections sent %d bytes each and went idle (peak %s, %v)",
		mib(base), mib(settled), idle, size, mib(w.peak.Load()), time.Since(start).Round(time.Millisecond))

	// Fill up to the limit: this test's connections are the only ones.
	var fillers []net.Conn
	defer func() {
		for _, c := range fillers {
			resetClose(c)
		}
	}()
	open := idle
	for {
		status, body, c, err := upgradeStatus(srv.addr, store)
		if err != nil {
			t.Fatalf("connection %d: %v", open+1, err)
		}
		if c != nil {
			fillers = append(fillers, c)
			open++
			if open > maxConns+5 {
				t.Fatalf("%d connections open with --max-connections %d", open, maxConns)
			}
			continue
		}
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "limit") {
			t.Fatalf("connection %d: HTTP %d %q, want 503 naming the limit", open+1, status, body)
		}
		if open != maxConns {
			t.Fatalf("connection %d refused (HTTP %d %q), want connection %d refused with --max-connections %d", open+1, status, body, maxConns+1, maxConns)
		}
		t.Logf("connection %d refused: HTTP %d %s", open+1, status, strings.TrimSpace(body))
		break
	}
	for _, c := range fillers {
		resetClose(c)
	}
	fillers = nil
	// The server counts a connection until it has seen it close.
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, body, c, err := upgradeStatus(srv.addr, store)
		if c != nil {
			resetClose(c)
			break
		}
		if err == nil && status != http.StatusServiceUnavailable {
			t.Fatalf("connection after closing the fillers: HTTP %d %q", status, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("connections still refused 20 s after %d were closed: %v %d %q", open-idle, err, status, body)
		}
		time.Sleep(50 * time.Millisecond) // the server notices closed sockets on its own time
	}

	after := todoIDs("b", 2)
	pushTodos(t, srv.url(), store, head, after, 20)
	checkUsable(t, js, srv.url(), store, append(before, after...), usable{jsPush: true})
}

// readOnlyMount returns a read-only bind mount of dir, unmounted when the
// test ends. We run as root, for whom file modes do not stop writes.
func readOnlyMount(t testing.TB, dir string) string {
	t.Helper()
	ro := t.TempDir()
	if out, err := exec.Command("mount", "--bind", dir, ro).CombinedOutput(); err != nil {
		t.Fatalf("a read-only directory needs a bind mount (CAP_SYS_ADMIN): mount --bind: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", ro).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", ro, err, out)
		}
	})
	if out, err := exec.Command("mount", "-o", "remount,ro,bind", ro).CombinedOutput(); err != nil {
		t.Fatalf("remount %s read-only: %v %s", ro, err, out)
	}
	return ro
}

// immutable makes path unwritable even for root (chattr +i), undone when
// the test ends.
func immutable(t testing.TB, path string) {
	t.Helper()
	if out, err := exec.Command("chattr", "+i", path).CombinedOutput(); err != nil {
		t.Fatalf("an unwritable file needs chattr +i (CAP_LINUX_IMMUTABLE): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("chattr", "-i", path).CombinedOutput(); err != nil {
			t.Errorf("chattr -i %s: %v %s", path, err, out)
		}
	})
}

// TestHostileStorageHealth: on a read-only data directory the server started
// and /health said OK while every push failed; on a full disk clients got a
// generic error. Now: serve refuses to start on a read-only directory (a
// clear error, non-zero exit); with --max-storage-bytes (a real full
// storage) a push past it is refused with "storage full", /health answers
// 503 "full", the log names the reason, and what was acknowledged stays
// readable by a JS client.
func TestHostileStorageHealth(t *testing.T) {
	t.Parallel()
	js := useJS(t)

	t.Run("read-only data directory", func(t *testing.T) {
		fileRO := t.TempDir()
		seedStore(t, fileRO, "ro", 2, 20)
		immutable(t, filepath.Join(fileRO, "sync.db"))
		mounted := t.TempDir()
		seedStore(t, mounted, "ro", 2, 20)
		for what, dir := range map[string]string{
			"storage file unwritable":           fileRO,
			"data directory mounted read-only":  readOnlyMount(t, mounted),
			"empty directory mounted read-only": readOnlyMount(t, t.TempDir()),
		} {
			start := time.Now()
			_, stderr, err := runCLI(t, 8*time.Second, "serve", "--addr", freeAddr(t), "--data", dir, "--log-level", "warn")
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Errorf("serve with its %s: %v (want it to refuse to start)\n%s", what, err, tailString(stderr, 2<<10))
				continue
			}
			low := strings.ToLower(stderr)
			if !strings.Contains(low, "read-only") && !strings.Contains(low, "writable") && !strings.Contains(low, "read only") {
				t.Errorf("serve with its %s exited (%v) without saying it cannot write: %q", what, err, stderr)
			}
			t.Logf("serve with its %s: exit %d after %v: %s", what, exit.ExitCode(), time.Since(start).Round(time.Millisecond), strings.TrimSpace(stderr))
		}
	})

	t.Run("storage full", func(t *testing.T) {
		srv := startServe(t, freeAddr(t), "--data", t.TempDir(), "--max-storage-bytes", strconv.Itoa(1<<20))
		const store = "full"
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c, err := syncclient.Dial(ctx, srv.url(), syncclient.Options{StoreID: store, PingInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var acked []string
		text := strings.Repeat("f", 20_000)
		var refusedErr error
		for i := 0; i < 200 && refusedErr == nil; i++ {
			id := fmt.Sprintf("f-%03d", i)
			if err := c.Push(ctx, []syncproto.Event{todoEvent(id, text, int64(len(acked)+1))}, nil); err != nil {
				refusedErr = err
				break
			}
			acked = append(acked, id)
		}
		var ue *syncproto.UnknownError
		if !errors.As(refusedErr, &ue) || !strings.Contains(ue.Message, "storage full") {
			t.Fatalf("pushes of 20 KB events into --max-storage-bytes 1 MiB: %d acknowledged, then %v; want an UnknownError saying \"storage full\"", len(acked), refusedErr)
		}
		t.Logf("%d events of 20 KB acknowledged, then: %s", len(acked), ue.Message)
		resp, err := http.Get("http://" + srv.addr + "/health")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"full"`) {
			t.Errorf("/health on a full storage: HTTP %d %s, want 503 with \"full\"", resp.StatusCode, body)
		}
		if !logHas(srv.out.String(), "full") {
			t.Errorf("the server log does not name the full storage:\n%s", tailString(srv.out.String(), 4<<10))
		}
		checkUsable(t, js, srv.url(), store, acked, usable{})
	})
}
