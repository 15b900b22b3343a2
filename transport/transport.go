package transport

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors a transport returns. Implementations wrap them with %w so callers
// test with errors.Is.
var (
	// ErrUnreachable means the message could not be delivered, or its reply
	// did not come back: the peer is down, partitioned, deaf, or the message
	// was lost. For a unary call the remote handler may or may not have run.
	// The caller may retry (on this peer or another).
	ErrUnreachable = errors.New("transport: peer unreachable")

	// ErrUnknownRoute means the peer has no handler for the route. Retrying
	// the same call on the same peer will not help.
	ErrUnknownRoute = errors.New("transport: unknown route")

	// ErrClosed means the local Conn, Stream or Listener was closed.
	ErrClosed = errors.New("transport: closed")

	// ErrTooLarge means a message exceeds the transport's maximum size.
	ErrTooLarge = errors.New("transport: message too large")

	// ErrWouldBlock means AsyncConn.CallAsync could not start the call
	// without waiting (no connection is up, or its send buffer is full).
	// Nothing was sent; the caller may use Call instead.
	ErrWouldBlock = errors.New("transport: call would block")
)

// RemoteError is the error returned by a unary call whose remote handler
// returned an error. Only the message crosses the network: error identity
// (errors.Is) is lost, so protocols that need to tell errors apart encode
// them in the reply instead.
type RemoteError struct {
	Route string // the route that was called
	Msg   string // the handler's err.Error()
}

// Error returns a message naming the route and the handler's error.
func (e *RemoteError) Error() string { return fmt.Sprintf("transport: remote %s: %s", e.Route, e.Msg) }

// Stream is a bidirectional, ordered, reliable stream of messages between two
// nodes, opened by a client with Conn.NewStream and handed to the server's
// StreamHandler. Messages are delivered whole and in order; a lost message
// breaks the stream (ReadMsg and WriteMsg return an error wrapping
// ErrUnreachable on both sides) rather than silently leaving a gap.
//
// ReadMsg and WriteMsg may be called concurrently with each other (one reader
// and one writer goroutine), but not each from several goroutines at once.
// Close may be called at any time from any goroutine and unblocks both.
//
// Life cycle:
//   - Close by one side (or the server's handler returning) ends the stream
//     cleanly: the other side reads the messages already sent and then
//     io.EOF; its WriteMsg returns io.EOF (or, on a network transport that
//     has not learnt of the close yet, nil and the message is discarded).
//     On the side that closed, ReadMsg and WriteMsg return ErrClosed.
//   - When the opener's context ends (deadline or cancel), the stream is
//     aborted on both sides: the opener's ReadMsg and WriteMsg return an
//     error wrapping ctx.Err(); the server's return an error that is not
//     io.EOF, and the server's Context is done.
//   - A broken path (peer down, partition, lost message) aborts both sides
//     with errors wrapping ErrUnreachable.
//
// Context is done once the stream has ended in any of these ways.
type Stream interface {
	// Context returns the stream's context. On the opener's side it derives
	// from the context passed to NewStream; on the server's side it carries
	// the opener's deadline. It is done when the stream is closed by either
	// side, broken, or the opener's context ends.
	Context() context.Context

	// ReadMsg blocks for the next message. It returns io.EOF after the peer
	// closed the stream cleanly (and every message sent before the close has
	// been read), and an error wrapping ErrUnreachable, ErrClosed or the
	// opener's ctx.Err() otherwise. The returned slice belongs to the caller.
	ReadMsg() ([]byte, error)

	// WriteMsg sends one message. It does not retain msg after it returns.
	// A nil error means the message was handed to the transport, not that
	// the peer read it. A message over the transport's size limit is
	// refused with ErrTooLarge and the stream stays usable. WriteMsg may
	// block while the transport applies back pressure.
	WriteMsg(msg []byte) error

	// Close closes both directions. The peer's ReadMsg returns io.EOF once it
	// has read what was sent before. Close is idempotent and returns nil
	// unless the transport failed to release a resource.
	Close() error
}

// Conn is a client's handle on one remote node. It is safe for concurrent
// use by many goroutines; many calls and streams share it.
type Conn interface {
	// Call sends req to the handler registered for route at the peer and
	// returns its reply. ctx bounds the whole call; its deadline and
	// cancellation reach the remote handler's context (the remote context
	// carries the same deadline). If ctx ends first, Call returns an error
	// wrapping ctx.Err(). Call does not retain req; the caller owns the
	// returned slice.
	//
	// Errors: ErrUnreachable (the request or the reply was lost or the peer
	// is down: the handler may or may not have run), ErrUnknownRoute,
	// ErrTooLarge (req or the reply is over the size limit), ErrClosed (the
	// Conn was closed, also while the call was in progress), *RemoteError
	// (the handler returned an error), or ctx.Err() as above. Implementations
	// fail fast when they know the peer is unreachable rather than waiting
	// for ctx to end.
	Call(ctx context.Context, route string, req []byte) ([]byte, error)

	// NewStream opens a stream to the stream handler registered for route.
	// The stream's context is derived from ctx, and the stream is aborted
	// when ctx ends (see Stream). An unknown route or an unreachable peer is
	// reported as ErrUnknownRoute or ErrUnreachable, either by NewStream or,
	// on a transport that opens streams lazily, by the first ReadMsg.
	NewStream(ctx context.Context, route string) (Stream, error)

	// Close releases the Conn. Calls in progress and later calls fail with
	// ErrClosed, and streams opened through it are aborted (ErrClosed on the
	// local side). Close is idempotent.
	Close() error
}

// Dialer returns a Conn for a peer address. Dial does not need to contact the
// peer; a transport may connect lazily and reconnect on its own, so an
// unreachable peer is typically reported by the Conn's calls, not by Dial.
// A Dialer is safe for concurrent use.
type Dialer interface {
	Dial(ctx context.Context, addr string) (Conn, error)
}

// UnaryHandler serves one unary call. ctx carries the caller's deadline and
// cancellation, and also ends when the transport gives up on the call (the
// server is shutting down, the caller is gone). The handler owns req. The
// returned bytes are the reply; the handler must not modify them after
// returning, and the transport does not modify them either. A
// non-nil error reaches the caller as a *RemoteError carrying err.Error().
// Handlers run concurrently with each other.
type UnaryHandler func(ctx context.Context, req []byte) ([]byte, error)

// AsyncUnaryHandler serves one unary call without a goroutine of its own,
// for handlers whose work is mostly waiting for something else (a group
// commit) or takes no time at all (an in-memory update). Register it with
// Mux.HandleAsync. A transport that supports it calls it on the goroutine
// that read the request, so it must return quickly and never block; it
// answers by calling reply exactly once, now or later, from any goroutine.
// reply does not block, and req, the reply bytes and the error follow the
// rules of UnaryHandler. There is no context: a reply to a caller that
// gave up (its deadline passed, it cancelled, the connection died) is
// dropped. A transport that does not support it calls it through an
// adapter (Mux.Unary), on a goroutine that waits for the reply.
type AsyncUnaryHandler func(req []byte, reply func(rep []byte, err error))

// StreamHandler serves one stream until it returns; the stream is then
// closed as if by s.Close (the opener reads io.EOF after the messages already
// written). The returned error is not sent to the opener; transports may log
// it.
type StreamHandler func(s Stream) error

// AsyncConn is an optional interface of a Conn whose unary calls can be
// started without blocking the caller, for callers that run an event loop
// and must never wait on the network (the paxos leader's). Detect it with a
// type assertion; transport/tcp and transport/mem implement it.
type AsyncConn interface {
	// CallAsync starts a call of route with req and returns without waiting
	// for the reply, nor for the socket: if the call cannot start at once
	// it returns an error (wrapping ErrWouldBlock when waiting would have
	// helped) and done is never called. CallAsync does not retain req.
	//
	// Otherwise done is called exactly once, with what Call would have
	// returned, on a goroutine of the transport, or from within cancel or
	// Close; it must not block for long, since it may hold up the delivery
	// of other replies. The caller owns the reply slice. Some errors Call
	// returns at once (ErrTooLarge) may come either way.
	//
	// timeout is passed to the remote handler, whose context carries it as
	// with Call. A transport need not expire the call itself (tcp does not;
	// mem does): a caller that stops waiting calls cancel, after which done
	// is called with an error wrapping context.Canceled unless it already
	// ran. cancel may be called more than once and from any goroutine.
	// Closing the Conn fails its calls in progress with ErrClosed.
	CallAsync(route string, req []byte, timeout time.Duration, done func(reply []byte, err error)) (cancel func(), err error)
}
