package kvstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/synod-go/synod/transport"
)

// maxClientInflight bounds the requests one Client has outstanding, well
// below maxTracked, so that the servers never lose track of one.
const maxClientInflight = 512

// Client sends Get, Put and Append to the servers of a cluster, trying them
// in turn until one answers. It is safe for concurrent use; concurrent
// calls are concurrent operations (each linearizable on its own).
//
// Exactly-once: the Client has a session, a random 64-bit id under which
// it numbers its requests; a write retried on another server (after a
// lost reply or a timeout) is executed once. The session is opened on the
// first write, and reopened under a new id if the servers expired it.
//
// Every call blocks until an answer or the end of its context. An error
// wrapping the context's error means the operation may or may not have
// been applied (for a write), exactly as if the Client had crashed.
type Client struct {
	cfg   ClientConfig
	conns []transport.Conn
	sem   chan struct{}

	mu sync.Mutex
	// id is the session id; registered says the servers opened it.
	id          uint64
	registered  bool
	registering chan struct{} // closed when the Register in flight ends
	nextSeq     uint64
	inflight    map[uint64]struct{} // seqs of the requests outstanding
	preferred   int                 // the server that answered last
	closed      bool
}

// NewClient returns a client of the servers in cfg (after cfg.Validate).
// It does not contact them until the first call.
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg.withDefaults(), sem: make(chan struct{}, maxClientInflight), nextSeq: 1, inflight: make(map[uint64]struct{})}
	c.id = newSessionID()
	for _, addr := range c.cfg.Servers {
		conn, err := c.cfg.Dialer.Dial(context.Background(), addr)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("kvstore: dialing %q: %w", addr, err)
		}
		c.conns = append(c.conns, conn)
	}
	return c, nil
}

func newSessionID() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

// Close releases the client's connections. Calls in progress and later
// calls fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conns := c.conns
	c.mu.Unlock()
	for _, conn := range conns {
		conn.Close()
	}
	return nil
}

// Get returns the value of key, or an error wrapping ErrNoKey if it has
// none. The read is decided through the log like a write, so it reflects
// every write acknowledged before Get was called.
func (c *Client) Get(ctx context.Context, key string) ([]byte, error) {
	r, err := c.do(ctx, opGet, key, nil)
	if err != nil {
		return nil, err
	}
	if r.Status == statusNoKey {
		return nil, fmt.Errorf("%w: %q", ErrNoKey, key)
	}
	if r.Value == nil {
		return []byte{}, nil
	}
	return r.Value, nil
}

// Put sets the value of key to value.
func (c *Client) Put(ctx context.Context, key string, value []byte) error {
	_, err := c.do(ctx, opPut, key, value)
	return err
}

// Append appends value to the value of key (on a missing key it acts as
// Put).
func (c *Client) Append(ctx context.Context, key string, value []byte) error {
	_, err := c.do(ctx, opAppend, key, value)
	return err
}

func (c *Client) do(ctx context.Context, kind opKind, key string, value []byte) (*reply, error) {
	o := &op{Kind: kind, Key: []byte(key), Value: value}
	if err := checkRequest(o, c.cfg.MaxKeySize, c.cfg.MaxValueSize); err != nil {
		return nil, err
	}
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		return nil, fmt.Errorf("kvstore: %v %q: %w", kind, key, ctx.Err())
	}
	for {
		var id uint64
		if kind.isWrite() {
			var err error
			if id, err = c.session(ctx); err != nil {
				return nil, err
			}
		} else {
			c.mu.Lock()
			id = c.id
			c.mu.Unlock()
		}
		o.Client, o.Seq = id, c.begin()
		r, unknown, err := c.send(ctx, o)
		c.end(o.Seq)
		if err != nil {
			return nil, err
		}
		switch r.Status {
		case statusOK, statusNoKey:
			return r, nil
		case statusExpired:
			c.expire(id)
			if !unknown {
				// No attempt of this write can have been applied: the
				// session was gone before it. Retry it in a new session.
				c.cfg.Logger.Info("session expired; opening a new one", "session", id)
				continue
			}
			return nil, fmt.Errorf("%w: %v %q", ErrSessionExpired, kind, key)
		case statusStale:
			return nil, fmt.Errorf("%w: %v %q: %s", ErrSessionExpired, kind, key, r.Detail)
		case statusBadRequest:
			return nil, fmt.Errorf("%w: %s", badErrors[r.Code], r.Detail)
		}
		return nil, fmt.Errorf("%w: unexpected reply status %d", ErrMalformed, r.Status)
	}
}

// begin numbers a new request and records it as outstanding.
func (c *Client) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	seq := c.nextSeq
	c.nextSeq++
	c.inflight[seq] = struct{}{}
	return seq
}

func (c *Client) end(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.inflight, seq)
}

// ack returns the watermark below which the client needs no outcome: its
// oldest outstanding request.
func (c *Client) ack() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.nextSeq
	for seq := range c.inflight {
		a = min(a, seq)
	}
	return a
}

// session returns the id of an open session, opening one if needed.
func (c *Client) session(ctx context.Context) (uint64, error) {
	for {
		c.mu.Lock()
		if c.registered {
			id := c.id
			c.mu.Unlock()
			return id, nil
		}
		if ch := c.registering; ch != nil {
			c.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return 0, fmt.Errorf("kvstore: opening a session: %w", ctx.Err())
			}
		}
		ch := make(chan struct{})
		c.registering = ch
		id := c.id
		c.mu.Unlock()

		r, _, err := c.send(ctx, &op{Kind: opRegister, Client: id})
		c.mu.Lock()
		c.registering = nil
		close(ch)
		ok := err == nil && r.Status == statusOK
		if ok && c.id == id {
			c.registered = true
		}
		c.mu.Unlock()
		if err != nil {
			return 0, fmt.Errorf("kvstore: opening a session: %w", err)
		}
		if !ok {
			return 0, fmt.Errorf("%w: Register answered status %d", ErrMalformed, r.Status)
		}
	}
}

// expire forgets session id, so that the next write opens a new one.
func (c *Client) expire(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id == id {
		c.id, c.registered = newSessionID(), false
	}
}

// send tries the servers in turn until one gives an answer other than
// statusRetry, or ctx ends. unknown reports whether an earlier attempt may
// have been applied (its outcome was lost).
func (c *Client) send(ctx context.Context, o *op) (r *reply, unknown bool, err error) {
	n := len(c.conns)
	c.mu.Lock()
	start := c.preferred
	c.mu.Unlock()
	bo := newBackoff(c.cfg.Clock, 10*time.Millisecond, 500*time.Millisecond)
	timeout := c.cfg.AttemptTimeout
	var buf []byte
	var lastErr error
	fast := false // some attempt of this round failed before its timeout
	for i := 0; ; i++ {
		if i > 0 && i%n == 0 {
			if fast {
				bo.wait(ctx)
			}
			fast = false
			timeout = min(2*timeout, c.cfg.MaxAttemptTimeout)
		}
		if ctx.Err() != nil {
			return nil, unknown, fmt.Errorf("kvstore: %v: %w (last error: %v)", o.Kind, ctx.Err(), lastErr)
		}
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return nil, unknown, ErrClosed
		}
		srv := (start + i) % n
		o.Ack = c.ack()
		buf = appendOp(buf[:0], o)
		began := c.cfg.Clock.Now()
		actx, cancel := clockwork.WithTimeout(ctx, c.cfg.Clock, timeout)
		raw, err := c.conns[srv].Call(actx, RouteOp, buf)
		cancel()
		if err == nil {
			if r, err = decodeReply(raw); err == nil && r.Status != statusRetry {
				c.mu.Lock()
				c.preferred = srv
				c.mu.Unlock()
				return r, unknown, nil
			}
			if err == nil {
				err = fmt.Errorf("server asks to retry: %s", r.Detail)
			}
		}
		lastErr = err
		if errors.Is(err, transport.ErrTooLarge) {
			return nil, unknown, fmt.Errorf("%w: %w", ErrValueTooLarge, err)
		}
		unknown = unknown || !errors.Is(err, transport.ErrUnknownRoute)
		if c.cfg.Clock.Since(began) < timeout/2 {
			fast = true
		}
		if c.cfg.Logger.Enabled(ctx, slog.LevelDebug) {
			c.cfg.Logger.Debug("attempt failed", "server", c.cfg.Servers[srv], "op", o.Kind, "seq", o.Seq, "err", err)
		}
	}
}

// jitter returns a random duration in [0, d).
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return mrand.N(d)
}
