// Package mem is an in-process network for tests: nodes named by address
// strings call each other and open streams through transport.Conn, with
// faults injected on demand. The library's own tests run on it, and so can
// users' tests of code built on Synod.
//
// # Use
//
//	net := mem.NewNetwork(mem.Options{Seed: seed})
//	defer net.Close()
//	mux := transport.NewMux()
//	mux.Handle("echo", func(ctx context.Context, req []byte) ([]byte, error) { return req, nil })
//	net.Listen("n1", mux)
//	conn, _ := net.Dialer("client").Dial(ctx, "n1")
//	reply, err := conn.Call(ctx, "echo", []byte("hi"))
//
// A node is an address. It serves a transport.Mux once Listen registers one,
// and it sends through the Conns of Dialer(addr); a node may do both, or only
// send (a client). Every handler runs on its own goroutine, never under the
// network's lock, and payloads are copied on the way: no slice is shared
// between nodes.
//
// # Failures
//
// Calls never wait for their context to find out that a message was lost:
// a lost request or reply fails the call with transport.ErrUnreachable as
// soon as the loss happens (after the message's delay, if any). What the
// caller sees:
//
//   - unknown address, nothing listening, node killed, deaf or partitioned
//     away: transport.ErrUnreachable, and the handler does not run;
//   - request dropped: transport.ErrUnreachable, the handler does not run;
//   - reply dropped: the handler ran, then transport.ErrUnreachable;
//   - no handler for the route: transport.ErrUnknownRoute;
//   - request or reply over Options.MaxMessageSize: transport.ErrTooLarge;
//   - the handler returned an error: *transport.RemoteError;
//   - the caller's context ended: an error wrapping ctx.Err(); the handler's
//     context (which carries the caller's deadline) is cancelled too;
//   - Conn or Network closed: transport.ErrClosed.
//
// Streams are reliable and ordered while the path is up. Anything that would
// lose a stream message — a drop decision, a partition, Kill of either end,
// deafness of the server — breaks the whole stream instead: both ends' ReadMsg
// and WriteMsg return an error wrapping transport.ErrUnreachable, and
// messages not yet read are discarded. Partition, Kill and Deafen break the
// affected streams at once, without waiting for the next message.
// WriteMsg never blocks; messages queue at the reader without bound.
//
// # Fault controls
//
// All are safe to call at any time, concurrently with traffic, and take
// effect for the next message:
//
//   - SetDefaultReliability, SetReliability: drop probabilities for requests
//     and replies, network-wide or per node. A message between two nodes
//     gets the larger of their probabilities.
//   - SetDefaultDelay, SetDelay: each message waits a delay drawn uniformly
//     from a range, on Options.Clock. Concurrent calls may overtake each
//     other; a stream's messages stay in order.
//   - Partition, Heal: groups of nodes that can only talk within the group.
//   - Deafen: nothing reaches the node, but what it sends goes out and the
//     answers to it come back.
//   - Kill, Restart: crash and restart a node's process.
//
// One random source, seeded by Options.Seed, makes every drop and delay
// decision.
//
// # Counters
//
// Sent, Delivered and DeliveredRoute count messages, for assertions such as
// "the leader sent no more than one Accept per batch". One message is:
//
//   - a request (one per Call) or a stream open (one per NewStream);
//   - a reply (one per handler that returned, whether a reply or an error);
//   - a stream message (one per successful WriteMsg).
//
// Sent counts a message when its sender puts it on the network, whether or
// not it is then delivered: a request to an unknown, dead, deaf or
// partitioned node, or one dropped, still counts as sent. Messages refused
// before they leave are not sent: a call or write by a killed node or on a
// closed Conn or Stream, one over the size limit, and the reply of a handler
// whose call already ended (its caller gave up, or a node was killed).
//
// Delivered counts a message when the receiving node's code gets it: a
// request when its handler is started, a stream open when the stream
// handler is started, a reply when Call returns it to the caller (as a reply
// or a *transport.RemoteError), and a stream message when ReadMsg returns
// it. A message dropped, lost with a broken stream, refused with
// transport.ErrUnknownRoute, or never read is not delivered. The end of a
// stream (io.EOF) is not a message.
//
// On a reliable network, n successful calls from a to b give
// Sent(a) = Delivered(b) = Sent(b) = Delivered(a) = n, and
// DeliveredRoute(route) = 2n.
package mem
