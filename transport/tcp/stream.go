package tcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/synod-go/synod/transport"
)

// msgOverhead is what each stream message costs against the flow-control
// window on top of its length, so that a flood of empty messages is bounded
// too.
const msgOverhead = 64

func msgCost(n int) int { return n + msgOverhead }

// streamOwner is the connection side (client or server) that keeps a stream
// in its table of open streams.
type streamOwner interface {
	removeStream(id uint64, s *stream)
}

// stream implements transport.Stream on either side of a connection.
//
// Flow control: each side grants the other a receive window (in message
// cost, see msgCost). A writer waits while its credit is used up; a reader
// gives credit back with a window frame once it has consumed half the
// window. A peer that sends past its credit breaks the protocol and its
// connection is dropped.
type stream struct {
	id     uint64
	route  string
	link   *link
	owner  streamOwner
	ctx    context.Context
	cancel context.CancelFunc
	stop   func() bool   // stops the AfterFunc that closes the stream when ctx ends; guarded by mu
	onDone func(*stream) // if set, called once when the stream closes; set before it is shared

	recvWindow int // the window this side granted
	maxQueued  int // the most the peer may have queued here: recvWindow + one frame

	opened     chan error // client side, capacity 1: the server's answer to the open
	peerWindow uint64     // client side: the server's receive window, set before opened is sent

	readReady  chan struct{} // capacity 1: queue or state changed
	writeReady chan struct{} // capacity 1: credit or state changed

	mu sync.Mutex
	// Invariant: queued == sum of msgCost over queue[head:], and queued <= maxQueued.
	queue    [][]byte
	head     int
	queued   int
	consumed int   // cost read since the last window update was sent
	credit   int   // send credit; may go negative by at most one message
	closed   bool  // no more messages either way
	readErr  error // what ReadMsg returns once the queue is drained (set when closed)
	writeErr error // what WriteMsg returns (set when closed)
	userDone bool  // Close was called (or the handler returned): reads fail at once
}

func newStream(ctx context.Context, cancel context.CancelFunc, l *link, owner streamOwner, id uint64, route string, recvWindow, maxFrame int) *stream {
	s := &stream{
		id:         id,
		route:      route,
		link:       l,
		owner:      owner,
		ctx:        ctx,
		cancel:     cancel,
		recvWindow: recvWindow,
		maxQueued:  recvWindow + msgCost(maxFrame),
		readReady:  make(chan struct{}, 1),
		writeReady: make(chan struct{}, 1),
	}
	return s
}

// start arms the stream: credit is the peer's receive window, and the end
// of ctx (opener's cancellation, deadline, connection loss) closes it.
func (s *stream) start(credit int) {
	stop := context.AfterFunc(s.ctx, func() {
		cause := context.Cause(s.ctx)
		code := codeCancelled
		if errors.Is(cause, context.DeadlineExceeded) {
			code = codeDeadline
		}
		s.terminate(fmt.Errorf("%w: %w", transport.ErrClosed, cause), code, "", true)
	})
	s.mu.Lock()
	s.credit += credit // a window frame may have come first
	if s.closed {
		s.mu.Unlock()
		stop()
		return
	}
	s.stop = stop
	s.mu.Unlock()
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (s *stream) Context() context.Context { return s.ctx }

// ReadMsg implements transport.Stream.
func (s *stream) ReadMsg() ([]byte, error) {
	for {
		s.mu.Lock()
		if s.userDone {
			err := s.readErr
			s.mu.Unlock()
			return nil, err
		}
		if s.head < len(s.queue) {
			msg := s.queue[s.head]
			s.queue[s.head] = nil
			s.head++
			if s.head == len(s.queue) {
				s.queue, s.head = s.queue[:0], 0
			}
			c := msgCost(len(msg))
			s.queued -= c
			s.consumed += c
			grant := 0
			if s.consumed >= s.recvWindow/2 && !s.closed {
				grant, s.consumed = s.consumed, 0
			}
			s.mu.Unlock()
			if grant > 0 {
				// A control frame: never waits, so a slow socket cannot
				// block the reader.
				_ = s.link.send(context.Background(), &frame{typ: frameWindow, id: s.id, window: uint64(grant)}, false)
			}
			return msg, nil
		}
		if s.closed {
			err := s.readErr
			s.mu.Unlock()
			return nil, err
		}
		s.mu.Unlock()
		<-s.readReady
	}
}

// WriteMsg implements transport.Stream.
func (s *stream) WriteMsg(msg []byte) error {
	f := frame{typ: frameStreamMsg, id: s.id, payload: msg}
	if len(msg) > s.link.maxMsg {
		return fmt.Errorf("%w: stream message of %d bytes, limit %d", transport.ErrTooLarge, len(msg), s.link.maxMsg)
	}
	for {
		s.mu.Lock()
		if s.closed {
			err := s.writeErr
			s.mu.Unlock()
			return err
		}
		if s.credit > 0 {
			s.credit -= msgCost(len(msg))
			s.mu.Unlock()
			break
		}
		s.mu.Unlock()
		<-s.writeReady
	}
	if err := s.link.send(s.ctx, &f, true); err != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return s.writeErr
		}
		return err
	}
	return nil
}

// Close implements transport.Stream.
func (s *stream) Close() error {
	s.closeWith(nil)
	return nil
}

// closeWith closes the stream from this side. A server passes its
// handler's error, which is only logged: the client reads io.EOF, as for any
// handler that returns.
func (s *stream) closeWith(herr error) {
	if herr != nil {
		s.link.log.Debug("tcp: stream handler returned an error", "route", s.route, "err", herr)
	}
	s.closeLocal(codeOK)
}

// closeLocal closes the stream from this side, telling the peer code:
// codeOK for a clean close (the peer reads io.EOF), codeAborted when the
// Conn it was opened on is closed (the peer reads an error).
func (s *stream) closeLocal(code byte) {
	errClosed := fmt.Errorf("%w: stream closed", transport.ErrClosed)
	s.terminate(errClosed, code, "", true)
	s.mu.Lock()
	s.userDone = true
	s.readErr, s.writeErr = errClosed, errClosed
	s.queue, s.head, s.queued = nil, 0, 0
	s.mu.Unlock()
}

// terminate moves the stream to closed, once: later calls do nothing. When
// tell is set, the peer is sent a stream-close frame.
func (s *stream) terminate(err error, code byte, msg string, tell bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.readErr, s.writeErr = err, err
	s.mu.Unlock()
	if tell {
		_ = s.link.send(context.Background(), &frame{typ: frameStreamClose, id: s.id, code: code, payload: []byte(msg)}, false)
	}
	s.finish()
}

func (s *stream) finish() {
	s.owner.removeStream(s.id, s)
	s.mu.Lock()
	stop := s.stop
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.cancel()
	if s.onDone != nil {
		s.onDone(s)
	}
	notify(s.readReady)
	notify(s.writeReady)
}

func (s *stream) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Called by the connection's reader goroutine.

// deliver queues a message from the peer. It returns an error when the peer
// overran its window.
func (s *stream) deliver(msg []byte) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil // a message that crossed our close frame
	}
	c := msgCost(len(msg))
	if s.queued+c > s.maxQueued {
		s.mu.Unlock()
		return fmt.Errorf("%w: stream %d overran its flow-control window", errFrame, s.id)
	}
	s.queued += c
	s.queue = append(s.queue, msg)
	s.mu.Unlock()
	notify(s.readReady)
	return nil
}

// grant adds send credit from a window frame.
func (s *stream) grant(n int) {
	s.mu.Lock()
	s.credit += n
	s.mu.Unlock()
	notify(s.writeReady)
}

// remoteClosed handles the peer's stream-close frame.
func (s *stream) remoteClosed(code byte, msg []byte) {
	var rerr, werr error = io.EOF, io.EOF
	if code != codeOK {
		rerr = remoteErr(s.route, code, msg)
		werr = rerr
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.readErr, s.writeErr = rerr, werr
	s.mu.Unlock()
	s.finish()
}

// broken handles the loss of the connection.
func (s *stream) broken(err error) {
	s.terminate(err, codeOK, "", false)
}

// remoteErr turns an error or stream-close frame into the caller's error.
func remoteErr(route string, code byte, msg []byte) error {
	switch code {
	case codeUnknown:
		return fmt.Errorf("%w: %q", transport.ErrUnknownRoute, route)
	case codeTooLarge:
		return fmt.Errorf("%w: reply to %q: %s", transport.ErrTooLarge, route, msg)
	case codeOverloaded:
		return fmt.Errorf("%w: peer overloaded (%s): %s", transport.ErrUnreachable, route, msg)
	case codeUnavailable:
		return fmt.Errorf("%w: peer shutting down (%s)", transport.ErrUnreachable, route)
	case codeCancelled:
		return fmt.Errorf("tcp: %s: cancelled at the peer: %w", route, context.Canceled)
	case codeDeadline:
		return fmt.Errorf("tcp: %s: deadline passed at the peer: %w", route, context.DeadlineExceeded)
	case codeAborted:
		return fmt.Errorf("%w: stream %s: opener closed its conn", transport.ErrUnreachable, route)
	default:
		return &transport.RemoteError{Route: route, Msg: string(msg)}
	}
}

func truncate(s string) string {
	if len(s) > maxErrorMsgLen {
		return s[:maxErrorMsgLen]
	}
	return s
}

var _ transport.Stream = (*stream)(nil)
