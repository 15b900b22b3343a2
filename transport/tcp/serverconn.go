package tcp

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/synod-go/synod/transport"
)

// serverConn is the server side of one connection: the handlers it runs,
// by call id.
type serverConn struct {
	s    *Server
	link *link
	ctx  context.Context // ends with the connection; parent of its handlers' contexts
	stop context.CancelFunc

	mu      sync.Mutex
	calls   map[uint64]context.CancelFunc // running unary handlers; nil once torn down
	streams map[uint64]*stream            // open streams; nil once torn down
}

func newServerConn(s *Server, nc net.Conn) *serverConn {
	// Not derived from s.ctx: handlers are cancelled by teardown, after the
	// connection is marked dead, so that a handler cancelled by Close never
	// sends its context error as a reply.
	ctx, stop := context.WithCancel(context.Background())
	return &serverConn{
		s:       s,
		link:    newLink(nc, &s.opts),
		ctx:     ctx,
		stop:    stop,
		calls:   make(map[uint64]context.CancelFunc),
		streams: make(map[uint64]*stream),
	}
}

// serve reads the client's preamble (the handshake deadline is still set),
// answers with its own, and dispatches frames until the connection dies.
// It then fails what is in flight and waits for the writer goroutine.
func (sc *serverConn) serve() {
	err := sc.read()
	sc.link.fail(err)
	err = sc.link.err
	sc.teardown()
	switch {
	case err == errLinkClosed, errors.Is(err, net.ErrClosed), err == io.EOF:
	case errors.Is(err, errFrame), errors.Is(err, errFrameTooLarge):
		sc.link.log.Warn("tcp: dropping connection: protocol error", "err", err)
	default:
		sc.link.log.Info("tcp: connection closed", "err", err)
	}
}

func (sc *serverConn) read() error {
	nc := sc.link.nc
	br := bufio.NewReaderSize(nc, 32<<10)
	var pre [len(preamble)]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil {
		return fmt.Errorf("%w: reading client preamble: %w", errFrame, err)
	}
	if pre != preamble {
		return fmt.Errorf("%w: bad client preamble %q", errFrame, pre[:])
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return err
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		sc.link.writeLoop(preamble[:])
	}()
	err := sc.loop(br)
	sc.link.fail(err)
	<-writerDone // the writer ends once the link is failed
	return err
}

func (sc *serverConn) loop(br *bufio.Reader) error {
	var f frame
	for {
		body, err := readFrame(br, sc.link.maxBody)
		if err != nil {
			return err
		}
		if err := decodeFrame(body, &f); err != nil {
			return err
		}
		if err := sc.dispatch(&f); err != nil {
			return err
		}
	}
}

// reject fails one call or stream open with an error frame.
func (sc *serverConn) reject(f *frame, code byte, msg string) {
	sc.link.log.Info("tcp: rejected request", "route", f.route, "id", f.id, "code", code, "reason", msg)
	_ = sc.link.send(context.Background(), &frame{typ: frameError, id: f.id, code: code, payload: []byte(msg)}, false)
}

// handlerContext returns the context for a handler: the connection's,
// with the caller's remaining time if it sent one.
func (sc *serverConn) handlerContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout > 0 {
		return clockwork.WithTimeout(sc.ctx, sc.s.opts.Clock, timeout)
	}
	return context.WithCancel(sc.ctx)
}

func (sc *serverConn) dispatch(f *frame) error {
	s := sc.s
	switch f.typ {
	case frameCall:
		h, ah, ok := s.mux.UnaryAsync(f.route)
		if !ok {
			sc.reject(f, codeUnknown, "")
			return nil
		}
		select {
		case s.callSem <- struct{}{}:
		default:
			sc.reject(f, codeOverloaded, "too many concurrent calls")
			return nil
		}
		if ah != nil {
			// Run on this goroutine: no context, no goroutine, no timer.
			// The entry has no cancel func; a cancel frame or the
			// teardown removing it is what makes the reply be dropped.
			if err := sc.track(f.id, nil); err != nil {
				return err
			}
			ah(f.payload, sc.asyncReply(f.id))
			return nil
		}
		ctx, cancel := sc.handlerContext(f.timeout)
		if err := sc.track(f.id, cancel); err != nil {
			cancel()
			return err
		}
		go sc.runCall(ctx, cancel, f.id, h, f.payload)

	case frameStreamOpen:
		if f.window == 0 || f.window > 1<<31-1 {
			return fmt.Errorf("%w: stream window %d", errFrame, f.window)
		}
		h, ok := s.mux.Stream(f.route)
		if !ok {
			sc.reject(f, codeUnknown, "")
			return nil
		}
		select {
		case s.streamSem <- struct{}{}:
		default:
			sc.reject(f, codeOverloaded, "too many concurrent streams")
			return nil
		}
		ctx, cancel := sc.handlerContext(f.timeout)
		st := newStream(ctx, cancel, sc.link, sc, f.id, f.route, s.opts.StreamWindow, sc.link.maxMsg)
		sc.mu.Lock()
		_, dup := sc.streams[f.id]
		if !dup {
			sc.streams[f.id] = st
		}
		sc.mu.Unlock()
		if dup {
			cancel()
			<-s.streamSem
			return fmt.Errorf("%w: duplicate stream id %d", errFrame, f.id)
		}
		ack := binary.AppendUvarint(nil, uint64(s.opts.StreamWindow))
		_ = sc.link.send(context.Background(), &frame{typ: frameReply, id: f.id, payload: ack}, false)
		st.start(int(f.window))
		s.wg.Add(1)
		go sc.runStream(st, h)

	case frameCancel:
		sc.mu.Lock()
		cancel := sc.calls[f.id]
		delete(sc.calls, f.id)
		st := sc.streams[f.id]
		sc.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		if st != nil {
			st.remoteClosed(codeOK, nil)
		}

	case frameStreamMsg, frameStreamClose, frameWindow:
		sc.mu.Lock()
		st := sc.streams[f.id]
		sc.mu.Unlock()
		if st == nil {
			return nil // closed here while the frame was in flight
		}
		switch f.typ {
		case frameStreamMsg:
			return st.deliver(f.payload)
		case frameStreamClose:
			st.remoteClosed(f.code, f.payload)
		case frameWindow:
			st.grant(int(f.window))
		}

	default:
		return fmt.Errorf("%w: unexpected frame type %d from client", errFrame, f.typ)
	}
	return nil
}

// track records call id as running, with cancel (nil for an asynchronous
// handler), and counts it in Server.wg. A duplicate id is a protocol
// error: the call's Server.callSem slot, taken by the caller, is released.
func (sc *serverConn) track(id uint64, cancel context.CancelFunc) error {
	sc.mu.Lock()
	_, dup := sc.calls[id]
	if !dup {
		sc.calls[id] = cancel
	}
	sc.mu.Unlock()
	if dup {
		<-sc.s.callSem
		return fmt.Errorf("%w: duplicate call id %d", errFrame, id)
	}
	sc.s.wg.Add(1)
	return nil
}

func (sc *serverConn) runCall(ctx context.Context, cancel context.CancelFunc, id uint64, h transport.UnaryHandler, req []byte) {
	defer sc.endCall()
	reply, herr := h(ctx, req)
	ctxErr := ctx.Err()
	cancel()
	f, live := sc.replyFrame(id, reply, herr, ctxErr)
	if live {
		sc.sendReply(&f, modeWait)
	}
}

// asyncReply returns the reply function for asynchronous call id (see
// transport.AsyncUnaryHandler). It never blocks: a reply that finds the
// send queue full goes to a goroutine that waits for room, as runCall
// would.
//
// A second call of the reply (a handler's bug) is logged and ignored: it
// must not release the slot of another call.
func (sc *serverConn) asyncReply(id uint64) func([]byte, error) {
	var replied atomic.Bool
	return func(reply []byte, herr error) {
		if !replied.CompareAndSwap(false, true) {
			sc.link.log.Error("tcp: asynchronous handler replied twice", "id", id)
			return
		}
		f, live := sc.replyFrame(id, reply, herr, nil)
		if live && errors.Is(sc.sendReply(&f, modeTry), transport.ErrWouldBlock) {
			go func() {
				sc.sendReply(&f, modeWait)
				sc.endCall()
			}()
			return
		}
		sc.endCall()
	}
}

// endCall releases what a call held: its slot of Server.callSem and its
// count in Server.wg.
func (sc *serverConn) endCall() {
	<-sc.s.callSem
	sc.s.wg.Done()
}

// replyFrame ends call id and returns the frame that answers it, or false
// if the caller cancelled the call or the connection is gone. ctxErr is
// the handler's context's error (nil for an asynchronous handler).
func (sc *serverConn) replyFrame(id uint64, reply []byte, herr, ctxErr error) (frame, bool) {
	sc.mu.Lock()
	_, live := sc.calls[id]
	delete(sc.calls, id)
	sc.mu.Unlock()
	if !live {
		return frame{}, false
	}
	if herr == nil {
		return frame{typ: frameReply, id: id, payload: reply}, true
	}
	// A handler that failed after its context ended (the caller's deadline
	// passed here first, by a timer's slack) reports that, so the caller
	// sees its context's error rather than a RemoteError.
	code := codeRemote
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		code = codeDeadline
	} else if ctxErr != nil {
		code = codeCancelled
	}
	return frame{typ: frameError, id: id, code: code, payload: []byte(truncate(herr.Error()))}, true
}

// sendReply sends f, a reply; one over the size limit is replaced by an
// error frame saying so. With modeTry it returns ErrWouldBlock, having
// sent nothing, if the send queue is full.
func (sc *serverConn) sendReply(f *frame, mode sendMode) error {
	err := sc.link.sendMode(sc.ctx, f, mode)
	if errors.Is(err, transport.ErrTooLarge) {
		msg := fmt.Sprintf("reply of %d bytes, limit %d", len(f.payload), sc.link.maxMsg)
		// Small: queued even if the queue is full, so it never blocks.
		return sc.link.sendMode(sc.ctx, &frame{typ: frameError, id: f.id, code: codeTooLarge, payload: []byte(msg)}, modeQueue)
	}
	return err
}

func (sc *serverConn) runStream(st *stream, h transport.StreamHandler) {
	defer sc.s.wg.Done()
	defer func() { <-sc.s.streamSem }()
	st.closeWith(h(st))
}

func (sc *serverConn) removeStream(id uint64, st *stream) {
	sc.mu.Lock()
	if sc.streams[id] == st {
		delete(sc.streams, id)
	}
	sc.mu.Unlock()
}

// teardown breaks the streams of a dead connection and cancels its
// handlers' contexts.
func (sc *serverConn) teardown() {
	sc.mu.Lock()
	streams := sc.streams
	sc.calls, sc.streams = nil, nil
	sc.mu.Unlock()
	err := sc.link.deadErr()
	for _, st := range streams {
		st.broken(err)
	}
	sc.stop()
}
