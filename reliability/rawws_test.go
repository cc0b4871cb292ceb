package reliability

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Raw WebSocket plumbing for hostile clients: upgrade requests and frames
// written by hand, so that tests control every byte and its timing, and so
// that ten thousand idle connections cost a socket and a small buffer each.

// upgradeRequest is the HTTP request that opens a sync WebSocket.
func upgradeRequest(host, query string) []byte {
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	return []byte(fmt.Sprintf("GET /?%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", query, host, base64.StdEncoding.EncodeToString(key)))
}

// rawConn is an upgraded WebSocket on a bare TCP connection.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

// rawUpgrade connects to addr and upgrades to a WebSocket with query.
func rawUpgrade(addr, query string, timeout time.Duration) (*rawConn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(upgradeRequest(addr, query)); err != nil {
		c.Close()
		return nil, err
	}
	r := bufio.NewReaderSize(c, 512)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("upgrade: HTTP %d", resp.StatusCode)
	}
	c.SetDeadline(time.Time{})
	return &rawConn{Conn: c, r: r}, nil
}

// Opcodes used here.
const (
	opText  = 1
	opClose = 8
)

// frameHeader is the header of a final, masked client frame of the given
// length (the length is declared, not checked: hostile tests lie).
func frameHeader(opcode byte, length uint64, mask [4]byte) []byte {
	h := []byte{0x80 | opcode}
	switch {
	case length < 126:
		h = append(h, 0x80|byte(length))
	case length <= 0xffff:
		h = append(h, 0x80|126, byte(length>>8), byte(length))
	default:
		h = append(h, 0x80|127)
		h = binary.BigEndian.AppendUint64(h, length)
	}
	return append(h, mask[:]...)
}

// clientFrame is a complete masked client frame.
func clientFrame(opcode byte, payload []byte) []byte {
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	f := frameHeader(opcode, uint64(len(payload)), mask)
	for i, b := range payload {
		f = append(f, b^mask[i%4])
	}
	return f
}

// readFrame reads one server frame (servers do not mask) and returns its
// opcode and payload. Payloads over limit fail.
func (c *rawConn) readFrame(limit int) (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > uint64(limit) {
		return 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.r, p); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0f, p, nil
}

// readText reads frames until a text message (or a close frame, an error).
func (c *rawConn) readText(limit int) (string, error) {
	for {
		op, p, err := c.readFrame(limit)
		if err != nil {
			return "", err
		}
		switch op {
		case opText:
			return string(p), nil
		case opClose:
			code := 0
			if len(p) >= 2 {
				code = int(binary.BigEndian.Uint16(p))
			}
			return "", fmt.Errorf("closed by server: %d %s", code, p[min(2, len(p)):])
		}
	}
}

// resetClose closes a TCP connection with RST, leaving no TIME_WAIT behind
// (thousands of connections are closed at once).
func resetClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
