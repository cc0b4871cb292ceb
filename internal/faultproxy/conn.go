package faultproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is one proxied connection: a client connection and the proxy's
// connection to the target. Its controls add to the proxy's global ones.
type Conn struct {
	p      *Proxy
	id     uint64
	client net.Conn

	delay     atomic.Int64
	blackhole atomic.Bool
	stall     atomic.Bool
	damaged   atomic.Bool // bytes were dropped: the stream is broken

	dialCtx    context.Context
	cancelDial context.CancelFunc

	mu       sync.Mutex
	upstream net.Conn // nil until dialed
	down     bool     // torn down
	done     chan struct{}
	halves   int // directions that ended cleanly (EOF passed on)
}

func newConn(p *Proxy, id uint64, client net.Conn) *Conn {
	ctx, cancel := context.WithTimeout(context.Background(), p.dialTimeout)
	return &Conn{p: p, id: id, client: client, dialCtx: ctx, cancelDial: cancel, done: make(chan struct{})}
}

// ID numbers the connections of a proxy in the order they were accepted,
// from 1.
func (c *Conn) ID() uint64 { return c.id }

// ClientAddr is the address of the client side (the client's local address).
func (c *Conn) ClientAddr() string { return c.client.RemoteAddr().String() }

// Done is closed when the connection has been closed, for any reason.
func (c *Conn) Done() <-chan struct{} { return c.done }

// SetDelay delays the bytes forwarded on this connection by d (the larger of
// d and the global delay applies).
func (c *Conn) SetDelay(d time.Duration) {
	if d > 0 {
		c.p.stats.delays.Add(1)
	}
	c.delay.Store(int64(max(d, 0)))
}

// SetBlackhole discards (on) the bytes of this connection, both directions,
// or forwards them again (off); if bytes were lost, switching it off resets
// the connection instead.
func (c *Conn) SetBlackhole(on bool) {
	if on {
		if !c.blackhole.Swap(true) {
			c.p.stats.blackholes.Add(1)
		}
		return
	}
	c.blackhole.Store(false)
	c.resetIfDamaged()
}

// SetStall holds (on) the bytes of this connection, both directions, until
// it is switched off.
func (c *Conn) SetStall(on bool) {
	if on && !c.stall.Swap(true) {
		c.p.stats.stalls.Add(1)
	}
	if !on {
		c.stall.Store(false)
	}
}

// resetIfDamaged resets a connection that lost bytes to a blackhole that is
// no longer in force.
func (c *Conn) resetIfDamaged() {
	if c.damaged.Load() && !c.blackholed() {
		c.Reset()
	}
}

// Cut closes both sides of the connection with FIN. It reports whether the
// connection was still open.
func (c *Conn) Cut() bool {
	if c.teardown(false) {
		c.p.stats.cut.Add(1)
		return true
	}
	return false
}

// Reset closes both sides of the connection with RST. It reports whether the
// connection was still open.
func (c *Conn) Reset() bool {
	if c.teardown(true) {
		c.p.stats.reset.Add(1)
		return true
	}
	return false
}

func (c *Conn) blackholed() bool { return c.blackhole.Load() || c.p.blackhole.Load() }

func (c *Conn) stalled() bool { return c.stall.Load() || c.p.stall.Load() }

// drop counts n bytes lost to a blackhole.
func (c *Conn) drop(n int) {
	c.damaged.Store(true)
	c.p.stats.dropped.Add(int64(n))
}

func (c *Conn) currentDelay() time.Duration {
	return time.Duration(max(c.delay.Load(), c.p.delay.Load()))
}

// teardown closes both sides once; it reports whether this call did it.
func (c *Conn) teardown(rst bool) bool {
	c.mu.Lock()
	if c.down {
		c.mu.Unlock()
		return false
	}
	c.down = true
	up := c.upstream
	close(c.done)
	c.mu.Unlock()
	c.cancelDial()
	if rst {
		resetConn(c.client)
		if up != nil {
			resetConn(up)
		}
		return true
	}
	_ = c.client.Close()
	if up != nil {
		_ = up.Close()
	}
	return true
}

func (c *Conn) run() {
	defer c.p.wg.Done()
	defer c.p.forget(c)
	target := *c.p.target.Load()
	var d net.Dialer
	up, err := d.DialContext(c.dialCtx, "tcp", target)
	c.cancelDial()
	if err != nil {
		if c.teardown(true) {
			c.p.stats.refused.Add(1)
		}
		return
	}
	c.mu.Lock()
	if c.down {
		c.mu.Unlock()
		_ = up.Close()
		return
	}
	c.upstream = up
	c.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(4)
	go c.pump(c.client, up, &wg)
	go c.pump(up, c.client, &wg)
	wg.Wait()
	c.teardown(false)
}

// stallPoll is how often a stalled writer checks whether the stall is over.
const stallPoll = 5 * time.Millisecond

type chunk struct {
	data []byte
	due  time.Time
}

// pump forwards src to dst: a reader goroutine (this one) queues what it
// reads with the time it is due, and a writer goroutine writes it then. The
// queue is bounded, so a slow destination slows the source down. EOF from
// src is passed on as a half-close of dst once the queue is written.
func (c *Conn) pump(src, dst net.Conn, wg *sync.WaitGroup) {
	defer wg.Done()
	q := make(chan chunk, 64)
	go func() {
		defer wg.Done()
		c.write(q, dst)
	}()
	defer close(q)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if c.blackholed() {
				c.drop(n)
			} else {
				ch := chunk{data: append([]byte(nil), buf[:n]...)}
				if d := c.currentDelay(); d > 0 {
					ch.due = time.Now().Add(d)
				}
				select {
				case q <- ch:
				case <-c.done:
					return
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				c.teardown(false)
			}
			return
		}
	}
}

func (c *Conn) write(q <-chan chunk, dst net.Conn) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for ch := range q {
		if wait := time.Until(ch.due); !ch.due.IsZero() && wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-c.done:
				return
			}
		}
		for c.stalled() && !c.blackholed() {
			if timer == nil {
				timer = time.NewTimer(stallPoll)
			} else {
				timer.Reset(stallPoll)
			}
			select {
			case <-timer.C:
			case <-c.done:
				return
			}
		}
		if c.blackholed() {
			c.drop(len(ch.data))
			continue
		}
		if _, err := dst.Write(ch.data); err != nil {
			c.teardown(false)
			return
		}
		c.p.stats.sent.Add(int64(len(ch.data)))
	}
	// The source ended cleanly: pass the EOF on.
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	c.mu.Lock()
	c.halves++
	both := c.halves == 2
	c.mu.Unlock()
	if both {
		c.teardown(false)
	}
}
