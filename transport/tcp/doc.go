// Package tcp is Synod's network transport: framed messages over TCP or unix
// sockets, optionally with mutual TLS. It implements the interfaces of
// package transport, so protocol code switches from transport/mem to real
// sockets by its dialer alone.
//
// # Use
//
// A node serves its transport.Mux with Listen (or ListenAddr, or Serve on a
// net.Listener of its own) and reaches its peers through one Dialer:
//
//	srv, err := tcp.ListenAddr("127.0.0.1:7000", mux, tcp.Options{})
//	...
//	d, err := tcp.NewDialer(tcp.Options{})
//	conn, err := d.Dial(ctx, "127.0.0.1:7001") // a transport.Conn
//	reply, err := conn.Call(ctx, "paxos.Accept", req)
//
// Close the Server and the Dialer when done: both close their connections,
// fail what is in flight and wait for their goroutines.
//
// Addresses are "host:port" (or "tcp://host:port") for TCP and
// "unix:///abs/path.sock" (or "unix:rel/path.sock") for unix sockets; see
// ParseAddr.
//
// # Connections
//
// A Dialer keeps one connection per remote address, shared by every Conn to
// it and multiplexing all their calls and streams by id. It connects on first
// use and after a connection is lost. When a dial fails, the peer is backed
// off (Options.BackoffMin to BackoffMax, doubling, with jitter, measured on
// Options.Clock) and calls to it fail at once with an error wrapping
// transport.ErrUnreachable until the backoff has passed; the next call after
// it dials again, so a restarted peer is reached again without restarting
// anyone. Calls and streams in flight on a connection that breaks fail with
// transport.ErrUnreachable.
//
// Each connection has a single writer goroutine: senders queue encoded
// frames and the writer sends everything queued in one write, so under load
// many frames share a syscall. A sender that finds nothing queued and no
// write in progress writes its frame itself, without blocking (plain TCP
// and unix sockets, not TLS), and leaves to the writer only what
// the socket did not take: a lone call goes out without waking the writer.
//
// Conns implement transport.AsyncConn: CallAsync never dials and never
// waits; it fails with transport.ErrWouldBlock when no connection is up or
// its write buffer (Options.WriteBuffer) is full.
//
// A Server runs each unary call and each stream on its own goroutine,
// bounded by Options.MaxConcurrentCalls and MaxConcurrentStreams; a request
// over the bound fails at once with transport.ErrUnreachable rather than
// queue. The handler's context carries the caller's remaining time (sent in
// the call frame, measured on Options.Clock at both ends) and is cancelled
// when the caller's context ends (a cancel frame), when the connection
// breaks, and when the Server closes.
//
// A route registered with Mux.HandleAsync (transport.AsyncUnaryHandler)
// runs instead on the connection's reader goroutine, with no goroutine,
// context or timer of its own; it holds its MaxConcurrentCalls slot until it
// replies. Its reply is written directly or queued without waiting; one
// that finds the write buffer full waits for room on a goroutine of its own,
// as a synchronous handler's would, so a peer that stops reading holds back
// replies rather than growing the queue. A reply to a call the caller
// cancelled, or on a connection that died, is dropped. Close waits for
// every asynchronous call to be answered.
//
// Streams have credit-based flow control (Options.StreamWindow), so a slow
// reader holds back its writer instead of buffering without bound.
//
// # Wire format
//
// Each side opens with a 6-byte preamble, "SYNOD" and a version byte (1).
// Then frames, in both directions:
//
//	length  uint32, big-endian: the number of bytes that follow (1..MaxFrameSize+1058)
//	type    1 byte
//	id      uvarint: the call or stream, chosen by the client, unique per connection
//	fields  by type, then the payload, which runs to the end of the frame:
//
//	1 call          timeout uvarint (ns, 0 = none), route (uvarint length + bytes), request
//	2 reply         reply (for a stream open: the server's window, uvarint)
//	3 error         code byte, message
//	4 stream-open   timeout uvarint, window uvarint, route
//	5 stream-msg    message
//	6 stream-close  code byte (0 = clean), message
//	7 cancel        (nothing)
//	8 window        increment uvarint
//
// Error codes: 1 handler error (*transport.RemoteError), 2 unknown route
// (transport.ErrUnknownRoute), 3 reply too large (transport.ErrTooLarge),
// 4 server overloaded and 5 server shutting down (transport.ErrUnreachable),
// 6 the handler's or stream's context was cancelled (an error wrapping
// context.Canceled), 7 the opener closed its Conn (stream-close only;
// transport.ErrUnreachable), 8 the handler's or stream's deadline passed
// (an error wrapping context.DeadlineExceeded). A handler that returns an
// error after its deadline passed is reported with code 8, so the caller
// sees context.DeadlineExceeded whichever end's timer fired first.
//
// # Limits and bad input
//
// A message (request, reply or stream message) over Options.MaxFrameSize
// bytes fails at its sender with an error wrapping transport.ErrTooLarge;
// the connection stays up. Both ends should use the same MaxFrameSize: a
// receiver that sees a length prefix over MaxFrameSize plus the largest
// header (1,058 bytes) drops the connection without reading or allocating
// the frame. Anything a peer sends that breaks the protocol (bad preamble,
// undecodable frame, unexpected frame type, duplicate id, flow-control
// overrun) closes that connection with a log line on Options.Logger;
// the Server keeps serving its other connections. A connection must
// complete its TLS handshake and preamble within Options.HandshakeTimeout.
//
// # TLS
//
// With Options.TLS set, both ends use TLS: the Server requires and verifies
// a client certificate (tls.RequireAndVerifyClientCert), and the Dialer
// verifies the server's certificate. A peer without a certificate, or with
// one from another CA, is rejected in the handshake, before any frame is
// read. For tests and local clusters, NewTestCA and GenerateCluster make a
// throwaway CA and node certificates; production brings its own PKI
// (LoadTLSConfig reads PEM files).
package tcp
