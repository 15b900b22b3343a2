// Package transport is the seam between Synod's protocol code and the network.
//
// It defines what the paxos roles need from a network and nothing more:
//
//   - Conn: a client's handle on one remote node, with unary calls
//     (Conn.Call: bytes in, bytes out, addressed by a route name) and
//     bidirectional message streams (Conn.NewStream).
//   - Dialer: returns a Conn for a peer address.
//   - Mux: the server side; handlers registered by route name. A transport's
//     listener serves one Mux. A handler registered with HandleAsync
//     (AsyncUnaryHandler) needs no goroutine per call: transports that
//     support it (tcp, mem) call it on the goroutine that read the request,
//     and others through an adapter that waits for its reply.
//   - Stream: an ordered, reliable stream of whole messages. A lost message
//     breaks the stream instead of leaving a silent gap.
//   - MockStream: an in-memory Stream pair for unit tests of streaming code.
//
// Payloads are opaque bytes; encoding protocol messages is the job of
// internal/wire, and choosing routes is the job of the caller.
//
// # Implementations
//
// Two transports ship with Synod:
//
//   - transport/mem: an in-process network with fault injection (drops,
//     delays, partitions, deaf nodes, crash and restart, message counters),
//     for the library's tests and for users' tests.
//   - transport/tcp: framed messages over TCP or unix sockets, with optional
//     mutual TLS.
//
// Another transport (gRPC, QUIC, …) plugs in by implementing Dialer, Conn and
// Stream and serving a Mux; it should pass the conformance suite in
// transport/transporttest, which fixes the details this package's docs leave
// to prose (which error for which failure, what reaches the remote handler).
//
// # Errors
//
// Transports wrap the sentinel errors of this package with %w; test them with
// errors.Is. What the caller should do:
//
//   - ErrUnreachable: the message or its reply was lost, or the peer is down.
//     A unary call may or may not have run remotely. Retry, here or
//     elsewhere, if the operation is safe to repeat.
//   - ErrUnknownRoute: the peer serves no handler for the route. Do not
//     retry on that peer.
//   - ErrTooLarge: the message exceeds the transport's size limit. Do not
//     retry unchanged.
//   - ErrClosed: the local Conn, Stream or Listener was closed. Give up.
//   - *RemoteError: the remote handler ran and returned an error.
//   - an error wrapping ctx.Err(): the caller's context ended first. A unary
//     call may or may not have run remotely.
//
// # Optional interfaces
//
// Capabilities added later come as small interfaces that a Conn or Dialer
// may implement, found by type assertion, and are listed here.
//
//   - AsyncConn: CallAsync starts a unary call without blocking, or fails
//     at once with ErrWouldBlock, and reports the outcome to a callback.
//     The paxos leader uses it to send Accepts from its event loop.
//     transport/tcp and transport/mem implement it.
package transport
