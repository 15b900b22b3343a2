package paxos

import "sync/atomic"

// Metrics are counters of what one node's proposer and observer have done
// since New. They only grow.
type Metrics struct {
	Campaigns uint64 // phase 1 rounds started (each a new ballot)
	Elected   uint64 // phase 1 rounds won (leaderships)
	Proposed  uint64 // values given a slot while leading (including re-proposals)
	Batches   uint64 // Accepts carrying entries, counted once per batch
	Chosen    uint64 // slots this node saw chosen while leading
	// Deferred counts Accepts not handed to a follower at once because
	// its send queue was full (the leader is outrunning it). They wait in
	// a bounded backlog for that follower and go out merged, chosen or
	// not, as its queue drains, so its acceptor misses nothing; only past
	// the backlog's bound does the follower learn slots by catching up.
	// (A resend after a failed call that finds the queue full is counted
	// too, and retried later while its batch is not chosen.)
	Deferred uint64
	// Catchups counts the times this node's observer opened streams to
	// the other acceptors because its own acceptor lacked chosen slots (a
	// lost Accept, a partition, a restart, a follower too far behind).
	Catchups uint64
	// PromisePages counts the further pages of promises this node asked
	// for as a candidate: an acceptor's reply to Prepare holds at most
	// MaxBatchBytes of accepted values (or one larger value), and says
	// where to go on from when it holds more.
	PromisePages uint64
}

type metrics struct {
	campaigns, elected, proposed, batches, chosen, deferred, pages atomic.Uint64
}

// Metrics returns a snapshot of the node's counters.
func (p *Paxos) Metrics() Metrics {
	m := &p.proposer.metrics
	return Metrics{
		Campaigns:    m.campaigns.Load(),
		Elected:      m.elected.Load(),
		Proposed:     m.proposed.Load(),
		Batches:      m.batches.Load(),
		Chosen:       m.chosen.Load(),
		Deferred:     m.deferred.Load(),
		Catchups:     p.observer.catchups.Load(),
		PromisePages: m.pages.Load(),
	}
}
