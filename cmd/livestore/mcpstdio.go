package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"
)

// stdioFilter sits between the MCP client's lines and the SDK's transport,
// which ends the whole connection on a line it cannot decode. The filter
// answers such a line itself, as JSON-RPC 2.0 asks — a parse error (-32700)
// for a line that is not JSON, an invalid request (-32600) for JSON that is
// no JSON-RPC message — and passes every good line on, so one bad line
// costs one error answer, not the session.
type stdioFilter struct {
	in   io.Reader
	out  *lockedWriter
	pr   *io.PipeReader
	pw   *io.PipeWriter
	log  *slog.Logger
	done chan struct{}
}

// newStdioFilter starts filtering stdin; the transport reads the good
// lines and writes to stdout. Call stop when the connection has ended.
func newStdioFilter(stdin io.Reader, stdout io.Writer, log *slog.Logger) *stdioFilter {
	pr, pw := io.Pipe()
	f := &stdioFilter{in: stdin, out: &lockedWriter{w: stdout}, pr: pr, pw: pw, log: log, done: make(chan struct{})}
	go f.run()
	return f
}

// transport is the SDK transport over the filtered lines.
func (f *stdioFilter) transport() sdkmcp.Transport {
	return &sdkmcp.IOTransport{Reader: f.pr, Writer: nopWriteCloser{f.out}}
}

// stop ends the filter: it closes stdin when it can, so that a blocked read
// returns, and waits for the filter to end. The process's own standard
// input cannot be unblocked that way; the filter reading it ends with the
// process.
func (f *stdioFilter) stop() {
	f.pr.Close()
	if f.in == os.Stdin {
		return
	}
	if c, ok := f.in.(io.Closer); ok {
		c.Close()
	}
	<-f.done
}

func (f *stdioFilter) run() {
	defer close(f.done)
	sc := bufio.NewScanner(f.in)
	sc.Buffer(make([]byte, 0, 64<<10), sdkmcp.DefaultMaxLineLength)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if code, msg, id := checkMessage(line); code != 0 {
			f.log.Warn("mcp: answered a bad request line", "code", code, "error", msg)
			if err := f.reject(id, code, msg); err != nil {
				f.pw.CloseWithError(err)
				return
			}
			continue
		}
		if _, err := f.pw.Write(append(line, '\n')); err != nil {
			return // the transport has closed
		}
	}
	err := sc.Err()
	if errors.Is(err, bufio.ErrTooLong) {
		err = fmt.Errorf("a request line is longer than %d bytes", sdkmcp.DefaultMaxLineLength)
	}
	f.pw.CloseWithError(err) // nil: EOF
}

// reject writes a JSON-RPC error response for a line that is no message.
func (f *stdioFilter) reject(id json.RawMessage, code int64, msg string) error {
	if id == nil {
		id = json.RawMessage("null")
	}
	resp := struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int64  `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{JSONRPC: "2.0", ID: id}
	resp.Error.Code, resp.Error.Message = code, msg
	b, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("encode error response: %w", err)
	}
	_, err = f.out.Write(append(b, '\n'))
	return err
}

// checkMessage returns 0 for a line the SDK can decode (a message or a
// batch of them), or the JSON-RPC error code and message to answer, with
// the request's id when the line names one.
func checkMessage(line []byte) (code int64, msg string, id json.RawMessage) {
	if !json.Valid(line) {
		var v any
		err := json.Unmarshal(line, &v)
		return jsonrpc.CodeParseError, fmt.Sprintf("Parse error: the line is not JSON (%v)", err), nil
	}
	switch line[0] {
	case '{':
		if _, err := jsonrpc.DecodeMessage(line); err != nil {
			var named struct {
				ID json.RawMessage `json:"id"`
			}
			_ = json.Unmarshal(line, &named)
			return jsonrpc.CodeInvalidRequest, fmt.Sprintf("Invalid Request: not a JSON-RPC 2.0 message (%v)", err), validID(named.ID)
		}
		return 0, "", nil
	case '[':
		var batch []json.RawMessage
		if err := json.Unmarshal(line, &batch); err != nil || len(batch) == 0 {
			return jsonrpc.CodeInvalidRequest, "Invalid Request: an empty batch", nil
		}
		for i, m := range batch {
			if _, err := jsonrpc.DecodeMessage(m); err != nil {
				return jsonrpc.CodeInvalidRequest, fmt.Sprintf("Invalid Request: batch element %d is not a JSON-RPC 2.0 message (%v)", i+1, err), nil
			}
		}
		return 0, "", nil
	}
	return jsonrpc.CodeInvalidRequest, "Invalid Request: a JSON-RPC message is a JSON object", nil
}

// validID returns raw when it is a JSON-RPC id (a string or a number).
func validID(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	switch c := raw[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return raw
	}
	return nil
}

// lockedWriter serializes the writes of the transport and the filter, each
// of which writes whole lines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
