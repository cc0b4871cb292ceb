package difftest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Options tune a run. The zero value is usable.
type Options struct {
	// StepTimeout bounds each Recv step (default 20 s: a busy machine can be slow).
	StepTimeout time.Duration
	// Settle is how long to listen on every connection after the last step for
	// stray messages (default 300 ms).
	Settle time.Duration
}

func (o Options) withDefaults() Options {
	if o.StepTimeout == 0 {
		o.StepTimeout = 20 * time.Second
	}
	if o.Settle == 0 {
		o.Settle = 300 * time.Millisecond
	}
	return o
}

// Message is one thing received on a connection, normalised.
type Message struct {
	Tag       string   // the envelope's _tag ("Chunk", "Exit", "Pong", ...)
	RequestID string   // the envelope's requestId, if any
	Closed    bool     // the server closed the connection (Text describes how)
	Text      string   // normalised JSON, or the close description
	Notes     []string // free-form texts the normalised Text replaced (error causes)
}

// Run runs s against the sync server whose WebSocket base URL is baseURL
// ("ws://127.0.0.1:8787") and returns the transcript. On error the transcript
// holds everything up to the failing step, which is described in the error.
func Run(ctx context.Context, baseURL string, s Script, opts Options) (*Transcript, error) {
	r := &run{
		baseURL:  strings.TrimRight(baseURL, "/"),
		prefix:   "dt" + randomHex(4),
		opts:     opts.withDefaults(),
		conns:    map[string]*conn{},
		backends: map[string]string{},
		symBack:  map[string]string{},
		tr:       &Transcript{Script: s.Name, About: s.About},
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer r.closeAll()

	for i, st := range s.Steps {
		if err := r.step(ctx, st); err != nil {
			return r.tr, fmt.Errorf("%s step %d (%s): %w", s.Name, i+1, st.describe(), err)
		}
	}
	r.settle(ctx)
	return r.tr, nil
}

type run struct {
	baseURL string
	prefix  string // makes this run's store ids unique
	opts    Options
	conns   map[string]*conn
	tr      *Transcript

	backends map[string]string // real backend id -> symbolic store
	symBack  map[string]string // symbolic store -> real backend id
}

func (r *run) realStore(sym string) string { return r.prefix + "_" + sym }

func (r *run) step(ctx context.Context, st Step) error {
	if st.kind != stepOpen {
		if _, ok := r.conns[st.conn]; !ok {
			return fmt.Errorf("connection %q is not open", st.conn)
		}
	}
	switch st.kind {
	case stepOpen:
		return r.open(ctx, st.conn, st.store)
	case stepSend, stepSendRaw:
		r.tr.add("send", st.conn, r.normalizeSent(st.msg))
		text, err := r.expandTokens(st.msg)
		if err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, r.opts.StepTimeout)
		defer cancel()
		return r.conns[st.conn].ws.Write(wctx, websocket.MessageText, []byte(text))
	case stepRecv:
		return r.recv(ctx, st)
	case stepQuiet:
		r.tr.add("quiet", st.conn, st.wait.String())
		c := r.conns[st.conn]
		deadline := time.Now().Add(st.wait)
		var got []Message
		for {
			raw, ok := c.next(ctx, deadline)
			if !ok {
				break
			}
			got = append(got, r.normalize(c, raw))
		}
		r.tr.addMessages(st.conn, got)
		return ctx.Err()
	case stepClose:
		r.tr.add("close", st.conn, "")
		r.conns[st.conn].close()
		delete(r.conns, st.conn)
		return nil
	}
	return fmt.Errorf("unknown step kind %d", st.kind)
}

func (r *run) open(ctx context.Context, name, store string) error {
	if _, ok := r.conns[name]; ok {
		return fmt.Errorf("connection %q is already open", name)
	}
	r.tr.add("open", name, store)
	u := r.baseURL + "/?storeId=" + url.QueryEscape(r.realStore(store)) + "&transport=ws"
	dctx, cancel := context.WithTimeout(ctx, r.opts.StepTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(dctx, u, nil)
	if err != nil {
		return fmt.Errorf("dial %s: %w", u, err)
	}
	ws.SetReadLimit(64 << 20)
	c := &conn{name: name, store: store, ws: ws, notify: make(chan struct{}, 1), done: make(chan struct{})}
	go c.readLoop()
	r.conns[name] = c
	return nil
}

func (r *run) recv(ctx context.Context, st Step) error {
	c := r.conns[st.conn]
	deadline := time.Now().Add(r.opts.StepTimeout)
	var got []Message
	for !allHold(st.until, got) {
		raw, ok := c.next(ctx, deadline)
		if !ok {
			r.tr.addMessages(st.conn, got)
			var missing []string
			for _, cond := range st.until {
				if !cond.ok(got) {
					missing = append(missing, cond.desc)
				}
			}
			return fmt.Errorf("after %v still waiting for %s; received %d message(s) in this step",
				r.opts.StepTimeout, strings.Join(missing, ", "), len(got))
		}
		m := r.normalize(c, raw)
		got = append(got, m)
		if m.Closed && !allHold(st.until, got) {
			r.tr.addMessages(st.conn, got)
			return fmt.Errorf("the connection ended (%s) before the step's conditions held", m.Text)
		}
	}
	if st.wait > 0 {
		lingerUntil := time.Now().Add(st.wait)
		for {
			raw, ok := c.next(ctx, lingerUntil)
			if !ok {
				break
			}
			got = append(got, r.normalize(c, raw))
		}
	}
	r.tr.addMessages(st.conn, got)
	return ctx.Err()
}

// settle records whatever arrives on any open connection shortly after the last step.
func (r *run) settle(ctx context.Context) {
	deadline := time.Now().Add(r.opts.Settle)
	names := make([]string, 0, len(r.conns))
	for name := range r.conns {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := r.conns[name]
		var got []Message
		for {
			raw, ok := c.next(ctx, deadline)
			if !ok {
				break
			}
			got = append(got, r.normalize(c, raw))
		}
		for _, m := range sortMessages(got) {
			r.tr.add("late", name, m.Text)
			r.tr.note(m.Notes)
		}
	}
}

func (r *run) closeAll() {
	for _, c := range r.conns {
		c.close()
	}
}

var tokenRE = regexp.MustCompile(`@(backendId|storeId)\(([A-Za-z0-9]+)\)`)

// expandTokens replaces BackendID/StoreID tokens with this run's real values.
func (r *run) expandTokens(s string) (string, error) {
	var err error
	out := tokenRE.ReplaceAllStringFunc(s, func(tok string) string {
		m := tokenRE.FindStringSubmatch(tok)
		switch m[1] {
		case "storeId":
			return r.realStore(m[2])
		default:
			id, ok := r.symBack[m[2]]
			if !ok {
				err = fmt.Errorf("%s used before any pull of store %s reported its backend id", tok, m[2])
			}
			return id
		}
	})
	return out, err
}

func allHold(conds []Cond, got []Message) bool {
	for _, c := range conds {
		if !c.ok(got) {
			return false
		}
	}
	return true
}

// conn is one WebSocket; a reader goroutine queues what arrives.
type conn struct {
	name, store string
	ws          *websocket.Conn

	mu     sync.Mutex
	queue  []received
	notify chan struct{} // signalled when queue grows
	done   chan struct{} // closed when the reader stops

	closeOnce sync.Once
}

type received struct {
	data   []byte
	closed error // non-nil: the connection ended
}

func (c *conn) readLoop() {
	defer close(c.done)
	for {
		_, data, err := c.ws.Read(context.Background())
		c.mu.Lock()
		if err != nil {
			c.queue = append(c.queue, received{closed: err})
		} else {
			c.queue = append(c.queue, received{data: data})
		}
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// next returns the next queued item, waiting until deadline for one.
func (c *conn) next(ctx context.Context, deadline time.Time) (received, bool) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		c.mu.Lock()
		if len(c.queue) > 0 {
			item := c.queue[0]
			c.queue = c.queue[1:]
			c.mu.Unlock()
			return item, true
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-timer.C:
			return received{}, false
		case <-ctx.Done():
			return received{}, false
		}
	}
}

// close drops the connection without a close handshake: the reference server
// never answers a client's close frame, so a polite close would always wait
// for its timeout.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.ws.CloseNow()
		<-c.done
	})
}

func (st Step) describe() string {
	switch st.kind {
	case stepOpen:
		return "open " + st.conn + " " + st.store
	case stepSend, stepSendRaw:
		msg := st.msg
		if len(msg) > 120 {
			msg = msg[:120] + "…"
		}
		return "send " + st.conn + " " + msg
	case stepRecv:
		var ds []string
		for _, c := range st.until {
			ds = append(ds, c.desc)
		}
		return "recv " + st.conn + " until " + strings.Join(ds, ", ")
	case stepQuiet:
		return "quiet " + st.conn + " " + st.wait.String()
	case stepClose:
		return "close " + st.conn
	}
	return "?"
}

// closeText describes how a connection ended, without details that vary.
func closeText(err error) string {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return "closed by server: status " + strconv.Itoa(int(ce.Code))
	}
	return "connection lost"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
