package wire

// Slot is a position in the replicated log.
type Slot uint64

// NodeID identifies a member of the cluster. It is the low 16 bits of every
// ballot that member's proposer issues.
type NodeID uint16

// Ballot is a proposal number, round<<16 | proposer. Ballot 0 means "none".
type Ballot uint64

// MakeBallot returns the ballot of round for proposer id.
func MakeBallot(round uint64, id NodeID) Ballot { return Ballot(round<<16 | uint64(id)) }

// Round returns the ballot's round.
func (b Ballot) Round() uint64 { return uint64(b) >> 16 }

// Proposer returns the id of the proposer that issued the ballot.
func (b Ballot) Proposer() NodeID { return NodeID(b & 0xffff) }

// Entry is a value at a slot, as accepted in a ballot.
type Entry struct {
	Slot   Slot
	Ballot Ballot // the ballot in which the entry was accepted
	NoOp   bool   // a hole filler chosen by a new leader; Value is empty
	Chosen bool   // the sender knows this entry is chosen (Observe events only)
	Value  []byte
}

// Prepare is phase 1a: the proposer of Ballot asks for a promise covering
// every slot >= From.
type Prepare struct {
	Ballot Ballot
	From   Slot
}

// Promise is phase 1b. OK is false when the acceptor had already promised a
// higher ballot; Promised then carries it. When OK, Entries holds every entry
// the acceptor accepted at a slot >= the Prepare's From (and >= Forgotten).
type Promise struct {
	OK        bool
	Promised  Ballot
	Forgotten Slot // slots below this are truncated at the acceptor (chosen and forgotten)
	// Next, if not zero, says the reply is one page: the acceptor holds
	// more accepted entries, from slot Next on, and the candidate asks
	// for them with the same ballot and From = Next. Zero: Entries are
	// all the acceptor holds from the requested slot on.
	Next    Slot
	Entries []Entry
}

// Accept is phase 2a, and also the leader's heartbeat (no Entries). Commit
// says every slot below it is chosen; together with Chosen (slots at or
// above Commit known chosen), it vouches only for entries accepted in Ballot.
// Min is the leader's view of the cluster's Min: slots below it may be
// forgotten. Done is the leader's own done watermark (see Accepted.Done).
type Accept struct {
	Ballot  Ballot
	Commit  Slot
	Min     Slot
	Done    Slot
	Chosen  []Slot
	Entries []Entry
}

// Accepted is phase 2b. OK is false when the acceptor promised a higher
// ballot (Promised). Done is the acceptor's node's done watermark: one more
// than the highest slot its application passed to Done (0: none).
type Accepted struct {
	OK       bool
	Promised Ballot
	Done     Slot
}

// ObserveRequest opens an observe stream from slot From on.
type ObserveRequest struct {
	From Slot
}

// ObserveEvent is one message of an observe stream: entries the acceptor
// accepted (Chosen set on those it knows are chosen; a chosen mark for an
// entry already sent may come without Value), plus what the acceptor knows of
// the cluster: Commit (every slot below is chosen) and Forgotten (slots below
// are truncated here).
type ObserveEvent struct {
	Commit    Slot
	Forgotten Slot
	Entries   []Entry
}

// ProposeRequest asks a leader to get Value chosen. With HasSlot, only at
// Slot (the classic explicit-slot API); otherwise at any slot. Wait asks the
// leader to reply only once the value is chosen.
type ProposeRequest struct {
	HasSlot bool
	Wait    bool
	Slot    Slot
	Value   []byte
}

// ProposeStatus says what became of a ProposeRequest.
type ProposeStatus uint8

// ProposeStatus values.
const (
	ProposeOK        ProposeStatus = iota // chosen at Slot (Wait) or queued
	ProposeNotLeader                      // the receiver is not the leader; see Leader
	ProposeTaken                          // the explicit slot already holds another value or was forgotten
)

// ProposeReply answers a ProposeRequest. Commit is the replier's commit
// slot, so the sender learns how far the log has come.
type ProposeReply struct {
	Status ProposeStatus
	Slot   Slot
	Leader Ballot // the ballot of the leader the replier knows (0: none)
	Commit Slot
	// ChosenIn, when not 0, is the ballot of the leadership that chose the
	// value at Slot with every slot below Commit chosen too: what an
	// acceptor accepted in that ballot below Commit is chosen.
	ChosenIn Ballot
}

// Probe asks a peer whether it hears a live leader (pre-vote): a node that
// lost contact with its leader probes before starting an election so that a
// node that merely cannot hear (deaf, partitioned away) does not depose a
// leader the majority still follows.
type Probe struct {
	Ballot Ballot // the ballot the prober would campaign with
}

// ProbeReply answers a Probe. LeaderAlive is true when the replier heard
// from the leader with ballot Leader within its election timeout.
type ProbeReply struct {
	LeaderAlive bool
	Leader      Ballot
	Promised    Ballot
}
