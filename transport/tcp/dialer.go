package tcp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/synod-go/synod/transport"
)

// Dialer implements transport.Dialer over TCP or unix sockets. It keeps one
// connection per remote address, shared by every Conn dialed to it and by
// all their calls and streams, connects lazily on first use and reconnects
// after a failure (with backoff, see Options). A Dialer is safe for
// concurrent use.
type Dialer struct {
	opts   Options
	ctx    context.Context // cancelled by Close; aborts dials in progress
	cancel context.CancelFunc
	wg     sync.WaitGroup // dial goroutines and connection goroutines

	mu     sync.Mutex
	peers  map[string]*peer // by network and address
	closed bool
}

// NewDialer returns a Dialer. It fails only if opts does not validate.
func NewDialer(opts Options) (*Dialer, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Dialer{opts: o, ctx: ctx, cancel: cancel, peers: make(map[string]*peer)}, nil
}

// Dial returns a Conn for addr (see ParseAddr for the forms). It does not
// contact the peer: the connection is made by the first call or stream, and
// remade as needed. Dial fails only for a malformed address or a closed
// Dialer. Each Conn must be closed; the connection to a peer is closed when
// its last Conn is.
func (d *Dialer) Dial(ctx context.Context, addr string) (transport.Conn, error) {
	network, address, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	key := network + "|" + address
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("%w: dialer closed", transport.ErrClosed)
	}
	p := d.peers[key]
	if p == nil {
		p = &peer{d: d, key: key, addr: addr, network: network, address: address}
		d.peers[key] = p
	}
	p.refs++
	return &conn{p: p, done: make(chan struct{}), streams: make(map[*stream]struct{})}, nil
}

// Close closes every connection, fails calls and streams in progress (with
// ErrClosed or ErrUnreachable), and waits for the Dialer's goroutines to
// end. Conns dialed from it fail with ErrClosed afterwards.
func (d *Dialer) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	peers := d.peers
	d.peers = nil
	d.mu.Unlock()
	for _, p := range peers {
		p.shutdown()
	}
	d.cancel()
	d.wg.Wait()
	return nil
}

// release drops one reference to p; the last one closes its connection.
func (d *Dialer) release(p *peer) {
	d.mu.Lock()
	p.refs--
	last := p.refs == 0 && d.peers[p.key] == p
	if last {
		delete(d.peers, p.key)
	}
	d.mu.Unlock()
	if last {
		p.shutdown()
	}
}

// peer is the Dialer's state for one remote address: its current
// connection and the reconnect backoff.
type peer struct {
	d                      *Dialer
	key                    string
	addr, network, address string
	refs                   int // guarded by d.mu

	mu      sync.Mutex
	cur     *clientConn   // the current connection, possibly dead
	dialing chan struct{} // non-nil while a dial runs; closed when it ends
	lastErr error         // why the last dial (or handshake) failed
	retryAt time.Time     // no dial before this (Clock time)
	backoff time.Duration // the last backoff; 0 after a success
	closed  bool
}

// get returns a live connection to the peer, dialing if there is none and
// the backoff allows. While the backoff runs it fails at once with
// ErrUnreachable.
func (p *peer) get(ctx context.Context) (*clientConn, error) {
	o := &p.d.opts
	waited := false
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return nil, fmt.Errorf("%w: conn closed", transport.ErrClosed)
		}
		if c := p.cur; c != nil && !c.link.dead() {
			p.mu.Unlock()
			return c, nil
		}
		if p.dialing == nil {
			now := o.Clock.Now()
			if waited || now.Before(p.retryAt) {
				err := fmt.Errorf("%w: %s: %w", transport.ErrUnreachable, p.addr, p.lastErr)
				if p.lastErr == nil {
					err = fmt.Errorf("%w: %s: connection lost", transport.ErrUnreachable, p.addr)
				}
				p.mu.Unlock()
				return nil, err
			}
			p.dialing = make(chan struct{})
			p.d.wg.Add(1)
			go p.dial(p.dialing)
		}
		dialing := p.dialing
		p.mu.Unlock()
		select {
		case <-dialing:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		waited = true
		p.mu.Lock()
	}
}

// live returns the peer's connection if it is up, without dialing.
func (p *peer) live() *clientConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.cur; !p.closed && c != nil && !c.link.dead() {
		return c
	}
	return nil
}

// dial connects to the peer, in its own goroutine so that no caller's
// context cuts it short.
func (p *peer) dial(done chan struct{}) {
	defer p.d.wg.Done()
	c, err := p.connect()
	p.mu.Lock()
	p.dialing = nil
	switch {
	case err != nil:
		p.failedLocked(err)
	case p.closed:
		c.link.fail(errLinkClosed)
	default:
		p.cur = c
		p.d.wg.Add(2)
		go func() {
			defer p.d.wg.Done()
			c.link.writeLoop(preamble[:])
		}()
		go func() {
			defer p.d.wg.Done()
			c.readLoop()
		}()
	}
	p.mu.Unlock()
	close(done)
}

func (p *peer) connect() (*clientConn, error) {
	o := &p.d.opts
	ctx, cancel := context.WithTimeout(p.d.ctx, o.DialTimeout)
	defer cancel()
	var nd net.Dialer
	nc, err := nd.DialContext(ctx, p.network, p.address)
	if err != nil {
		return nil, err
	}
	if o.TLS != nil {
		cfg := o.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = "localhost"
			if p.network != "unix" {
				if host, _, err := net.SplitHostPort(p.address); err == nil && host != "" {
					cfg.ServerName = host
				}
			}
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		nc = tc
	}
	return newClientConn(p, nc), nil
}

// failedLocked records a failed dial and schedules the next attempt.
func (p *peer) failedLocked(err error) {
	o := &p.d.opts
	p.lastErr = err
	p.backoff = min(max(2*p.backoff, o.BackoffMin), o.BackoffMax)
	wait := p.backoff/2 + rand.N(p.backoff/2+1)
	p.retryAt = o.Clock.Now().Add(wait)
	if !p.closed {
		o.Logger.Warn("tcp: cannot connect", "peer", p.addr, "err", err, "retry_in", wait)
	}
}

// established is called when c received the server's preamble.
func (p *peer) established(c *clientConn) {
	p.mu.Lock()
	if p.cur == c {
		p.lastErr, p.backoff, p.retryAt = nil, 0, time.Time{}
	}
	p.mu.Unlock()
}

// lost is called when c died. A connection that died before the server's
// preamble arrived (refused TLS certificate, not a Synod server) counts as
// a failed dial.
func (p *peer) lost(c *clientConn, wasEstablished bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == c {
		p.cur = nil
	}
	if p.closed || err == errLinkClosed {
		return
	}
	if !wasEstablished {
		p.failedLocked(err)
		return
	}
	p.d.opts.Logger.Info("tcp: connection lost", "peer", p.addr, "err", err)
}

// shutdown closes the peer for good.
func (p *peer) shutdown() {
	p.mu.Lock()
	p.closed = true
	c := p.cur
	p.mu.Unlock()
	if c != nil {
		c.link.fail(errLinkClosed)
	}
}

// conn implements transport.Conn: a handle on a peer's shared connection.
type conn struct {
	p    *peer
	once sync.Once
	done chan struct{} // closed by Close

	mu      sync.Mutex
	streams map[*stream]struct{}      // open streams of this handle; nil once closed
	async   map[*pendingCall]struct{} // its asynchronous calls in progress; nil once closed
	closed  bool
}

// CallAsync implements transport.AsyncConn. It never dials: with no live
// connection to the peer it fails with ErrWouldBlock (Call dials), as it
// does when the connection's write buffer is full.
func (c *conn) CallAsync(route string, req []byte, timeout time.Duration, done func([]byte, error)) (func(), error) {
	if done == nil {
		return nil, errors.New("tcp: CallAsync with a nil callback")
	}
	if err := c.closedErr(); err != nil {
		return nil, err
	}
	cc := c.p.live()
	if cc == nil {
		return nil, fmt.Errorf("%w: no connection to %s", transport.ErrWouldBlock, c.p.addr)
	}
	return cc.callAsync(c, route, req, timeout, done)
}

// track records an asynchronous call of this handle, so that Close fails
// it; false if the handle is closed.
func (c *conn) track(pc *pendingCall) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	if c.async == nil {
		c.async = make(map[*pendingCall]struct{})
	}
	c.async[pc] = struct{}{}
	return true
}

func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *conn) untrack(pc *pendingCall) {
	c.mu.Lock()
	delete(c.async, pc)
	c.mu.Unlock()
}

// Call implements transport.Conn.
func (c *conn) Call(ctx context.Context, route string, req []byte) ([]byte, error) {
	if err := c.closedErr(); err != nil {
		return nil, err
	}
	cc, err := c.p.get(ctx)
	if err != nil {
		return nil, err
	}
	return cc.call(ctx, route, req, c.done)
}

// NewStream implements transport.Conn. It waits for the peer to accept the
// stream, so an unknown route fails here with ErrUnknownRoute.
func (c *conn) NewStream(ctx context.Context, route string) (transport.Stream, error) {
	if err := c.closedErr(); err != nil {
		return nil, err
	}
	cc, err := c.p.get(ctx)
	if err != nil {
		return nil, err
	}
	s, err := cc.openStream(ctx, route, c.done, func(s *stream) {
		c.mu.Lock()
		delete(c.streams, s)
		c.mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	handleClosed := c.streams == nil
	if !handleClosed && !s.isClosed() {
		c.streams[s] = struct{}{}
	}
	c.mu.Unlock()
	if handleClosed {
		s.Close()
		return nil, fmt.Errorf("%w: conn closed", transport.ErrClosed)
	}
	return s, nil
}

func (c *conn) closedErr() error {
	select {
	case <-c.done:
		return fmt.Errorf("%w: conn closed", transport.ErrClosed)
	default:
		return nil
	}
}

// Close implements transport.Conn: calls in progress on this Conn fail
// with ErrClosed and its streams are closed. Other Conns to the same peer
// are not affected.
func (c *conn) Close() error {
	c.once.Do(func() {
		close(c.done)
		c.mu.Lock()
		streams, async := c.streams, c.async
		c.streams, c.async, c.closed = nil, nil, true
		c.mu.Unlock()
		for s := range streams {
			s.closeLocal(codeAborted)
		}
		for pc := range async {
			pc.stop(fmt.Errorf("%w: conn closed", transport.ErrClosed))
		}
		c.p.d.release(c.p)
	})
	return nil
}
