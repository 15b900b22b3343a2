package paxos

// acceptorState is the acceptor's decision logic: the Paxos acceptor rules
// plus what it knows to be chosen. It does no I/O; the Acceptor driver
// persists what it returns before any reply leaves.
type acceptorState struct {
	// Invariant: promised >= the ballot of every accepted entry.
	promised Ballot

	// forgotten is the truncation point: slots below it are chosen on every
	// peer and released here. Invariant: forgotten <= chosenPrefix.
	forgotten Slot

	// chosenPrefix: every slot in [forgotten, chosenPrefix) is known chosen
	// and, unless it is in holes, accepted here with its chosen value. Such
	// slots are not in entries.
	chosenPrefix Slot
	// holes are the slots below chosenPrefix that the prefix passed over
	// without this acceptor having accepted them (see advancePrefix). A
	// hole may be filled later (a leader re-sends the chosen value); it
	// stays listed, which only makes the observer copy its value.
	holes spanSet

	// entries describes accepted slots at or above chosenPrefix (values live
	// in the log).
	entries map[Slot]acceptedInfo

	// The highest leader commit heard: every slot below commit is chosen,
	// and commitBallot's entries below it carry the chosen values.
	commitBallot Ballot
	commit       Slot
	// markedBelow: entries of commitBallot below it have been marked.
	markedBelow Slot

	// maxSlot is one more than the highest slot ever accepted here.
	maxSlot Slot
}

type acceptedInfo struct {
	ballot Ballot
	noop   bool
	chosen bool
}

func newAcceptorState() *acceptorState {
	return &acceptorState{entries: make(map[Slot]acceptedInfo)}
}

// restore rebuilds state from persisted entries (in any order) and the
// persisted promise. An accepted entry implies a promise at least its ballot
// (the promise and the entries are written separately, so a crash may leave
// the entry without the raised promise).
func (s *acceptorState) restore(promised Ballot, forgotten Slot, e Entry) {
	if promised > s.promised {
		s.promised = promised
	}
	if forgotten > s.forgotten {
		s.forgotten = forgotten
		s.chosenPrefix = max(s.chosenPrefix, forgotten)
	}
	if e.Ballot == 0 {
		return
	}
	if e.Ballot > s.promised {
		s.promised = e.Ballot
	}
	if e.Slot < s.forgotten {
		return
	}
	s.entries[e.Slot] = acceptedInfo{ballot: e.Ballot, noop: e.NoOp}
	s.maxSlot = max(s.maxSlot, e.Slot+1)
}

// prepare applies phase 1a. It reports whether the promise is granted and
// whether it raised the promised ballot (which must then be persisted).
func (s *acceptorState) prepare(b Ballot) (ok, raised bool) {
	switch {
	case b > s.promised:
		s.promised = b
		return true, true
	case b == s.promised && b != 0:
		return true, false // a retransmission from the same proposer
	}
	return false, false
}

// acceptResult is what accept decided.
type acceptResult struct {
	ok     bool
	raised bool    // the promise moved up to the Accept's ballot
	stored []Entry // entries to persist (Ballot set, Chosen if known)
	marked []Entry // previously accepted entries newly known chosen (no Value)
}

// accept applies phase 2a, including the leader's commit information.
func (s *acceptorState) accept(a *Accept) acceptResult {
	var r acceptResult
	if a.Ballot < s.promised || a.Ballot == 0 {
		return r
	}
	r.ok = true
	if a.Ballot > s.promised {
		s.promised = a.Ballot
		r.raised = true
	}
	if a.Ballot > s.commitBallot {
		s.commitBallot, s.commit, s.markedBelow = a.Ballot, a.Commit, 0
	} else if a.Ballot == s.commitBallot && a.Commit > s.commit {
		s.commit = a.Commit
	}
	var chosenSet map[Slot]bool
	if len(a.Chosen) > 0 {
		chosenSet = make(map[Slot]bool, len(a.Chosen))
		for _, c := range a.Chosen {
			chosenSet[c] = true
		}
	}
	for _, e := range a.Entries {
		if e.Slot < s.forgotten {
			continue
		}
		st := Entry{Slot: e.Slot, Ballot: a.Ballot, NoOp: e.NoOp, Value: e.Value}
		s.maxSlot = max(s.maxSlot, e.Slot+1)
		if e.Slot < s.chosenPrefix {
			// Already chosen here; a new leader re-proposes the same value.
			st.Chosen = true
			r.stored = append(r.stored, st)
			continue
		}
		old, had := s.entries[e.Slot]
		info := acceptedInfo{ballot: a.Ballot, noop: e.NoOp}
		info.chosen = (had && old.chosen) || e.Slot < s.commit && a.Ballot == s.commitBallot || chosenSet[e.Slot]
		s.entries[e.Slot] = info
		st.Chosen = info.chosen
		r.stored = append(r.stored, st)
	}
	r.marked = s.markCommitted(chosenSet)
	s.advancePrefix()
	return r
}

// markCommitted marks chosen the entries the current commit vouches for.
func (s *acceptorState) markCommitted(chosenSet map[Slot]bool) []Entry {
	var marked []Entry
	mark := func(slot Slot) {
		info, ok := s.entries[slot]
		if !ok || info.chosen || info.ballot != s.commitBallot {
			return
		}
		info.chosen = true
		s.entries[slot] = info
		marked = append(marked, Entry{Slot: slot, Ballot: info.ballot, NoOp: info.noop, Chosen: true})
	}
	from := max(s.markedBelow, s.chosenPrefix)
	if s.commit > from {
		if int(s.commit-from) <= len(s.entries) {
			for slot := from; slot < s.commit; slot++ {
				mark(slot)
			}
		} else {
			for slot := range s.entries {
				if slot >= from && slot < s.commit {
					mark(slot)
				}
			}
		}
		s.markedBelow = s.commit
	}
	for slot := range chosenSet {
		mark(slot)
	}
	sortEntries(marked)
	return marked
}

// markChosen records that the local leader saw slots chosen in its ballot
// (the leader's own acceptor learns commits without a message).
func (s *acceptorState) markChosen(b Ballot, commit Slot, chosen []Slot) []Entry {
	if b < s.commitBallot || b == 0 {
		return nil
	}
	if b > s.commitBallot {
		s.commitBallot, s.commit, s.markedBelow = b, commit, 0
	} else if commit > s.commit {
		s.commit = commit
	}
	var set map[Slot]bool
	if len(chosen) > 0 {
		set = make(map[Slot]bool, len(chosen))
		for _, c := range chosen {
			set[c] = true
		}
	}
	m := s.markCommitted(set)
	s.advancePrefix()
	return m
}

// advancePrefix moves chosenPrefix over chosen entries, and over slots
// this acceptor never accepted that the leader's commit says are chosen:
// any later Accept there carries the chosen value (it needs a ballot at
// least the committing one), so the prefix stays true, and the map does not
// pin every later slot behind one this acceptor missed.
func (s *acceptorState) advancePrefix() {
	for {
		info, ok := s.entries[s.chosenPrefix]
		switch {
		case ok && info.chosen:
			delete(s.entries, s.chosenPrefix)
		case !ok && s.chosenPrefix < s.commit && s.chosenPrefix < s.maxSlot:
			s.holes.add(s.chosenPrefix, s.chosenPrefix+1)
		default:
			return
		}
		s.chosenPrefix++
	}
}

// isChosen reports whether the entry at slot (accepted here) is known chosen.
func (s *acceptorState) isChosen(slot Slot) bool {
	if slot < s.chosenPrefix {
		return true
	}
	return s.entries[slot].chosen
}

// chosenOnDisk reports whether e, as read from the log, is the chosen
// entry of its slot. durable is the chosen prefix known to be on disk when
// the read began. Above it the state may describe a newer entry whose
// write is still pending while the log holds an older one, so the ballots
// must match.
func (s *acceptorState) chosenOnDisk(e Entry, durable Slot) bool {
	if e.Slot < durable {
		return true
	}
	info, ok := s.entries[e.Slot]
	return ok && info.chosen && info.ballot == e.Ballot
}

// forget moves the truncation point up to min.
func (s *acceptorState) forget(min Slot) bool {
	if min <= s.forgotten {
		return false
	}
	s.forgotten = min
	if s.chosenPrefix < min {
		s.chosenPrefix = min
	}
	if s.markedBelow < min {
		s.markedBelow = min
	}
	s.holes.trimBelow(min)
	for slot := range s.entries {
		if slot < min {
			delete(s.entries, slot)
		}
	}
	s.advancePrefix()
	return true
}

func sortEntries(es []Entry) {
	// insertion sort: the slices are short and nearly sorted
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].Slot < es[j-1].Slot; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}
