package transport

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// MockStream is one end of an in-memory Stream pair made by
// NewMockStreamPair, for unit tests of code that reads and writes streams
// (an observer, an acceptor's Observe handler) without a transport. It
// follows the Stream contract exactly:
//
//   - messages arrive whole, in order, copied (no aliasing between ends);
//   - WriteMsg never blocks (the buffer is unbounded);
//   - Close by one end: the other end reads what was sent before, then
//     io.EOF, and its WriteMsg returns io.EOF; the closing end's ReadMsg and
//     WriteMsg return ErrClosed;
//   - the end of the opener's context aborts both ends with an error
//     wrapping ctx.Err();
//   - Break aborts both ends with an error wrapping ErrUnreachable, as a lost
//     message or a dead peer would.
//
// A MockStream is safe for one reader and one writer goroutine at a time,
// plus Close and Break from any goroutine.
type MockStream struct {
	pair   *mockPair
	peer   *MockStream
	ctx    context.Context
	cancel context.CancelCauseFunc
	wake   chan struct{} // capacity 1: poked whenever inbox, eof or err change

	// Guarded by pair.mu.
	inbox      [][]byte // messages written by peer, not yet read
	eof        bool     // peer closed cleanly; io.EOF once inbox is drained
	peerClosed bool     // peer closed; WriteMsg returns io.EOF
	err        error    // terminal error of this end (ErrClosed, abort), or nil
}

var _ Stream = (*MockStream)(nil)

type mockPair struct {
	mu        sync.Mutex
	ended     bool        // closed or aborted; guarded by mu
	stopWatch func() bool // stops the watch on the opener's context
}

// NewMockStreamPair returns the two ends of a new in-memory stream: client
// plays the opener (what Conn.NewStream returns) and server the handler's
// end. Both ends' contexts derive from ctx, and when ctx ends both ends are
// aborted with an error wrapping ctx.Err(), as the opener's context would on a
// real transport. Close both ends (or cancel ctx) to release the pair.
func NewMockStreamPair(ctx context.Context) (client, server *MockStream) {
	p := &mockPair{}
	client = newMockEnd(ctx, p)
	server = newMockEnd(ctx, p)
	client.peer, server.peer = server, client
	p.mu.Lock() // the watch may fire at once; it must see stopWatch set
	defer p.mu.Unlock()
	p.stopWatch = context.AfterFunc(ctx, func() {
		err := fmt.Errorf("transport: mock stream: opener's context ended: %w", ctx.Err())
		p.abort(client, err, err)
	})
	return client, server
}

func newMockEnd(ctx context.Context, p *mockPair) *MockStream {
	c, cancel := context.WithCancelCause(ctx)
	return &MockStream{pair: p, ctx: c, cancel: cancel, wake: make(chan struct{}, 1)}
}

// Context returns the end's context. It is done once the stream has been
// closed by either end, broken, or the opener's context has ended.
func (s *MockStream) Context() context.Context { return s.ctx }

// ReadMsg returns the next message from the peer, blocking until there is
// one. After the peer closed it returns the remaining messages, then io.EOF.
// After Close on this end it returns ErrClosed; after Break or the end of the
// opener's context it returns the abort error.
func (s *MockStream) ReadMsg() ([]byte, error) {
	for {
		s.pair.mu.Lock()
		switch {
		case s.err != nil:
			err := s.err
			s.pair.mu.Unlock()
			return nil, err
		case len(s.inbox) > 0:
			msg := s.inbox[0]
			s.inbox[0] = nil
			s.inbox = s.inbox[1:]
			s.pair.mu.Unlock()
			return msg, nil
		case s.eof:
			s.pair.mu.Unlock()
			return nil, io.EOF
		}
		s.pair.mu.Unlock()
		<-s.wake
	}
}

// WriteMsg appends a copy of msg to the peer's queue. It never blocks. It
// returns io.EOF after the peer closed, ErrClosed after Close on this end,
// and the abort error after Break or the end of the opener's context.
func (s *MockStream) WriteMsg(msg []byte) error {
	s.pair.mu.Lock()
	defer s.pair.mu.Unlock()
	switch {
	case s.err != nil:
		return s.err
	case s.peerClosed:
		return io.EOF
	}
	s.peer.inbox = append(s.peer.inbox, append([]byte{}, msg...))
	s.peer.poke()
	return nil
}

// Close ends the stream cleanly: the peer reads the messages already written
// and then io.EOF. It is idempotent and always returns nil.
func (s *MockStream) Close() error {
	p := s.pair
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.err == nil {
		s.err = fmt.Errorf("transport: mock stream: %w", ErrClosed)
		s.inbox = nil
		s.poke()
	}
	if p.ended {
		return nil
	}
	p.ended = true
	p.stopWatch()
	s.peer.eof = true
	s.peer.peerClosed = true
	s.peer.poke()
	s.cancel(ErrClosed)
	s.peer.cancel(io.EOF)
	return nil
}

// Break aborts the stream on both ends as a lost message or a dead peer
// would: pending messages are discarded, and ReadMsg and WriteMsg on both
// ends return an error wrapping ErrUnreachable. Break after the stream ended
// is a no-op.
func (s *MockStream) Break() {
	err := fmt.Errorf("transport: mock stream broken: %w", ErrUnreachable)
	s.pair.abort(s, err, err)
}

// abort ends the stream with errS on end s and errPeer on its peer, unless
// it already ended.
func (p *mockPair) abort(s *MockStream, errS, errPeer error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	p.ended = true
	p.stopWatch()
	for _, e := range []struct {
		end *MockStream
		err error
	}{{s, errS}, {s.peer, errPeer}} {
		if e.end.err == nil {
			e.end.err = e.err
			e.end.inbox = nil
		}
		e.end.poke()
		e.end.cancel(e.err)
	}
}

// poke wakes a reader blocked in ReadMsg, if any.
func (s *MockStream) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
