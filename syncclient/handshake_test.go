package syncclient_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncclient"
)

// TestDialHandshakeTimeout: a server (or a network path) that accepts the
// TCP connection but never answers the upgrade must not keep Dial waiting
// forever, even with a context without deadline, as a store's reconnect loop
// uses. Found by the partition tests in package reliability: a reconnect
// attempt whose request was swallowed during a partition hung for good.
func TestDialHandshakeTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()

	start := time.Now()
	_, err = syncclient.Dial(context.Background(), "ws://"+ln.Addr().String(),
		syncclient.Options{StoreID: "s", HandshakeTimeout: 200 * time.Millisecond})
	if err == nil {
		t.Fatal("Dial succeeded against a silent server")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Dial returned after %v", d)
	}
}

// TestHandshakeTimeoutDoesNotLimitConnection: the timeout bounds the
// upgrade only; the connection lives on after it.
func TestHandshakeTimeoutDoesNotLimitConnection(t *testing.T) {
	url, _ := serve(t, sqliteStorage(t))
	c, err := syncclient.Dial(t.Context(), url, syncclient.Options{StoreID: "s", HandshakeTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping after the handshake timeout passed: %v", err)
	}
}
