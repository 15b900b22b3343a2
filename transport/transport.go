package transport

import (
	"context"
	"errors"
	"fmt"
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
)

// RemoteError is the error returned by a unary call whose remote handler
// returned an error. Only the message crosses the network.
type RemoteError struct {
	Route string
	Msg   string
}

func (e *RemoteError) Error() string { return fmt.Sprintf("transport: remote %s: %s", e.Route, e.Msg) }

// Stream is a bidirectional, ordered, reliable stream of messages between two
// nodes, opened by a client with Conn.NewStream and handed to the server's
// StreamHandler. Messages are delivered whole and in order; a lost message
// breaks the stream (ReadMsg and WriteMsg return an error wrapping
// ErrUnreachable) rather than silently leaving a gap.
//
// ReadMsg and WriteMsg may be called concurrently with each other (one reader
// and one writer goroutine), but not each from several goroutines at once.
// Close may be called at any time from any goroutine and unblocks both.
// Deadlines are carried by Context: when it ends, the stream is closed.
type Stream interface {
	// Context returns the stream's context. It is done when the stream is
	// closed by either side, broken, or the opener's context ends.
	Context() context.Context

	// ReadMsg blocks for the next message. It returns io.EOF after the peer
	// closed the stream cleanly, and an error wrapping ErrUnreachable or
	// ErrClosed otherwise. The returned slice belongs to the caller.
	ReadMsg() ([]byte, error)

	// WriteMsg sends one message. It does not retain msg after it returns.
	WriteMsg(msg []byte) error

	// Close closes both directions. The peer's ReadMsg returns io.EOF.
	Close() error
}

// Conn is a client's handle on one remote node. It is safe for concurrent
// use by many goroutines; many calls and streams share it.
type Conn interface {
	// Call sends req to the handler registered for route at the peer and
	// returns its reply. ctx bounds the whole call; its deadline and
	// cancellation reach the remote handler's context. The caller owns the
	// returned slice.
	Call(ctx context.Context, route string, req []byte) ([]byte, error)

	// NewStream opens a stream to the stream handler registered for route.
	// The stream's context is derived from ctx.
	NewStream(ctx context.Context, route string) (Stream, error)

	// Close releases the Conn. Calls in progress fail with ErrClosed.
	Close() error
}

// Dialer returns a Conn for a peer address. Dial does not need to contact the
// peer; a transport may connect lazily and reconnect on its own.
type Dialer interface {
	Dial(ctx context.Context, addr string) (Conn, error)
}

// UnaryHandler serves one unary call. ctx carries the caller's deadline and
// cancellation. The returned bytes are the reply; a non-nil error reaches the
// caller as a *RemoteError.
type UnaryHandler func(ctx context.Context, req []byte) ([]byte, error)

// StreamHandler serves one stream for as long as it returns; the stream is
// closed when it returns.
type StreamHandler func(s Stream) error
