package paxos

import (
	"errors"

	"github.com/synod-go/synod/internal/wire"
)

// The protocol's vocabulary. These are aliases of the wire types so that a
// transport written outside this module can encode them with their
// AppendBinary/UnmarshalBinary methods.
type (
	// Slot is a position in the replicated log.
	Slot = wire.Slot
	// Ballot is a proposal number: round<<16 | proposer id.
	Ballot = wire.Ballot
	// NodeID identifies a member; it is the low 16 bits of its ballots.
	NodeID = wire.NodeID
	// Entry is a value at a slot as accepted in a ballot.
	Entry = wire.Entry
	// Prepare is the phase 1a message.
	Prepare = wire.Prepare
	// Promise is the phase 1b reply.
	Promise = wire.Promise
	// Accept is the phase 2a message and the leader's heartbeat.
	Accept = wire.Accept
	// Accepted is the phase 2b reply.
	Accepted = wire.Accepted
	// ObserveRequest opens an observe stream.
	ObserveRequest = wire.ObserveRequest
	// ObserveEvent is one message on an observe stream.
	ObserveEvent = wire.ObserveEvent
	// ProposeRequest is a proposal forwarded to the leader.
	ProposeRequest = wire.ProposeRequest
	// ProposeReply answers a ProposeRequest.
	ProposeReply = wire.ProposeReply
	// Probe is the pre-vote question "do you hear a leader?".
	Probe = wire.Probe
	// ProbeReply answers a Probe.
	ProbeReply = wire.ProbeReply
	// ProposeStatus says what became of a forwarded proposal.
	ProposeStatus = wire.ProposeStatus
)

// The outcomes of a forwarded proposal.
const (
	ProposeOK        = wire.ProposeOK
	ProposeNotLeader = wire.ProposeNotLeader
	ProposeTaken     = wire.ProposeTaken
)

// MakeBallot returns the ballot of round for proposer id.
func MakeBallot(round uint64, id NodeID) Ballot { return wire.MakeBallot(round, id) }

// Member is one node of the cluster: its id (unique, the low 16 bits of its
// ballots) and the address its transport serves on.
type Member struct {
	ID   NodeID
	Addr string
}

// Fate is what a node knows of a slot.
type Fate int

// The fates of a slot.
const (
	// Pending: not known to be chosen here (yet).
	Pending Fate = iota
	// Decided: chosen, and this node has recorded the value.
	Decided
	// Forgotten: below Min; every peer is done with it and its value has
	// been released.
	Forgotten
)

func (f Fate) String() string {
	switch f {
	case Pending:
		return "Pending"
	case Decided:
		return "Decided"
	case Forgotten:
		return "Forgotten"
	}
	return "Fate(?)"
}

// Chosen is a value chosen at a slot, as delivered by (*Paxos).Learn.
// A NoOp entry is a hole filler chosen by a new leader; it carries no value
// and the application skips it. Value is the node's own copy, shared with
// its cache and every other Learn caller: read it or copy it, never
// modify it.
type Chosen struct {
	Slot  Slot
	NoOp  bool
	Value []byte
}

// Errors returned by this package. They are wrapped with %w; test with
// errors.Is.
var (
	// ErrForgotten: the slot is below Min; its value is gone on every peer.
	// The caller must get the state from a snapshot instead (kvstore does).
	ErrForgotten = errors.New("paxos: slot forgotten")

	// ErrNotLeader: this node is not the leader and could not reach one.
	// Retry later or on another node.
	ErrNotLeader = errors.New("paxos: not leader")

	// ErrStopped: the node is not running (Start has not been called, or its
	// context ended). Retry on another node.
	ErrStopped = errors.New("paxos: stopped")

	// ErrTooLarge: the value exceeds Config.MaxValueSize. Do not retry.
	ErrTooLarge = errors.New("paxos: value too large")

	// ErrNotDurable: the acceptor's logs do not survive a restart and
	// Config.Volatile was not set. Use durable logs (log.OpenFile, log.OpenBadger).
	ErrNotDurable = errors.New("paxos: acceptor log is not durable")
)
