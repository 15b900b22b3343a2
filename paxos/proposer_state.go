package paxos

import "math/bits"

type role int

const (
	follower role = iota
	candidate
	leader
)

func (r role) String() string {
	return [...]string{"follower", "candidate", "leader"}[r]
}

// proposerState is the proposer's decision logic: ballots, phase 1 tallies
// and the re-proposal rule, phase 2 tallies and the commit point, and the
// cluster's Min. It does no I/O and reads no clock.
type proposerState struct {
	id     NodeID
	n      int
	quorum int
	self   int // index of this node among the acceptors

	role   role
	round  uint64 // highest round seen anywhere
	ballot Ballot // our ballot while candidate or leader

	// Candidate.
	from     Slot
	promises map[int]*Promise
	// pages holds, per acceptor, what the promise pages it sent before
	// its last (Promise.Next) said; its promise counts once the last
	// arrives, carrying them all.
	pages map[int]*promisePages

	// Leader.
	// Invariant: every slot below commit is chosen; slots[s] exists only
	// for commit <= s < next.
	next        Slot
	commit      Slot
	slots       map[Slot]*slotState
	chosenAbove map[Slot]bool // chosen slots >= commit
	start       Slot          // the first slot this leadership may write

	// Min: dones[i] is acceptor i's node's done watermark, heard[i] whether
	// it has been reported since this node started.
	dones []Slot
	heard []bool
	min   Slot
}

// slotState is one slot the leader is getting chosen.
type slotState struct {
	entry Entry
	votes uint64
	batch *batch
}

func newProposerState(id NodeID, n, self int) *proposerState {
	return &proposerState{
		id: id, n: n, quorum: n/2 + 1, self: self,
		slots:       make(map[Slot]*slotState),
		chosenAbove: make(map[Slot]bool),
		dones:       make([]Slot, n),
		heard:       make([]bool, n),
	}
}

// see notes a ballot seen anywhere so our next one is higher.
func (s *proposerState) see(b Ballot) {
	s.round = max(s.round, b.Round())
}

// campaign starts phase 1 covering every slot >= from.
func (s *proposerState) campaign(from Slot) *Prepare {
	s.role = candidate
	s.round++
	s.ballot = MakeBallot(s.round, s.id)
	s.from = from
	s.promises = make(map[int]*Promise, s.n)
	s.pages = nil
	return &Prepare{Ballot: s.ballot, From: from}
}

// promisePages is what the pages of one acceptor's promise said before
// the last: their entries, the highest truncation point they reported, and
// where the next page starts.
type promisePages struct {
	entries   []Entry
	forgotten Slot
	next      Slot
}

// promise tallies a phase 1b reply. It returns won when a quorum has
// promised, lost when a higher ballot rejected us, and next, if not zero,
// when p is a page of acceptor idx's promise: ask idx again, in the same
// ballot, from slot next.
func (s *proposerState) promise(idx int, b Ballot, p *Promise) (won, lost bool, next Slot) {
	if s.role != candidate || b != s.ballot {
		return false, false, 0
	}
	if !p.OK {
		s.see(p.Promised)
		if p.Promised > s.ballot {
			s.stepDown()
			return false, true, 0
		}
		return false, false, 0
	}
	if _, ok := s.promises[idx]; ok {
		return false, false, 0 // a duplicate of a promise already whole
	}
	if p.Next != 0 {
		// The acceptor's promise holds from the first page on: it accepts
		// nothing below our ballot any more, so the pages read one after
		// another add up to what one read would have returned.
		pp := s.pages[idx]
		from := s.from // where the page asked for started
		if pp != nil {
			from = pp.next
		}
		if p.Next <= from {
			// A page holds at least one entry at or above the slot asked
			// for, so the next one starts further on. This is no page of
			// the promise (a faulty or corrupted peer): asking again from
			// it could go on for ever, the campaign extended at each page.
			// The acceptor's promise is not counted; the campaign wins
			// without it or times out.
			return false, false, 0
		}
		if s.pages == nil {
			s.pages = make(map[int]*promisePages)
		}
		if pp == nil {
			pp = &promisePages{}
			s.pages[idx] = pp
		}
		pp.entries = append(pp.entries, p.Entries...)
		pp.forgotten = max(pp.forgotten, p.Forgotten)
		pp.next = p.Next
		return false, false, p.Next
	}
	if pp := s.pages[idx]; pp != nil {
		// The highest truncation point any page reported: a page read
		// after the acceptor restarted may report a lower one (a Compact
		// is not persisted), and the earlier pages hold nothing below the
		// higher one, so the lower one would have win fill chosen slots
		// with no-ops.
		whole := *p
		whole.Entries = append(pp.entries, p.Entries...)
		whole.Forgotten = max(pp.forgotten, p.Forgotten)
		delete(s.pages, idx)
		p = &whole
	}
	s.promises[idx] = p
	// This node's own promise is required: it is what persists the ballot
	// here, so that after a restart this proposer never reuses it (a reused
	// ballot could carry two values for one slot).
	return len(s.promises) >= s.quorum && s.promises[s.self] != nil, false, 0
}

// win becomes leader. It returns the entries to propose first: for every
// slot a promise reported, the value of the highest ballot; a no-op for
// every hole below the highest reported slot.
func (s *proposerState) win() []Entry {
	start := s.from
	for _, p := range s.promises {
		start = max(start, p.Forgotten)
	}
	best := make(map[Slot]Entry)
	var top Slot
	for _, p := range s.promises {
		for _, e := range p.Entries {
			if e.Slot < start {
				continue
			}
			if cur, ok := best[e.Slot]; !ok || e.Ballot > cur.Ballot {
				best[e.Slot] = e
			}
			top = max(top, e.Slot+1)
		}
	}
	s.role = leader
	s.promises, s.pages = nil, nil
	s.start = start
	s.commit = start
	s.next = max(start, top)
	clear(s.slots)
	clear(s.chosenAbove)
	var out []Entry
	for slot := start; slot < top; slot++ {
		e, ok := best[slot]
		if !ok {
			e = Entry{Slot: slot, NoOp: true}
		}
		e.Ballot, e.Chosen = s.ballot, false
		out = append(out, e)
	}
	return out
}

func (s *proposerState) stepDown() {
	s.role = follower
	s.promises, s.pages = nil, nil
}

// taken reports whether the leader must not propose at slot.
func (s *proposerState) taken(slot Slot) bool {
	return slot < s.commit || s.slots[slot] != nil || s.chosenAbove[slot]
}

// assign gives e a slot (a fresh one unless explicit) and tracks it.
func (s *proposerState) assign(e Entry, explicit bool) Entry {
	if !explicit {
		e.Slot = s.next
	}
	if e.Slot >= s.next {
		s.next = e.Slot + 1
	}
	e.Ballot = s.ballot
	s.slots[e.Slot] = &slotState{entry: e}
	return e
}

// accepted tallies a phase 2b OK from acceptor idx for slots of ballot b.
// It returns the slots that became chosen.
func (s *proposerState) accepted(idx int, b Ballot, slots []Slot) []Slot {
	if s.role != leader || b != s.ballot {
		return nil
	}
	var chosen []Slot
	for _, slot := range slots {
		st := s.slots[slot]
		if st == nil {
			continue
		}
		st.votes |= 1 << idx
		if bits.OnesCount64(st.votes) >= s.quorum {
			delete(s.slots, slot)
			s.chosenAbove[slot] = true
			chosen = append(chosen, slot)
		}
	}
	for s.chosenAbove[s.commit] {
		delete(s.chosenAbove, s.commit)
		s.commit++
	}
	return chosen
}

// rejected handles a phase 2b rejection. It reports whether we lost the
// leadership.
func (s *proposerState) rejected(b Ballot, promised Ballot) bool {
	s.see(promised)
	if s.role == leader && b == s.ballot && promised > s.ballot {
		s.stepDown()
		return true
	}
	return false
}

// holes returns up to limit slots in [commit, next) that no value of this
// leadership occupies and that known() does not report as recorded.
func (s *proposerState) holes(limit int, known func(Slot) bool) []Slot {
	var out []Slot
	for slot := s.commit; slot < s.next && len(out) < limit; slot++ {
		if s.slots[slot] == nil && !s.chosenAbove[slot] && !known(slot) {
			out = append(out, slot)
		}
	}
	return out
}

// chosenList returns the chosen slots at or above commit (bounded).
func (s *proposerState) chosenList(limit int) []Slot {
	if len(s.chosenAbove) == 0 {
		return nil
	}
	out := make([]Slot, 0, min(len(s.chosenAbove), limit))
	for slot := range s.chosenAbove {
		if len(out) == limit {
			break
		}
		out = append(out, slot)
	}
	return out
}

// done notes acceptor idx's node's done watermark and recomputes Min. It
// returns the new Min if it moved.
func (s *proposerState) done(idx int, d Slot) (Slot, bool) {
	if idx < 0 || idx >= s.n {
		return 0, false
	}
	s.dones[idx] = max(s.dones[idx], d)
	s.heard[idx] = true
	m := s.dones[0]
	for i := range s.n {
		if !s.heard[i] {
			return 0, false
		}
		m = min(m, s.dones[i])
	}
	if m > s.min {
		s.min = m
		return m, true
	}
	return 0, false
}
