package paxos

import (
	"context"
	"time"
)

// AcceptorClient is what a proposer needs from an acceptor, local or
// remote. Implementations must be safe for concurrent use; a call may be
// cancelled through ctx, after which the acceptor may or may not have acted.
// A rejection (a higher promised ballot) is a normal reply with OK false, not
// an error; an error means no reply was received.
type AcceptorClient interface {
	Prepare(ctx context.Context, req *Prepare) (*Promise, error)
	Accept(ctx context.Context, req *Accept) (*Accepted, error)
}

// HeartbeatClient is an optional interface of an AcceptorClient that sends
// heartbeats (Accepts without entries) apart from Accepts carrying values,
// so that a transport can route or count them separately. Without it,
// heartbeats go through Accept.
type HeartbeatClient interface {
	Heartbeat(ctx context.Context, req *Accept) (*Accepted, error)
}

// AsyncAcceptorClient is an optional interface of an AcceptorClient whose
// Accept can be started without blocking. A leader then sends each new
// batch to that acceptor from its event loop, with no sender goroutine in
// between (two goroutine hand-offs less per batch and peer, and none that
// can wait behind the application's goroutines for a CPU). The clients
// DialTransport returns implement it when the transport's Conn implements
// transport.AsyncConn.
type AsyncAcceptorClient interface {
	// AcceptAsync starts req and returns at once. If it returns an error,
	// nothing was sent and done is never called: the leader sends req
	// through Accept instead. Otherwise done is called exactly once, with
	// what Accept would have returned, from another goroutine or from
	// within cancel (or the transport's Close); it does not block. timeout bounds the acceptor's
	// handling as Accept's ctx deadline would; the caller calls cancel
	// when it stops waiting, after which done reports an error unless it
	// already ran. req must not be modified until done is called.
	AcceptAsync(req *Accept, timeout time.Duration, done func(*Accepted, error)) (cancel func(), err error)
}

// ObserveStream is the receiving end of an acceptor's observe stream.
// Recv is called from one goroutine; Close may be called from any.
type ObserveStream interface {
	// Recv blocks for the next event. Any error ends the stream.
	Recv() (*ObserveEvent, error)
	Close() error
}

// ObserverClient is what an observer needs from an acceptor: a stream of
// what the acceptor accepted and knows chosen, from req.From onward,
// replayed from its log first. The stream ends when ctx ends.
type ObserverClient interface {
	Observe(ctx context.Context, req *ObserveRequest) (ObserveStream, error)
}

// ProposerClient is what a node needs from another node's proposer: to
// forward a proposal to the leader, and to ask whether a leader is alive
// before starting an election (pre-vote).
type ProposerClient interface {
	Propose(ctx context.Context, req *ProposeRequest) (*ProposeReply, error)
	Probe(ctx context.Context, req *Probe) (*ProbeReply, error)
}
