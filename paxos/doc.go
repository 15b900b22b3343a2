// Package paxos is a Multi-Paxos replicated log: a set of nodes agree on
// the value at each slot 0, 1, 2, … and every node learns the chosen values
// in slot order.
//
// # Roles
//
// Each node runs three roles, wired together only through small client
// interfaces so that each can be served over any transport:
//
//   - Acceptor: owns the durable promise and the accepted entries
//     (AcceptorClient: Prepare, Accept). Every state change is persisted
//     before the reply that depends on it leaves; concurrent requests share
//     one log write (group commit). Register serves Accepts as a
//     transport.AsyncUnaryHandler: no goroutine waits per call; the
//     transport's reader writes a memory log itself, and the acceptor's
//     writer answers after a durable log's sync.
//   - Proposer: turns values into chosen slots. Leadership is a successful
//     phase 1 covering every open slot; a leader then runs phase 2 only and
//     batches naturally: while one Accept is in flight, the values that
//     queue behind it go out together in the next (no timer); only full
//     batches enter the bounded window of Accepts in flight early. Non-leaders forward proposals to the leader
//     (ProposerClient). A follower that stops hearing the leader first asks
//     its peers whether they still hear one (pre-vote), so a node that is
//     merely deaf or cut off does not depose a leader the majority follows.
//     Each campaign that fails in a row doubles the node's election and
//     Prepare timeouts (up to 8×), so candidates whose phase 1 outlasts
//     the timeouts back off instead of preempting each other. A promise
//     reports every accepted value from the candidate's first unknown
//     slot on, so it comes in pages of at most MaxBatchBytes of values
//     (Promise.Next; Metrics.PromisePages), as do an acceptor's replays to
//     observers: no message outgrows the transport's limit, however long
//     the accepted tail.
//   - Observer: learns chosen values from its own acceptor (a leader's
//     commit point rides on its next Accept or heartbeat, or on the reply to
//     a forwarded proposal) and, when it knows it is behind, from the other
//     acceptors (ObserverClient); delivers them in order through Learn, and
//     records them in the recorded log in the background. On the leader,
//     the proposer hands what it sees chosen straight to its own observer,
//     so the leader's application gets a value as soon as a quorum has
//     accepted it, without a trip through the acceptor's stream.
//
// The rules of each role live in plain structs with no goroutines, locks,
// clocks or I/O (acceptorState, proposerState, observerState); the exported
// types are thin drivers around them.
//
// # Using it
//
// Build a node with New from a Config (three logs, dialers for the remote
// roles, a clock, a logger, tuning), serve it with Register on a
// transport.Mux, and run it with Start until its context ends:
//
//	cfg := &paxos.Config{ID: 1, PromiseLog: ..., AcceptedLog: ..., RecordedLog: ...}
//	cfg.DialTransport(dialer)
//	node, err := paxos.New(cfg)
//	paxos.Register(mux, node)
//	go node.Start(ctx, members)
//	slot, err := node.Propose(ctx, value)
//	chosen, err := node.Learn(ctx, next, 256)
//	node.Done(lastApplied)
//
// The classic instance API is there too: ProposeAt (non-blocking, at an
// explicit slot), Status, Done, Max and Min. Min is one more than the
// smallest slot every peer has passed to Done; below it every peer has
// released the slots' memory and disk, and they read Forgotten.
//
// Values are opaque, non-empty byte strings, immutable once proposed. If a
// leader fails while a value is in flight, Propose retries, so a value may
// be chosen more than once: make values unique and deduplicate when
// applying (kvstore does).
//
// # Durability
//
// A promise or an accepted entry is on the acceptor's log (fsynced, with
// a durable log) before the reply that depends on it leaves the node, so a
// chosen value is on a majority of disks before any Propose returns it.
// The recorded log is different: it is this node's copy of values already
// chosen, so the observer delivers a value as soon as it knows it chosen,
// and writes it to the recorded log in batches without waiting (with
// log.WriteLazy, so on a FileDB or Badger log it shares the acceptor's next fsync
// instead of paying its own). A crash can lose the unwritten tail; the
// restarted node learns those slots again from the acceptors, which keep
// every chosen value until Min (or a compaction) passes it. This departs
// from the shared design, which records before delivering: that order put
// a second, sequential fsync on every Propose.
//
// Nor does the recorded log hold a second copy of values the node's own
// accepted log already has on disk with their chosen entries (the common
// case: the acceptor voted for them): it holds a references record, a few
// bytes covering a run of such slots, and reads their values from the
// accepted log. (Once a value is chosen at a slot, any later entry an
// acceptor takes there carries the same value, so the reference stays
// true until the slot is truncated, which both logs do only below Min or a
// compaction.) Copies are written only for slots the node's acceptor
// missed. That halves what each node writes per value; the shared design
// describes the recorded log as holding the values themselves.
//
// # Optional interfaces
//
// An AcceptorClient may also implement HeartbeatClient to carry heartbeats
// apart from Accepts, and AsyncAcceptorClient to let the leader's loop
// start Accepts itself, without a sender goroutine in between. The clients
// Config.DialTransport makes implement both, the latter when the
// transport's Conn implements transport.AsyncConn.
package paxos
