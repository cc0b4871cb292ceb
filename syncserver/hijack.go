package syncserver

import (
	"bufio"
	"net"
	"net/http"
)

// writeBufferBytes is the size of a WebSocket connection's write buffer.
// The HTTP server's is 4 KiB, so that a message a little larger (a live
// page of a few dozen events) leaves in two writes to the socket, one
// system call each; with this buffer, most live pages leave in one.
const writeBufferBytes = 16 << 10

// bigWriteBuffer hands the WebSocket library a connection with a write
// buffer of writeBufferBytes when it takes the connection over.
type bigWriteBuffer struct {
	http.ResponseWriter
}

func (w bigWriteBuffer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if rw.Writer.Buffered() == 0 {
		rw.Writer = bufio.NewWriterSize(conn, writeBufferBytes)
	}
	return conn, rw, nil
}

// Unwrap lets http.ResponseController reach the HTTP server's writer.
func (w bigWriteBuffer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
