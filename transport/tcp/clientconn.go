package tcp

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"time"

	"github.com/synod-go/synod/transport"
)

// clientConn is the client side of one connection: calls and streams in
// flight, by id.
type clientConn struct {
	p    *peer
	link *link
	o    *Options

	mu      sync.Mutex
	nextID  uint64
	calls   map[uint64]*pendingCall
	opening map[uint64]*stream // streams waiting for the server's accept
	streams map[uint64]*stream
	torn    bool // the connection is gone; the maps are empty
}

type pendingCall struct {
	route string
	res   chan callResult // capacity 1; nil for an asynchronous call
	// An asynchronous call (CallAsync): its callback, and what cancel and
	// the handle's Close need to find it. done is called by whoever
	// removes the call from calls.
	done func(reply []byte, err error)
	cc   *clientConn
	h    *conn
	id   uint64
}

// finish hands a call its outcome. The caller has removed pc from calls,
// so this happens once.
func (pc *pendingCall) finish(reply []byte, err error) {
	if pc.done == nil {
		pc.res <- callResult{reply: reply, err: err}
		return
	}
	pc.h.untrack(pc)
	pc.done(reply, err)
}

// cancel abandons an asynchronous call (CallAsync's cancel).
func (pc *pendingCall) cancel() {
	pc.stop(context.Canceled)
}

// stop abandons an asynchronous call still pending, failing it with err.
func (pc *pendingCall) stop(err error) {
	c := pc.cc
	c.mu.Lock()
	id := pc.id // 0 until registered; callAsync then sees the handle closed
	c.mu.Unlock()
	if id != 0 && c.abandon(id) {
		pc.finish(nil, err)
	}
}

type callResult struct {
	reply []byte
	err   error
}

func newClientConn(p *peer, nc net.Conn) *clientConn {
	return &clientConn{
		p:       p,
		o:       &p.d.opts,
		link:    newLink(nc, &p.d.opts),
		calls:   make(map[uint64]*pendingCall),
		opening: make(map[uint64]*stream),
		streams: make(map[uint64]*stream),
	}
}

// timeoutOf returns the time left before ctx's deadline, measured on the
// Options' Clock; 0 if ctx has none.
func timeoutOf(ctx context.Context, o *Options) (time.Duration, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0, nil
	}
	left := dl.Sub(o.Clock.Now())
	if left <= 0 {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return 0, context.DeadlineExceeded
	}
	return left, nil
}

func (c *clientConn) register(add func(id uint64)) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.torn {
		return 0, c.link.deadErr()
	}
	c.nextID++
	add(c.nextID)
	return c.nextID, nil
}

func (c *clientConn) call(ctx context.Context, route string, req []byte, handleDone <-chan struct{}) ([]byte, error) {
	f := frame{typ: frameCall, route: route, payload: req}
	if len(route) > maxRouteLen {
		return nil, fmt.Errorf("tcp: route name of %d bytes, limit %d", len(route), maxRouteLen)
	}
	var err error
	if f.timeout, err = timeoutOf(ctx, c.o); err != nil {
		return nil, err
	}
	pc := &pendingCall{route: route, res: make(chan callResult, 1)}
	if f.id, err = c.register(func(id uint64) { c.calls[id] = pc }); err != nil {
		return nil, err
	}
	if err := c.link.send(ctx, &f, true); err != nil {
		c.forget(f.id)
		return nil, err
	}
	select {
	case r := <-pc.res:
		if r.err != nil && isClosed(handleDone) {
			break // the connection died because the handle was closed
		}
		return r.reply, r.err
	case <-ctx.Done():
		c.abandon(f.id)
		return nil, ctx.Err()
	case <-handleDone:
		c.abandon(f.id)
	case <-c.link.done:
		if isClosed(handleDone) {
			break
		}
		select {
		case r := <-pc.res:
			return r.reply, r.err
		default:
			return nil, c.link.deadErr()
		}
	}
	return nil, fmt.Errorf("%w: conn closed", transport.ErrClosed)
}

// callAsync starts an asynchronous call through handle h (see
// transport.AsyncConn).
func (c *clientConn) callAsync(h *conn, route string, req []byte, timeout time.Duration, done func([]byte, error)) (func(), error) {
	if len(route) > maxRouteLen {
		return nil, fmt.Errorf("tcp: route name of %d bytes, limit %d", len(route), maxRouteLen)
	}
	if timeout < 0 {
		timeout = 0
	}
	pc := &pendingCall{route: route, done: done, cc: c, h: h}
	if !h.track(pc) {
		return nil, fmt.Errorf("%w: conn closed", transport.ErrClosed)
	}
	id, err := c.register(func(id uint64) {
		pc.id = id
		c.calls[id] = pc
	})
	if err != nil {
		h.untrack(pc)
		return nil, err
	}
	if h.isClosed() && c.forget(id) {
		// Closed between track and register: Close could not stop it.
		h.untrack(pc)
		return nil, fmt.Errorf("%w: conn closed", transport.ErrClosed)
	}
	f := frame{typ: frameCall, id: id, timeout: timeout, route: route, payload: req}
	if err := c.link.trySend(&f); err != nil {
		if c.forget(id) {
			h.untrack(pc)
			return nil, err
		}
		// The connection died meanwhile and its teardown took the call:
		// done reports that.
	}
	return pc.cancel, nil
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// forget drops a pending call and reports whether it was still pending.
func (c *clientConn) forget(id uint64) bool {
	c.mu.Lock()
	_, ok := c.calls[id]
	delete(c.calls, id)
	c.mu.Unlock()
	return ok
}

// abandon drops a pending call and tells the server to cancel its handler.
// It reports whether the call was still pending.
func (c *clientConn) abandon(id uint64) bool {
	if !c.forget(id) {
		return false
	}
	_ = c.link.send(context.Background(), &frame{typ: frameCancel, id: id}, false)
	return true
}

func (c *clientConn) openStream(ctx context.Context, route string, handleDone <-chan struct{}, onDone func(*stream)) (*stream, error) {
	if len(route) > maxRouteLen {
		return nil, fmt.Errorf("tcp: route name of %d bytes, limit %d", len(route), maxRouteLen)
	}
	f := frame{typ: frameStreamOpen, route: route, window: uint64(c.o.StreamWindow)}
	var err error
	if f.timeout, err = timeoutOf(ctx, c.o); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	s := newStream(sctx, cancel, c.link, c, 0, route, c.o.StreamWindow, c.link.maxMsg)
	s.onDone = onDone
	s.opened = make(chan error, 1)
	if f.id, err = c.register(func(id uint64) { s.id = id; c.opening[id] = s }); err != nil {
		cancel()
		return nil, err
	}
	if err := c.link.send(ctx, &f, true); err != nil {
		s.terminate(err, codeOK, "", false)
		return nil, err
	}
	tell := true // whether the server must hear that the opener gave up
	select {
	case err = <-s.opened:
		tell = false
	case <-ctx.Done():
		err = ctx.Err()
	case <-handleDone:
		err = fmt.Errorf("%w: conn closed", transport.ErrClosed)
	case <-c.link.done:
		select {
		case err = <-s.opened:
		default:
			err = c.link.deadErr()
		}
		tell = false
	}
	if err != nil && isClosed(handleDone) {
		err = fmt.Errorf("%w: conn closed", transport.ErrClosed)
	}
	if err != nil {
		s.terminate(err, codeOK, "", tell)
		return nil, err
	}
	s.start(int(s.peerWindow))
	return s, nil
}

func (c *clientConn) removeStream(id uint64, s *stream) {
	c.mu.Lock()
	if c.streams[id] == s {
		delete(c.streams, id)
	}
	if c.opening[id] == s {
		delete(c.opening, id)
	}
	c.mu.Unlock()
}

// readLoop is the connection's reader goroutine: it checks the server's
// preamble, then dispatches frames until the connection dies.
func (c *clientConn) readLoop() {
	established := false
	err := c.read(&established)
	c.link.fail(err)
	err = c.link.err // the first cause, if the link was failed elsewhere
	c.teardown()
	c.p.lost(c, established, err)
}

func (c *clientConn) read(established *bool) error {
	nc := c.link.nc
	br := bufio.NewReaderSize(nc, 32<<10)
	if err := nc.SetReadDeadline(time.Now().Add(c.o.HandshakeTimeout)); err != nil {
		return err
	}
	var pre [len(preamble)]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil {
		return fmt.Errorf("reading server preamble: %w", err)
	}
	if pre != preamble {
		return fmt.Errorf("%w: bad server preamble %q", errFrame, pre[:])
	}
	if err := nc.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	*established = true
	c.p.established(c)
	var f frame
	for {
		body, err := readFrame(br, c.link.maxBody)
		if err != nil {
			return err
		}
		if err := decodeFrame(body, &f); err != nil {
			return err
		}
		if err := c.dispatch(&f); err != nil {
			return err
		}
	}
}

func (c *clientConn) dispatch(f *frame) error {
	switch f.typ {
	case frameReply, frameError:
		c.mu.Lock()
		pc := c.calls[f.id]
		delete(c.calls, f.id)
		s := c.opening[f.id]
		if s != nil {
			delete(c.opening, f.id)
			if f.typ == frameReply {
				c.streams[f.id] = s
			}
		}
		c.mu.Unlock()
		switch {
		case pc != nil && f.typ == frameReply:
			pc.finish(f.payload, nil)
		case pc != nil:
			pc.finish(nil, remoteErr(pc.route, f.code, f.payload))
		case s != nil && f.typ == frameReply:
			w, n := binary.Uvarint(f.payload)
			if n <= 0 || n != len(f.payload) || w == 0 || w > math.MaxInt32 {
				return fmt.Errorf("%w: bad stream accept for %d", errFrame, f.id)
			}
			s.peerWindow = w
			s.opened <- nil
		case s != nil:
			s.opened <- remoteErr(s.route, f.code, f.payload)
		}
	case frameStreamMsg, frameStreamClose, frameWindow:
		c.mu.Lock()
		s := c.streams[f.id]
		c.mu.Unlock()
		if s == nil {
			return nil // a stream closed here while the frame was in flight
		}
		switch f.typ {
		case frameStreamMsg:
			return s.deliver(f.payload)
		case frameStreamClose:
			s.remoteClosed(f.code, f.payload)
		case frameWindow:
			s.grant(int(f.window))
		}
	default:
		return fmt.Errorf("%w: unexpected frame type %d from server", errFrame, f.typ)
	}
	return nil
}

// teardown fails everything in flight on a dead connection.
func (c *clientConn) teardown() {
	c.mu.Lock()
	c.torn = true
	calls, opening, streams := c.calls, c.opening, c.streams
	c.calls, c.opening, c.streams = nil, nil, nil
	c.mu.Unlock()
	err := c.link.deadErr()
	for _, pc := range calls {
		pc.finish(nil, err)
	}
	for _, s := range opening {
		s.opened <- err
	}
	for _, s := range streams {
		s.broken(err)
	}
	if c.link.err != errLinkClosed && !errors.Is(c.link.err, net.ErrClosed) {
		c.link.log.Debug("tcp: client connection closed", "err", c.link.err)
	}
}
