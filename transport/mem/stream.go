package mem

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/synod-go/synod/transport"
)

// stream is one stream between an opener and a server. Its fields after
// construction are guarded by Network.mu.
type stream struct {
	n              *Network
	conn           *conn // the opener's Conn
	route          string
	opener, server *node
	ends           [2]*streamEnd // [openerSide], [serverSide]
	stopWatch      func() bool   // stops watching the opener's context
	ended          bool          // closed or aborted: no more writes, removed from Network.streams
}

const (
	openerSide = 0
	serverSide = 1
)

// streamEnd is one side of a stream; it implements transport.Stream.
type streamEnd struct {
	s           *stream
	side        int
	node        *node
	incarnation uint64
	ctx         context.Context
	endCtx      func(cause error) // cancels ctx
	wake        chan struct{}     // capacity 1: poked when inbox or err change

	// Guarded by Network.mu.
	inbox      []queued  // messages from the peer, in order of readyAt
	lastReady  time.Time // readyAt of the last message queued to inbox
	eofRead    bool      // ReadMsg returned io.EOF; it will again
	peerClosed bool      // the peer closed; WriteMsg returns io.EOF
	err        error     // terminal error of this end, or nil
}

// queued is a message on its way to a streamEnd. eof marks the clean end of
// the stream.
type queued struct {
	msg     []byte
	readyAt time.Time
	eof     bool
}

var _ transport.Stream = (*streamEnd)(nil)

// NewStream implements transport.Conn. The open is a message like a request:
// it may be dropped or delayed, and deafness of the server stops it.
func (c *conn) NewStream(ctx context.Context, route string) (transport.Stream, error) {
	n := c.n
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mem: stream open %s %s→%s: %w", route, c.from.addr, c.to.addr, err)
	}
	p := path{
		from: c.from, to: c.to, fromIncarnation: c.incarnation,
		needListener: true, deafStops: true,
		route: route, direction: "stream open",
	}
	n.mu.Lock()
	if err := c.usable(p); err != nil {
		n.mu.Unlock()
		return nil, err
	}
	n.countSent(c.from.addr)
	f := n.faultsBetween(c.from, c.to)
	drop := n.chance(f.request)
	d := n.delay(f.delayRange)
	n.mu.Unlock()
	if !n.wait(d, ctx.Done(), nil) {
		return nil, fmt.Errorf("mem: stream open %s %s→%s: %w", route, c.from.addr, c.to.addr, ctx.Err())
	}

	n.mu.Lock()
	defer n.mu.Unlock()
	err := c.usable(p)
	if err == nil {
		err = n.check(p)
	}
	if err == nil && drop {
		err = dropped(p)
		n.log.Debug("mem: stream open dropped", "route", route, "from", c.from.addr, "to", c.to.addr)
	}
	var h transport.StreamHandler
	if err == nil {
		var ok bool
		if h, ok = c.to.mux.Stream(route); !ok {
			err = fmt.Errorf("mem: stream open %s %s→%s: %w", route, c.from.addr, c.to.addr, transport.ErrUnknownRoute)
		}
	}
	if err != nil {
		return nil, err
	}
	n.countDelivered(c.to.addr, route)

	s := &stream{n: n, conn: c, route: route, opener: c.from, server: c.to}
	octx, ocancel := context.WithCancelCause(ctx)
	rctx := newRemoteContext(c.to.ctx, ctx)
	s.ends[openerSide] = &streamEnd{
		s: s, side: openerSide, node: c.from, incarnation: c.incarnation,
		ctx: octx, endCtx: ocancel, wake: make(chan struct{}, 1),
	}
	s.ends[serverSide] = &streamEnd{
		s: s, side: serverSide, node: c.to, incarnation: c.to.incarnation,
		ctx: rctx.ctx, endCtx: rctx.end, wake: make(chan struct{}, 1),
	}
	n.streams[s] = struct{}{}
	s.stopWatch = context.AfterFunc(ctx, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		err := fmt.Errorf("mem: stream %s %s→%s: opener's context ended: %w", route, c.from.addr, c.to.addr, ctx.Err())
		n.abortStream(s, err, err)
	})
	server := s.ends[serverSide]
	go func() {
		if err := h(server); err != nil {
			n.log.Debug("mem: stream handler returned an error", "route", route, "addr", server.node.addr, "err", err)
		}
		server.Close()
	}()
	return s.ends[openerSide], nil
}

// abortStream ends s abnormally: pending messages are discarded and each
// end's ReadMsg and WriteMsg return its error from now on, unless the end was
// closed already. Caller holds n.mu.
func (n *Network) abortStream(s *stream, openerErr, serverErr error) {
	if s.ended {
		return
	}
	n.endStream(s)
	n.log.Debug("mem: stream aborted", "route", s.route, "opener", s.opener.addr, "server", s.server.addr, "err", openerErr)
	for i, err := range [2]error{openerErr, serverErr} {
		e := s.ends[i]
		if e.err == nil {
			e.err = err
			e.inbox = nil
		}
		e.poke()
		e.endCtx(err)
	}
}

// endStream marks s as ended. Caller holds n.mu.
func (n *Network) endStream(s *stream) {
	s.ended = true
	delete(n.streams, s)
	s.stopWatch()
}

// Context implements transport.Stream.
func (e *streamEnd) Context() context.Context { return e.ctx }

// peer returns the other end of the stream.
func (e *streamEnd) peer() *streamEnd { return e.s.ends[1-e.side] }

// WriteMsg implements transport.Stream. It never blocks: messages queue at
// the reader without bound. A message the network cannot carry (the path is
// down, or a drop decision) breaks the stream, and WriteMsg returns the
// error.
func (e *streamEnd) WriteMsg(msg []byte) error {
	s := e.s
	n := s.n
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case e.err != nil:
		return e.err
	case e.peerClosed:
		return io.EOF
	}
	if err := n.tooLarge("stream message", len(msg)); err != nil {
		return fmt.Errorf("mem: stream %s: %w", s.route, err)
	}
	peer := e.peer()
	p := path{
		from:            e.node,
		to:              peer.node,
		fromIncarnation: e.incarnation,
		toIncarnation:   peer.incarnation,
		checkTo:         true,
		deafStops:       e.side == openerSide && s.opener != s.server,
		route:           s.route,
		direction:       "stream message",
	}
	err := n.check(p)
	f := n.faultsBetween(e.node, peer.node)
	prob := f.request
	if e.side == serverSide {
		prob = f.reply
	}
	if err == nil && n.chance(prob) {
		err = dropped(p)
	}
	if err != nil {
		n.abortStream(s, err, err)
		return e.err
	}
	n.countSent(e.node.addr)
	readyAt := n.clock.Now().Add(n.delay(f.delayRange))
	if readyAt.Before(peer.lastReady) {
		readyAt = peer.lastReady // keep the stream ordered
	}
	peer.lastReady = readyAt
	peer.inbox = append(peer.inbox, queued{msg: slices.Clone(msg), readyAt: readyAt})
	peer.poke()
	return nil
}

// ReadMsg implements transport.Stream. It counts the message as delivered
// when it returns it.
func (e *streamEnd) ReadMsg() ([]byte, error) {
	n := e.s.n
	for {
		var wait time.Duration
		n.mu.Lock()
		switch {
		case e.err != nil:
			err := e.err
			n.mu.Unlock()
			return nil, err
		case len(e.inbox) > 0:
			q := e.inbox[0]
			if wait = q.readyAt.Sub(n.clock.Now()); wait > 0 {
				break
			}
			e.inbox[0] = queued{}
			e.inbox = e.inbox[1:]
			if q.eof {
				e.eofRead = true
				n.mu.Unlock()
				return nil, io.EOF
			}
			n.countDelivered(e.node.addr, e.s.route)
			n.mu.Unlock()
			return q.msg, nil
		case e.eofRead:
			n.mu.Unlock()
			return nil, io.EOF
		}
		n.mu.Unlock()
		if wait > 0 {
			n.wait(wait, e.wake, nil)
		} else {
			<-e.wake
		}
	}
}

// Close implements transport.Stream: the peer reads what was already written,
// then io.EOF.
func (e *streamEnd) Close() error {
	s := e.s
	n := s.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if e.err == nil {
		e.err = fmt.Errorf("mem: stream %s: %w", s.route, transport.ErrClosed)
		e.inbox = nil
		e.poke()
	}
	if s.ended {
		return nil
	}
	n.endStream(s)
	peer := e.peer()
	readyAt := n.clock.Now()
	if readyAt.Before(peer.lastReady) {
		readyAt = peer.lastReady
	}
	peer.inbox = append(peer.inbox, queued{readyAt: readyAt, eof: true})
	peer.peerClosed = true
	peer.poke()
	e.endCtx(transport.ErrClosed)
	peer.endCtx(io.EOF)
	return nil
}

// poke wakes the end's reader, if it is blocked.
func (e *streamEnd) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}
