package mem

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/synod-go/synod/transport"
)

// dialer is the transport.Dialer of one node.
type dialer struct {
	n    *Network
	from string
}

// Dial returns a Conn from d's node to addr. It fails only if ctx has ended
// or the network is closed.
func (d dialer) Dial(ctx context.Context, addr string) (transport.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mem: dial %s→%s: %w", d.from, addr, err)
	}
	n := d.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("mem: dial %s→%s: %w", d.from, addr, transport.ErrClosed)
	}
	from := n.node(d.from)
	return &conn{n: n, from: from, incarnation: from.incarnation, to: n.node(addr)}, nil
}

// conn is a transport.Conn from one incarnation of a node to another node.
type conn struct {
	n           *Network
	from, to    *node
	incarnation uint64 // from's incarnation at Dial; the Conn dies with it
	closed      bool   // guarded by n.mu
}

// call is one unary call in flight. Guarded by Network.mu, except done,
// which finish closes, after which reply and err no longer change.
type call struct {
	conn     *conn
	ctx      context.Context // the caller's
	route    string
	from, to *node
	done     chan struct{}

	finished bool
	reply    []byte
	err      error
	handler  *remoteContext // the handler's context, once the request is delivered
}

// CallAsync implements transport.AsyncConn with a goroutine running Call,
// so an in-memory cluster exercises the same code paths as one over
// transport/tcp. The call's context ends after timeout (on the Network's
// clock) or at cancel. It never returns ErrWouldBlock.
func (c *conn) CallAsync(route string, req []byte, timeout time.Duration, done func([]byte, error)) (func(), error) {
	if done == nil {
		return nil, errors.New("mem: CallAsync with a nil callback")
	}
	var ctx context.Context
	var cancel context.CancelFunc
	if timeout > 0 {
		ctx, cancel = clockwork.WithTimeout(context.Background(), c.n.clock, timeout)
	} else {
		ctx, cancel = context.WithCancel(context.Background())
	}
	req = slices.Clone(req)
	go func() {
		defer cancel()
		done(c.Call(ctx, route, req))
	}()
	return cancel, nil
}

// Call implements transport.Conn. See the package doc for what may happen to
// the request and the reply on the way.
func (c *conn) Call(ctx context.Context, route string, req []byte) ([]byte, error) {
	n := c.n
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mem: call %s %s→%s: %w", route, c.from.addr, c.to.addr, err)
	}
	if err := n.tooLarge("request", len(req)); err != nil {
		return nil, fmt.Errorf("mem: call %s %s→%s: %w", route, c.from.addr, c.to.addr, err)
	}
	p := path{
		from: c.from, to: c.to, fromIncarnation: c.incarnation,
		needListener: true, deafStops: true,
		route: route, direction: "request",
	}

	// Send: decide the request's fate now, deliver it after its delay.
	n.mu.Lock()
	if err := c.usable(p); err != nil {
		n.mu.Unlock()
		return nil, err
	}
	n.countSent(c.from.addr)
	f := n.faultsBetween(c.from, c.to)
	drop := n.chance(f.request)
	d := n.delay(f.delayRange)
	cl := &call{conn: c, ctx: ctx, route: route, from: c.from, to: c.to, done: make(chan struct{})}
	n.inFlight[cl] = struct{}{}
	n.mu.Unlock()
	req = slices.Clone(req)
	if !n.wait(d, cl.done, ctx.Done()) {
		return n.endCall(ctx, cl)
	}

	// Deliver: start the handler, unless the path broke meanwhile.
	n.mu.Lock()
	if cl.finished {
		n.mu.Unlock()
		return cl.reply, cl.err
	}
	err := n.check(p)
	if err == nil && drop {
		err = dropped(p)
		n.log.Debug("mem: request dropped", "route", route, "from", c.from.addr, "to", c.to.addr)
	}
	var h transport.UnaryHandler
	var ah transport.AsyncUnaryHandler
	if err == nil {
		var ok bool
		if h, ah, ok = c.to.mux.UnaryAsync(route); !ok {
			err = fmt.Errorf("mem: call %s %s→%s: %w", route, c.from.addr, c.to.addr, transport.ErrUnknownRoute)
		}
	}
	if err != nil {
		n.finish(cl, nil, err)
		n.mu.Unlock()
		return nil, err
	}
	n.countDelivered(c.to.addr, route)
	incarnation := c.to.incarnation
	if ah != nil {
		// As a transport's reader would: on this goroutine, and the
		// reply must not block (its delay is waited out elsewhere).
		n.mu.Unlock()
		ah(req, func(reply []byte, herr error) { n.sendReply(cl, incarnation, reply, herr, false) })
	} else {
		cl.handler = newRemoteContext(c.to.ctx, ctx)
		n.mu.Unlock()
		go func() {
			reply, herr := h(cl.handler.ctx, req)
			n.sendReply(cl, incarnation, reply, herr, true)
		}()
	}
	select {
	case <-cl.done:
		return cl.reply, cl.err
	case <-ctx.Done():
		return n.endCall(ctx, cl)
	}
}

// usable returns why c cannot send on p now, or nil. Caller holds n.mu.
func (c *conn) usable(p path) error {
	n := c.n
	switch {
	case c.closed:
		return fmt.Errorf("mem: %s %s %s→%s: conn %w", p.direction, p.route, c.from.addr, c.to.addr, transport.ErrClosed)
	case n.closed:
		return fmt.Errorf("mem: %s %s %s→%s: network %w", p.direction, p.route, c.from.addr, c.to.addr, transport.ErrClosed)
	case c.from.killed || c.from.incarnation != c.incarnation:
		return fmt.Errorf("mem: %s %s %s→%s: sender is down: %w", p.direction, p.route, c.from.addr, c.to.addr, transport.ErrUnreachable)
	}
	return nil
}

// endCall finishes cl because the caller's ctx ended, unless it already
// finished, and returns its outcome.
func (n *Network) endCall(ctx context.Context, cl *call) ([]byte, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.finish(cl, nil, fmt.Errorf("mem: call %s %s→%s: %w", cl.route, cl.from.addr, cl.to.addr, ctx.Err()))
	return cl.reply, cl.err
}

// sendReply carries a handler's outcome back to the caller of cl.
// incarnation is the serving node's at delivery: a reply from a killed
// incarnation is discarded. With mayWait unset, a reply that is delayed
// waits on a goroutine of its own.
func (n *Network) sendReply(cl *call, incarnation uint64, reply []byte, herr error, mayWait bool) {
	p := path{
		from: cl.to, to: cl.from,
		fromIncarnation: incarnation, toIncarnation: cl.conn.incarnation, checkTo: true,
		route: cl.route, direction: "reply",
	}
	n.mu.Lock()
	if cl.finished || cl.to.killed || cl.to.incarnation != incarnation || n.closed {
		n.mu.Unlock()
		return
	}
	if herr != nil {
		reply = nil
		herr = &transport.RemoteError{Route: cl.route, Msg: herr.Error()}
	} else if err := n.tooLarge("reply", len(reply)); err != nil {
		n.finish(cl, nil, fmt.Errorf("mem: call %s %s→%s: %w", cl.route, cl.from.addr, cl.to.addr, err))
		n.mu.Unlock()
		return
	}
	n.countSent(cl.to.addr)
	f := n.faultsBetween(cl.to, cl.from)
	drop := n.chance(f.reply)
	d := n.delay(f.delayRange)
	n.mu.Unlock()
	reply = slices.Clone(reply)
	if d > 0 && !mayWait {
		go func() {
			if n.wait(d, cl.done, nil) {
				n.landReply(cl, p, drop, reply, herr)
			}
		}()
		return
	}
	if n.wait(d, cl.done, nil) {
		n.landReply(cl, p, drop, reply, herr)
	}
}

// landReply delivers the reply to cl that travelled on p, once its delay
// has passed, unless p broke meanwhile, drop is set, or the caller is gone.
func (n *Network) landReply(cl *call, p path, drop bool, reply []byte, herr error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	err := n.check(p)
	if err == nil && drop {
		err = dropped(p)
		n.log.Debug("mem: reply dropped", "route", cl.route, "from", cl.to.addr, "to", cl.from.addr)
	}
	if err == nil {
		err = callerGone(cl)
	}
	if err != nil {
		n.finish(cl, nil, err)
		return
	}
	if !cl.finished {
		n.countDelivered(cl.from.addr, cl.route)
	}
	n.finish(cl, reply, herr)
}

// callerGone returns an error if the caller's context has ended, or its
// deadline has passed even if its timer has not fired yet: a reply that
// arrives after the deadline is late, even when the handler, whose context
// carries the same deadline, saw it first.
func callerGone(cl *call) error {
	err := cl.ctx.Err()
	if dl, ok := cl.ctx.Deadline(); err == nil && ok && !time.Now().Before(dl) {
		err = context.DeadlineExceeded
	}
	if err != nil {
		return fmt.Errorf("mem: call %s %s→%s: %w", cl.route, cl.from.addr, cl.to.addr, err)
	}
	return nil
}

// finish ends cl with the given outcome, unless it already ended, and
// cancels its handler's context. Caller holds n.mu.
func (n *Network) finish(cl *call, reply []byte, err error) {
	if cl.finished {
		return
	}
	cl.finished = true
	cl.reply, cl.err = reply, err
	delete(n.inFlight, cl)
	close(cl.done)
	if cl.handler != nil {
		cl.handler.end(err)
	}
}

// Close implements transport.Conn: calls in progress fail with
// transport.ErrClosed and streams opened through c are aborted.
func (c *conn) Close() error {
	n := c.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	err := fmt.Errorf("mem: conn %s→%s: %w", c.from.addr, c.to.addr, transport.ErrClosed)
	for cl := range n.inFlight {
		if cl.conn == c {
			n.finish(cl, nil, err)
		}
	}
	for s := range n.streams {
		if s.conn == c {
			n.abortStream(s, err, fmt.Errorf("mem: stream %s %s→%s: opener closed its conn: %w", s.route, c.from.addr, c.to.addr, transport.ErrUnreachable))
		}
	}
	return nil
}

// remoteContext is the context of a handler (or of a stream's server end):
// it lives on the receiving node and mirrors the sender's context, carrying
// its deadline, and ends when the call or stream ends or the node is killed.
type remoteContext struct {
	ctx            context.Context
	cancel         context.CancelCauseFunc
	cancelDeadline context.CancelFunc // nil if the sender had no deadline
}

func newRemoteContext(node, sender context.Context) *remoteContext {
	r := &remoteContext{}
	r.ctx, r.cancel = context.WithCancelCause(node)
	if dl, ok := sender.Deadline(); ok {
		r.ctx, r.cancelDeadline = context.WithDeadline(r.ctx, dl)
	}
	return r
}

// end cancels the context with cause. When cause is the sender's deadline,
// the context's own copy of that deadline is left to expire, so that its
// Err reports context.DeadlineExceeded as the sender's does.
func (r *remoteContext) end(cause error) {
	if r.cancelDeadline != nil && errors.Is(cause, context.DeadlineExceeded) {
		context.AfterFunc(r.ctx, func() {
			r.cancelDeadline()
			r.cancel(cause)
		})
		return
	}
	r.cancel(cause)
	if r.cancelDeadline != nil {
		r.cancelDeadline()
	}
}
