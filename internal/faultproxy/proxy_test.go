package faultproxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/livestore-go/livestore/internal/faultproxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer echoes every line it receives, prefixed with "echo ", and
// records the connections it saw end.
type echoServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	ended []error
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln}
	var conns sync.Map
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						s.mu.Lock()
						s.ended = append(s.ended, err)
						s.mu.Unlock()
						if errors.Is(err, io.EOF) {
							// Half-closed by the client: one last answer.
							_, _ = io.WriteString(c, "bye\n")
						}
						return
					}
					if _, err := io.WriteString(c, "echo "+line); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		s.wg.Wait()
	})
	return s
}

func (s *echoServer) endedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ended)
}

func newProxy(t *testing.T, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(faultproxy.Options{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, p *faultproxy.Proxy) *client {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, r: bufio.NewReader(c)}
}

// roundTrip sends line and returns the answer, or an error after d.
func (c *client) roundTrip(line string, d time.Duration) (string, error) {
	c.c.SetDeadline(time.Now().Add(d))
	defer c.c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c.c, line+"\n"); err != nil {
		return "", err
	}
	s, err := c.r.ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}

// answered reports whether a new connection through p answers a line. A
// connection reset on accept may fail the dial itself (the RST can arrive
// before connect returns).
func answered(t *testing.T, p *faultproxy.Proxy) bool {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		return false
	}
	defer c.Close()
	cl := &client{t: t, c: c, r: bufio.NewReader(c)}
	_, err = cl.roundTrip("x", 2*time.Second)
	return err == nil
}

func (c *client) mustRoundTrip(line string) {
	c.t.Helper()
	got, err := c.roundTrip(line, 5*time.Second)
	if err != nil || got != "echo "+line {
		c.t.Fatalf("round trip %q: got %q, %v", line, got, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestForwardsBothWays(t *testing.T) {
	srv := startEcho(t)
	p := newProxy(t, srv.ln.Addr().String())
	c := dial(t, p)
	for _, s := range []string{"a", strings.Repeat("x", 200_000), "b"} {
		c.mustRoundTrip(s)
	}
	if n := len(p.Conns()); n != 1 {
		t.Fatalf("%d conns", n)
	}
	if st := p.Stats(); st.Accepted != 1 || st.BytesSent < 400_000 {
		t.Fatalf("stats %+v", st)
	}
}

func TestHalfClosePassesThrough(t *testing.T) {
	srv := startEcho(t)
	p := newProxy(t, srv.ln.Addr().String())
	c := dial(t, p)
	c.mustRoundTrip("hello")
	if err := c.c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(c.r)
	if err != nil || string(rest) != "bye\n" {
		t.Fatalf("after half-close: %q, %v", rest, err)
	}
	waitFor(t, "connection to be forgotten", func() bool { return len(p.Conns()) == 0 })
}

func TestDelay(t *testing.T) {
	srv := startEcho(t)
	p := newProxy(t, srv.ln.Addr().String())
	c := dial(t, p)
	c.mustRoundTrip("warm")
	p.SetDelay(50 * time.Millisecond)
	start := time.Now()
	c.mustRoundTrip("slow")
	// Both directions are delayed.
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("round trip with 50ms delay each way took %v", d)
	}
	p.SetDelay(0)
	conn := p.Conns()[0]
	conn.SetDelay(30 * time.Millisecond)
	start = time.Now()
	c.mustRoundTrip("per-conn")
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Fatalf("round trip with 30ms connection delay took %v", d)
	}
	// Delayed bytes keep their order.
	conn.SetDelay(0)
	for i := 0; i < 20; i++ {
		c.mustRoundTrip(strings.Repeat("y", i))
	}
}

func TestBlackholeDropsAndResetsDamaged(t *testing.T) {
	srv := startEcho(t)
	p := newProxy(t, srv.ln.Addr().String())
	c := dial(t, p)
	c.mustRoundTrip("before")
	idle := dial(t, p) // sends nothing during the blackhole
	idle.mustRoundTrip("before")
	p.SetBlackhole(true)
	if got, err := c.roundTrip("lost", 200*time.Millisecond); err == nil {
		t.Fatalf("blackholed round trip answered %q", got)
	}
	// A connection accepted during the blackhole is open but silent.
	c2 := dial(t, p)
	if got, err := c2.roundTrip("lost too", 100*time.Millisecond); err == nil {
		t.Fatalf("new connection answered %q during blackhole", got)
	}
	p.SetBlackhole(false)
	// The connections that lost bytes are reset; the other one resumes.
	for _, lost := range []*client{c, c2} {
		lost.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := lost.r.ReadByte(); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("connection that lost bytes: read %v, want a reset", err)
		}
	}
	idle.mustRoundTrip("after")
	dial(t, p).mustRoundTrip("new")
	if st := p.Stats(); st.BytesDrop == 0 || st.Blackholes != 1 || st.Reset != 2 {
		t.Fatalf("stats %+v", st)
	}

	// Per connection: only that connection goes silent.
	other := dial(t, p)
	other.mustRoundTrip("x")
	conns := p.Conns()
	victim := conns[len(conns)-1]
	victim.SetBlackhole(true)
	if _, err := other.roundTrip("lost", 100*time.Millisecond); err == nil {
		t.Fatal("blackholed connection answered")
	}
	idle.mustRoundTrip("unaffected")
	victim.SetBlackhole(false)
	select {
	case <-victim.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("damaged connection not reset")
	}
}

func TestStallHoldsAndResumes(t *testing.T) {
	srv := startEcho(t)
	p := newProxy(t, srv.ln.Addr().String())
	c := dial(t, p)
	c.mustRoundTrip("before")
	p.SetStall(true)
	if got, err := c.roundTrip("held", 150*time.Millisecond); err == nil {
		t.Fatalf("stalled round trip answered %q", got)
	}
	// More than the queue holds: the proxy stops reading, nothing is lost.
	big := strings.Repeat("z", 8<<20)
	writeDone := make(chan error, 1)
	go func() {
		_, err := io.WriteString(c.c, big+"\n")
		writeDone <- err
	}()
	time.Sleep(100 * time.Millisecond)
	p.SetStall(false)
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, want := range []string{"echo held", "echo " + big} {
		line, err := c.r.ReadString('\n')
		if err != nil || strings.TrimSuffix(line, "\n") != want {
			t.Fatalf("after the stall: %.40q, %v; want %.40q", line, err, want)
		}
	}
	if err := <-writeDone; err != nil {
		t.Fatal(err)
	}
	// Per connection.
	p.Conns()[0].SetStall(true)
	if _, err := c.roundTrip("held", 100*time.Millisecond); err == nil {
		t.Fatal("stalled connection answered")
	}
	p.Conns()[0].SetStall(false)
	line, err := c.r.ReadString('\n')
	if err != nil || line != "echo held\n" {
		t.Fatalf("after the connection's stall: %q, %v", line, err)
	}
	if st := p.Stats(); st.Stalls != 2 || st.BytesDrop != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCutClosesBothSides(t *testing.T) {
	srv := startEcho(t)
	p := newProxy(t, srv.ln.Addr().String())
	c := dial(t, p)
	c.mustRoundTrip("x")
	if n := p.CutAll(); n != 1 {
		t.Fatalf("cut %d", n)
	}
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("client read after cut: %v", err)
	}
	waitFor(t, "server to see the cut", func() bool { return srv.endedCount() == 1 })
	if st := p.Stats(); st.Cut != 1 {
		t.Fatalf("stats %+v", st)
	}
	// New connections work.
	dial(t, p).mustRoundTrip("again")
}

func TestResetForcesNewConnections(t *testing.T) {
	srv := startEcho(t)
	p := newProxy(t, srv.ln.Addr().String())
	c1, c2 := dial(t, p), dial(t, p)
	c1.mustRoundTrip("1")
	c2.mustRoundTrip("2")
	// Reset one connection only.
	conns := p.Conns()
	if len(conns) != 2 {
		t.Fatalf("%d conns", len(conns))
	}
	if !conns[0].Reset() || conns[0].Reset() {
		t.Fatal("Reset should report true once")
	}
	c1.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c1.r.ReadByte(); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read after reset: %v", err)
	}
	c2.mustRoundTrip("still here")
	if n := p.ResetAll(); n != 1 {
		t.Fatalf("reset %d", n)
	}
	waitFor(t, "server to see both resets", func() bool { return srv.endedCount() == 2 })
	dial(t, p).mustRoundTrip("new")
}

func TestRefuseAndPartition(t *testing.T) {
	srv := startEcho(t)
	p := newProxy(t, srv.ln.Addr().String())
	open := dial(t, p)
	open.mustRoundTrip("x")
	p.Partition()
	if answered(t, p) {
		t.Fatal("refused connection answered")
	}
	if _, err := open.roundTrip("y", 100*time.Millisecond); err == nil {
		t.Fatal("partitioned connection answered")
	}
	p.Heal()
	// The open connection resumes where it stalled.
	if line, err := open.r.ReadString('\n'); err != nil || line != "echo y\n" {
		t.Fatalf("after healing: %q, %v", line, err)
	}
	dial(t, p).mustRoundTrip("healed")
	if st := p.Stats(); st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTargetDownAndRetarget(t *testing.T) {
	p := newProxy(t, "127.0.0.1:1")
	// A port nothing listens on (and not the proxy's own).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	if err := p.SetTarget(dead); err != nil {
		t.Fatal(err)
	}
	if answered(t, p) {
		t.Fatal("answer from a dead target")
	}
	srv := startEcho(t)
	if err := p.SetTarget(srv.ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	dial(t, p).mustRoundTrip("alive")
	if st := p.Stats(); st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, o := range []faultproxy.Options{
		{Target: "192.0.2.1:80"},
		{Target: "example.com:80"},
		{Listen: "0.0.0.0:0", Target: "127.0.0.1:1"},
	} {
		if p, err := faultproxy.New(o); err == nil {
			p.Close()
			t.Fatalf("New(%+v) accepted a non-loopback address", o)
		}
	}
	p := newProxy(t, "[::1]:1")
	if err := p.SetTarget("10.0.0.1:1"); err == nil {
		t.Fatal("SetTarget accepted a non-loopback address")
	}
}

func TestCloseStopsEverything(t *testing.T) {
	srv := startEcho(t)
	p, err := faultproxy.New(faultproxy.Options{Target: srv.ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	var cs []*client
	for i := 0; i < 10; i++ {
		c := dial(t, p)
		c.mustRoundTrip("x")
		cs = append(cs, c)
	}
	p.SetDelay(time.Hour) // queued bytes must not keep Close waiting
	for _, c := range cs {
		io.WriteString(c.c, "stuck\n")
	}
	done := make(chan struct{})
	go func() {
		p.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	for _, c := range cs {
		c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.r.ReadByte(); err == nil {
			t.Fatal("connection open after Close")
		}
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("still listening after Close")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
