package paxos

import "math/bits"

// observerState is the learner's logic: it counts acceptors' votes per
// slot and ballot and decides when a slot is chosen. It does no I/O.
type observerState struct {
	quorum int

	// watermark: every slot below it is recorded or forgotten.
	// Invariant: min <= watermark.
	watermark Slot
	// min: slots below are forgotten cluster-wide.
	min Slot
	// recorded holds slots at or above watermark already recorded (chosen
	// out of order).
	recorded map[Slot]bool
	// deciding holds slots decided but not yet written to the recorded log.
	deciding map[Slot]bool
	pending  map[Slot]*slotVotes

	// What is known to be chosen without having the value yet: every slot
	// below commitHint, and the slots in wanted.
	commitHint Slot
	wanted     map[Slot]bool

	// maxKnown is one more than the highest slot heard of.
	maxKnown Slot
}

// slotVotes counts the acceptors' entries at one slot. Nearly always
// there is one ballot, kept inline; others go to a map.
type slotVotes struct {
	ballot       Ballot                  // the first ballot heard of
	votes        ballotVotes             // ballot's
	others       map[Ballot]*ballotVotes // other ballots; nil until one comes
	chosenBallot Ballot                  // an acceptor marked this ballot's entry chosen
}

// get returns b's votes, adding an empty count if add is set, or nil.
func (sv *slotVotes) get(b Ballot, add bool) *ballotVotes {
	if b == sv.ballot {
		return &sv.votes
	}
	if bv := sv.others[b]; bv != nil || !add {
		return bv
	}
	if sv.others == nil {
		sv.others = make(map[Ballot]*ballotVotes, 1)
	}
	bv := &ballotVotes{}
	sv.others[b] = bv
	return bv
}

type ballotVotes struct {
	voters   uint64 // bit i: acceptor i accepted this (slot, ballot)
	hasValue bool
	noop     bool
	value    []byte
}

func newObserverState(n int) *observerState {
	return &observerState{
		quorum:   n/2 + 1,
		recorded: make(map[Slot]bool),
		deciding: make(map[Slot]bool),
		pending:  make(map[Slot]*slotVotes),
		wanted:   make(map[Slot]bool),
	}
}

// known reports whether slot is recorded, being recorded, or forgotten.
func (s *observerState) known(slot Slot) bool {
	return slot < s.watermark || s.recorded[slot] || s.deciding[slot]
}

// observe takes one event from acceptor idx and returns the entries it
// decides, in slot order. The caller records them, then calls record.
func (s *observerState) observe(idx int, ev *ObserveEvent) []Entry {
	if ev.Commit > s.commitHint {
		s.commitHint = ev.Commit
		s.maxKnown = max(s.maxKnown, ev.Commit)
	}
	var decided []Entry // most events decide nothing new (on the leader, all)
	add := func(i int, e Entry) {
		if decided == nil {
			// Room for the rest of the event at once, rather than
			// growing one entry at a time.
			decided = make([]Entry, 0, len(ev.Entries)-i)
		}
		decided = append(decided, e)
	}
	for i, e := range ev.Entries {
		s.maxKnown = max(s.maxKnown, e.Slot+1)
		if e.Slot < s.min || s.known(e.Slot) {
			continue
		}
		sv := s.pending[e.Slot]
		if sv == nil && e.Chosen && (e.NoOp || len(e.Value) > 0) {
			// The common case, a slot marked chosen with its value: no
			// votes to count.
			s.deciding[e.Slot] = true
			add(i, Entry{Slot: e.Slot, NoOp: e.NoOp, Value: e.Value})
			continue
		}
		if sv == nil {
			sv = &slotVotes{ballot: e.Ballot}
			s.pending[e.Slot] = sv
		}
		bv := sv.get(e.Ballot, true)
		if !bv.hasValue && (e.NoOp || len(e.Value) > 0) {
			bv.hasValue, bv.noop, bv.value = true, e.NoOp, e.Value
		}
		if idx >= 0 && idx < 64 {
			bv.voters |= 1 << idx
		}
		if e.Chosen {
			sv.chosenBallot = e.Ballot
		}
		var win *ballotVotes
		var cb *ballotVotes
		if sv.chosenBallot != 0 {
			cb = sv.get(sv.chosenBallot, false)
		}
		if cb != nil && cb.hasValue {
			win = cb
		} else if bv.hasValue && bits.OnesCount64(bv.voters) >= s.quorum {
			win = bv
		}
		if win != nil {
			s.deciding[e.Slot] = true
			delete(s.pending, e.Slot)
			add(i, Entry{Slot: e.Slot, NoOp: win.noop, Value: win.value})
		}
	}
	sortEntries(decided)
	return decided
}

// record marks slots as written to the recorded log and advances the
// watermark. It reports whether the watermark moved.
func (s *observerState) record(slots []Slot) bool {
	old := s.watermark
	for _, slot := range slots {
		delete(s.deciding, slot)
		if len(s.wanted) > 0 {
			delete(s.wanted, slot)
		}
		switch {
		case slot == s.watermark:
			s.watermark++ // in order: no need for the map
		case slot > s.watermark:
			s.recorded[slot] = true
		}
	}
	for s.recorded[s.watermark] {
		delete(s.recorded, s.watermark)
		s.watermark++
	}
	return s.watermark != old
}

// hint notes that slot is chosen somewhere (wantSlot) and that every slot
// below commit is chosen.
func (s *observerState) hint(commit Slot, wantSlot *Slot) {
	if commit > s.commitHint {
		s.commitHint = commit
		s.maxKnown = max(s.maxKnown, commit)
	}
	if wantSlot != nil && !s.known(*wantSlot) && *wantSlot >= s.min {
		s.wanted[*wantSlot] = true
		s.maxKnown = max(s.maxKnown, *wantSlot+1)
	}
}

// lagging reports whether a slot known to be chosen is not recorded here.
func (s *observerState) lagging() bool {
	if s.commitHint > s.watermark {
		for slot := s.watermark; slot < s.commitHint; slot++ {
			if !s.known(slot) {
				return true
			}
		}
	}
	for slot := range s.wanted {
		if !s.known(slot) {
			return true
		}
		delete(s.wanted, slot)
	}
	return false
}

// forget moves min up; slots below it are dropped.
func (s *observerState) forget(min Slot) bool {
	if min <= s.min {
		return false
	}
	s.min = min
	for slot := range s.pending {
		if slot < min {
			delete(s.pending, slot)
		}
	}
	for slot := range s.wanted {
		if slot < min {
			delete(s.wanted, slot)
		}
	}
	for slot := range s.recorded {
		if slot < min {
			delete(s.recorded, slot)
		}
	}
	if s.watermark < min {
		s.watermark = min
		for s.recorded[s.watermark] {
			delete(s.recorded, s.watermark)
			s.watermark++
		}
	}
	return true
}
