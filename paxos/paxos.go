package paxos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jonboulle/clockwork"
	"golang.org/x/sync/errgroup"
)

// ErrEmptyValue: Propose was given an empty value. Values must be non-empty
// (an empty value would be indistinguishable from a no-op).
var ErrEmptyValue = errors.New("paxos: empty value")

// Paxos is one node: an acceptor, a proposer and an observer, composed.
// Build it with New, run it with Start; every other method is safe for
// concurrent use, before, during and after Start.
type Paxos struct {
	cfg      Config
	acceptor *Acceptor
	observer *Observer
	proposer *Proposer

	done    atomic.Uint64 // done watermark: one more than the highest Done argument
	min     atomic.Uint64 // the cluster's Min as known here
	maxSeen atomic.Uint64 // one more than the highest slot proposed here

	startMu sync.Mutex
	started bool
	// view is the membership, published by Start before any goroutine of
	// the node runs; nil before Start.
	view atomic.Pointer[view]
}

// view is what Start learned of the cluster, read by callers' goroutines.
type view struct {
	members  []Member
	self     int
	pclients []ProposerClient
}

// New builds a node from cfg (after cfg.Validate), restoring its state from
// the logs in cfg.
func New(cfg *Config) (*Paxos, error) {
	if cfg == nil {
		return nil, errors.New("paxos: nil config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	p := &Paxos{cfg: c}
	ctx := context.Background()
	var err error
	var done Slot
	p.acceptor, done, err = newAcceptor(ctx, c.PromiseLog, c.AcceptedLog, c.Logger.With("role", "acceptor"), acceptorHooks{
		done:    p.doneMark,
		contact: func(b Ballot, leader bool) { p.proposer.contact(b, leader) },
		forget:  p.setMin,
		commit:  func(commit Slot) { p.observer.hint(commit, nil) },
		durable: func() { p.observer.kick() },
	})
	if err != nil {
		return nil, err
	}
	p.acceptor.pageBytes = c.MaxBatchBytes
	p.done.Store(uint64(done))
	p.observer, err = newObserver(ctx, c.RecordedLog, c.AcceptedLog, p.acceptor.held, c.Logger.With("role", "observer"), c.Clock, c.CatchupDelay)
	if err != nil {
		return nil, err
	}
	_, min, _ := p.observer.positions()
	p.min.Store(uint64(min))
	p.proposer = newProposer(c, p)
	return p, nil
}

// Start runs the node as a member of members until ctx ends, then stops
// every goroutine it started and returns nil. It returns an error at once
// if members is invalid or does not contain Config.ID, or if the node was
// already started. Start must be called once.
func (p *Paxos) Start(ctx context.Context, members []Member) error {
	self, err := checkMembers(members, p.cfg.ID)
	if err != nil {
		return err
	}
	p.startMu.Lock()
	if p.started {
		p.startMu.Unlock()
		return errors.New("paxos: already started")
	}
	p.started = true
	acceptors := make([]AcceptorClient, len(members))
	observers := make([]ObserverClient, len(members))
	proposers := make([]ProposerClient, len(members))
	for i, m := range members {
		if i == self {
			acceptors[i], observers[i] = p.acceptor, p.acceptor
			continue
		}
		if acceptors[i], err = p.cfg.AcceptorDialer(m); err == nil {
			if observers[i], err = p.cfg.ObserverDialer(m); err == nil {
				proposers[i], err = p.cfg.ProposerDialer(m)
			}
		}
		if err != nil {
			p.startMu.Unlock()
			return fmt.Errorf("paxos: dialing member %d at %q: %w", m.ID, m.Addr, err)
		}
	}
	p.view.Store(&view{members: members, self: self, pclients: proposers})
	p.startMu.Unlock()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { p.acceptor.run(gctx); return nil })
	g.Go(func() error { p.observer.run(gctx, observers, self, p.cfg.Seed); return nil })
	g.Go(func() error { p.proposer.run(gctx, members, self, acceptors, proposers); return nil })
	return g.Wait()
}

func checkMembers(members []Member, id NodeID) (int, error) {
	if len(members) == 0 || len(members) > 64 {
		return 0, fmt.Errorf("paxos: membership must have 1 to 64 members, not %d", len(members))
	}
	self := -1
	seen := make(map[NodeID]bool)
	for i, m := range members {
		if seen[m.ID] {
			return 0, fmt.Errorf("paxos: member id %d appears twice", m.ID)
		}
		seen[m.ID] = true
		if m.ID == id {
			self = i
		}
	}
	if self < 0 {
		return 0, fmt.Errorf("paxos: this node's id %d is not in the membership", id)
	}
	return self, nil
}

// Propose gets value chosen at some slot and returns the slot. It blocks
// until the value is chosen or ctx ends. A non-leader forwards the value to
// the leader. If the leader fails while the value is in flight, Propose
// retries, so the value may be chosen at more than one slot: applications
// that need exactly-once make values unique and deduplicate (kvstore does).
// An error from ctx means the value may or may not have been chosen.
func (p *Paxos) Propose(ctx context.Context, value []byte) (Slot, error) {
	if err := p.checkValue(value); err != nil {
		return 0, err
	}
	v := bytes.Clone(value)
	backoff := p.cfg.HeartbeatInterval / 4
	for {
		if p.proposer.leading.Load() {
			r, err := p.proposer.submit(ctx, &proposal{value: v, wait: true})
			if err != nil {
				return 0, err
			}
			if r.status == ProposeOK {
				p.noteProposed(r.slot)
				return r.slot, nil
			}
		} else if rep, ok := p.forward(ctx, &ProposeRequest{Wait: true, Value: v}); ok && rep.Status == ProposeOK {
			p.noteProposed(rep.Slot)
			return rep.Slot, nil
		}
		select {
		case <-p.cfg.Clock.After(backoff):
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-p.proposer.stopped:
			return 0, ErrStopped
		}
		backoff = min(backoff*2, p.cfg.ElectionTimeout/2)
	}
}

func (p *Paxos) checkValue(value []byte) error {
	if len(value) == 0 {
		return ErrEmptyValue
	}
	if len(value) > p.cfg.MaxValueSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(value), p.cfg.MaxValueSize)
	}
	return nil
}

func (p *Paxos) noteProposed(slot Slot) {
	for {
		cur := p.maxSeen.Load()
		if uint64(slot)+1 <= cur || p.maxSeen.CompareAndSwap(cur, uint64(slot)+1) {
			return
		}
	}
}

// forward sends req to the leader (or to the local proposer when leading)
// and feeds what it learns back to this node. ok is false when no answer
// came back.
func (p *Paxos) forward(ctx context.Context, req *ProposeRequest) (*ProposeReply, bool) {
	if p.proposer.leading.Load() {
		r, err := p.proposer.submit(ctx, &proposal{value: req.Value, explicit: req.HasSlot, slot: req.Slot, wait: req.Wait})
		if err != nil {
			return nil, false
		}
		if r.status == ProposeTaken {
			p.observer.hint(0, &req.Slot)
		}
		return &ProposeReply{Status: r.status, Slot: r.slot}, true
	}
	v := p.view.Load()
	if v == nil {
		return nil, false // not started yet
	}
	li := p.proposer.leaderIndex(v.members)
	if li < 0 || li == v.self {
		p.proposer.kick(ctx)
		return nil, false
	}
	// A waiting forward may sit out a leader change at the other end.
	timeout := p.cfg.RPCTimeout
	if req.Wait {
		timeout += 2 * p.cfg.ElectionTimeout
	}
	cctx, cancel := clockwork.WithTimeout(ctx, p.cfg.Clock, timeout)
	rep, err := v.pclients[li].Propose(cctx, req)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			p.proposer.forwardFailed(ctx)
		}
		return nil, false
	}
	p.proposer.forwardOK(ctx)
	switch rep.Status {
	case ProposeNotLeader:
		if rep.Leader > Ballot(p.proposer.leaderBallot.Load()) {
			p.proposer.leaderBallot.Store(uint64(rep.Leader))
		} else if rep.Leader.Proposer() == v.members[li].ID || rep.Leader == 0 {
			// The node we believed in denies leading; forget it.
			p.proposer.leaderBallot.CompareAndSwap(uint64(rep.Leader), 0)
			p.proposer.kick(ctx)
		}
	case ProposeTaken:
		p.observer.hint(rep.Commit, &req.Slot)
	case ProposeOK:
		if req.Wait {
			p.observer.hint(0, &rep.Slot)
		}
		if rep.ChosenIn != 0 {
			// Our value was chosen at rep.Slot in ballot rep.ChosenIn, and
			// so was everything below rep.Commit: what our acceptor holds
			// in that ballot there is chosen, so our observer need not wait
			// for the leader's next message to deliver it.
			p.acceptor.markChosen(rep.ChosenIn, rep.Commit, []Slot{rep.Slot})
		}
	}
	p.observer.hint(rep.Commit, nil)
	return rep, true
}

// ProposeAt starts agreement on value at slot and returns at once (the
// classic instance API). If another value is chosen at slot, that one
// wins; Status tells. Proposals at a slot below Min are ignored (the slot
// stays Forgotten). It returns an error only for an invalid value.
func (p *Paxos) ProposeAt(slot Slot, value []byte) error {
	if err := p.checkValue(value); err != nil {
		return err
	}
	if slot < p.Min() {
		return nil
	}
	p.noteProposed(slot)
	p.proposer.proposeAt(context.Background(), slot, bytes.Clone(value))
	return nil
}

// Status reports what this node knows of slot and, if Decided, its value
// (nil for a no-op).
func (p *Paxos) Status(slot Slot) (Fate, []byte) {
	if slot < p.Min() {
		return Forgotten, nil
	}
	f, e, err := p.observer.status(context.Background(), slot)
	if err != nil {
		p.cfg.Logger.Error("reading recorded value failed", "slot", slot, "err", err)
		return Pending, nil
	}
	return f, e.Value
}

// Done tells the cluster this node's application no longer needs slots at
// or below slot. Once every peer has said so, they are forgotten everywhere.
// Done does not block: the watermark is persisted with the acceptor's next
// write, so a crash right after Done may bring the node back with an older
// watermark, which only delays Min (it is never unsafe).
func (p *Paxos) Done(slot Slot) {
	d := uint64(slot) + 1
	for {
		cur := p.done.Load()
		if d <= cur {
			return
		}
		if p.done.CompareAndSwap(cur, d) {
			break
		}
	}
	p.acceptor.persistDone(Slot(d))
}

func (p *Paxos) doneMark() Slot { return Slot(p.done.Load()) }

// Max returns the highest slot this node knows of (proposed, accepted or
// chosen), or 0 if none.
func (p *Paxos) Max() Slot {
	_, _, known := p.observer.positions()
	_, accepted := p.acceptor.status()
	m := max(known, accepted, Slot(p.maxSeen.Load()))
	if m == 0 {
		return 0
	}
	return m - 1
}

// Min returns one more than the smallest slot every peer has passed to
// Done (0 until every peer has called Done). Slots below Min are forgotten
// on every peer.
func (p *Paxos) Min() Slot { return Slot(p.min.Load()) }

func (p *Paxos) setMin(m Slot) {
	for {
		cur := p.min.Load()
		if uint64(m) <= cur {
			return
		}
		if p.min.CompareAndSwap(cur, uint64(m)) {
			break
		}
	}
	p.acceptor.forget(m)
	p.observer.forget(context.Background(), m)
}

// Compact releases this node's log entries below slot, whatever its peers
// have done: the application promises it holds a snapshot of its state
// covering every slot below slot (so it never needs them again from this
// node). Slots below it read Forgotten here, Learn below it returns
// ErrForgotten, and peers that fall behind it must get a snapshot from the
// application layer instead of the log. Safety does not depend on the
// peers: this node's acceptor reports its truncation point in every
// promise, so no leader re-proposes below it. Compact never moves back.
func (p *Paxos) Compact(slot Slot) {
	p.acceptor.forget(slot)
	p.observer.forget(context.Background(), slot)
}

// Learn returns chosen values in slot order starting at from: it blocks
// until slot from is chosen and recorded here, then returns it together
// with up to limit-1 consecutive chosen slots after it. It returns an error
// wrapping ErrForgotten if from is below what this node still holds (Min,
// or its own or a peer's compaction point when it fell behind): the
// application must then install a snapshot. Applications loop on it,
// passing one more than the last slot they got. The returned values must
// not be modified (see Chosen).
func (p *Paxos) Learn(ctx context.Context, from Slot, limit int) ([]Chosen, error) {
	return p.observer.learn(ctx, from, limit)
}

// Leader returns the id of the member this node believes leads, if any.
func (p *Paxos) Leader() (NodeID, bool) {
	b := Ballot(p.proposer.leaderBallot.Load())
	return b.Proposer(), b != 0
}

// IsLeader reports whether this node currently leads.
func (p *Paxos) IsLeader() bool { return p.proposer.leading.Load() }

// Acceptor returns this node's acceptor, for serving it to remote peers.
func (p *Paxos) Acceptor() *Acceptor { return p.acceptor }
