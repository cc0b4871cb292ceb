// Package faultproxy is a loopback TCP proxy for fault-injection tests. It
// sits between clients and a server and, on command, delays the bytes it
// forwards, stalls them (holds them until the stall is lifted, as a network
// partition of TCP connections does), drops them (a blackhole), cuts
// connections (closes both sides), resets them (closes both sides with a
// TCP RST, so that clients must reconnect), or refuses new connections.
//
// A dropped byte breaks the stream it belonged to, which TCP never does to a
// connection it keeps open: so when a blackhole is lifted, the connections
// that lost bytes to it are reset rather than resumed.
//
// Every control exists globally (on the [Proxy]: it applies to the open
// connections and to the ones accepted later) and per connection (on a
// [Conn]). The effective delay of a connection is the larger of the two; a
// connection is stalled or blackholed when either says so.
//
// The proxy only listens on and connects to loopback addresses. It owns
// every goroutine it starts; [Proxy.Close] closes all connections and waits
// for them. It moves bytes and knows nothing of what they mean: no
// WebSocket framing, no sync protocol, no TLS.
package faultproxy

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure [New].
type Options struct {
	// Listen is the address to listen on; default "127.0.0.1:0". It must be
	// a loopback address.
	Listen string
	// Target is the server's address (host:port on loopback). It can be
	// changed later with [Proxy.SetTarget].
	Target string
	// DialTimeout bounds connecting to the target; default 5 s.
	DialTimeout time.Duration
}

// Stats counts what the proxy did. Faults count commands that affected
// something: a Cut of three connections counts three.
type Stats struct {
	Accepted    int64 // connections accepted from clients
	Refused     int64 // connections reset on accept (refusing, or the target was down)
	Cut         int64 // connections closed by Cut/CutAll
	Reset       int64 // connections reset by Reset/ResetAll
	BytesSent   int64 // bytes forwarded (both directions)
	BytesDrop   int64 // bytes dropped by a blackhole (both directions)
	Blackholes  int64 // times a blackhole was switched on (global or per connection)
	Stalls      int64 // times a stall was switched on (global or per connection)
	DelayEvents int64 // times a non-zero delay was set (global or per connection)
}

// Proxy is a running fault-injection proxy. Its methods are safe for
// concurrent use.
type Proxy struct {
	ln          net.Listener
	dialTimeout time.Duration

	target    atomic.Pointer[string]
	delay     atomic.Int64 // nanoseconds
	blackhole atomic.Bool
	stall     atomic.Bool
	refuse    atomic.Bool

	mu     sync.Mutex
	conns  map[uint64]*Conn
	nextID uint64
	closed bool

	wg        sync.WaitGroup // accept loop and connections
	closeOnce sync.Once

	stats struct {
		accepted, refused, cut, reset, sent, dropped, blackholes, stalls, delays atomic.Int64
	}
}

// New starts a proxy listening on opts.Listen and forwarding to opts.Target.
func New(opts Options) (*Proxy, error) {
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if err := checkLoopback(opts.Listen); err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	if err := checkLoopback(opts.Target); err != nil {
		return nil, fmt.Errorf("faultproxy: target: %w", err)
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p := &Proxy{ln: ln, dialTimeout: opts.DialTimeout, conns: make(map[uint64]*Conn)}
	target := opts.Target
	p.target.Store(&target)
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// checkLoopback accepts host:port addresses whose host is a loopback IP or
// "localhost".
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address", addr)
	}
	return nil
}

// Addr is the address clients connect to (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetTarget changes the address new connections are forwarded to; open
// connections keep theirs.
func (p *Proxy) SetTarget(addr string) error {
	if err := checkLoopback(addr); err != nil {
		return fmt.Errorf("faultproxy: target: %w", err)
	}
	p.target.Store(&addr)
	return nil
}

// SetDelay delays every byte forwarded on every connection by d (0: none).
// Bytes already queued keep the delay they were read with.
func (p *Proxy) SetDelay(d time.Duration) {
	if d > 0 {
		p.stats.delays.Add(1)
	}
	p.delay.Store(int64(max(d, 0)))
}

// SetBlackhole switches the global blackhole: while it is on, bytes read from
// either side of every connection are discarded, including those of
// connections accepted meanwhile. Closing one side still closes the other.
// Switching it off resets the connections that lost bytes.
func (p *Proxy) SetBlackhole(on bool) {
	if on {
		if !p.blackhole.Swap(true) {
			p.stats.blackholes.Add(1)
		}
		return
	}
	p.blackhole.Store(false)
	for _, c := range p.Conns() {
		c.resetIfDamaged()
	}
}

// SetStall switches the global stall: while it is on, no byte is forwarded
// on any connection; they are held (the proxy stops reading once a
// connection's queue is full) and forwarded when the stall is lifted.
func (p *Proxy) SetStall(on bool) {
	if on && !p.stall.Swap(true) {
		p.stats.stalls.Add(1)
	}
	if !on {
		p.stall.Store(false)
	}
}

// SetRefuse makes the proxy reset new connections as soon as it accepts
// them (on) or forward them again (off). Open connections are not affected.
func (p *Proxy) SetRefuse(on bool) { p.refuse.Store(on) }

// Partition cuts the clients off as a network partition does: new
// connections are refused and open ones stall until Heal. It is
// SetRefuse(true) and SetStall(true).
func (p *Proxy) Partition() {
	p.SetRefuse(true)
	p.SetStall(true)
}

// Heal undoes every global fault: no refusing, no stall, no blackhole (the
// connections that lost bytes to it are reset), no delay. Per-connection
// settings stay.
func (p *Proxy) Heal() {
	p.SetRefuse(false)
	p.SetStall(false)
	p.SetBlackhole(false)
	p.SetDelay(0)
}

// Conns returns the open connections, oldest first.
func (p *Proxy) Conns() []*Conn {
	p.mu.Lock()
	out := make([]*Conn, 0, len(p.conns))
	for _, c := range p.conns {
		out = append(out, c)
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// CutAll closes every open connection (both sides, with FIN) and returns how
// many it closed.
func (p *Proxy) CutAll() int {
	n := 0
	for _, c := range p.Conns() {
		if c.Cut() {
			n++
		}
	}
	return n
}

// ResetAll resets every open connection (both sides, with RST), forcing the
// clients to open new ones, and returns how many it reset.
func (p *Proxy) ResetAll() int {
	n := 0
	for _, c := range p.Conns() {
		if c.Reset() {
			n++
		}
	}
	return n
}

// Stats returns the counters so far.
func (p *Proxy) Stats() Stats {
	return Stats{
		Accepted:    p.stats.accepted.Load(),
		Refused:     p.stats.refused.Load(),
		Cut:         p.stats.cut.Load(),
		Reset:       p.stats.reset.Load(),
		BytesSent:   p.stats.sent.Load(),
		BytesDrop:   p.stats.dropped.Load(),
		Blackholes:  p.stats.blackholes.Load(),
		Stalls:      p.stats.stalls.Load(),
		DelayEvents: p.stats.delays.Load(),
	}
}

// Close stops listening, closes every connection and waits for the proxy's
// goroutines to end.
func (p *Proxy) Close() error {
	var err error
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		conns := make([]*Conn, 0, len(p.conns))
		for _, c := range p.conns {
			conns = append(conns, c)
		}
		p.mu.Unlock()
		err = p.ln.Close()
		for _, c := range conns {
			c.teardown(false)
		}
		p.wg.Wait()
	})
	return err
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failures (e.g. out of file descriptors): back off.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.stats.accepted.Add(1)
		if p.refuse.Load() {
			p.stats.refused.Add(1)
			resetConn(client)
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			resetConn(client)
			return
		}
		p.nextID++
		c := newConn(p, p.nextID, client)
		p.conns[c.id] = c
		p.wg.Add(1)
		p.mu.Unlock()
		go c.run()
	}
}

func (p *Proxy) forget(c *Conn) {
	p.mu.Lock()
	delete(p.conns, c.id)
	p.mu.Unlock()
}

// resetConn closes a TCP connection with RST instead of FIN.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
