package paxos

import (
	"slices"
	"testing"
)

func b(round uint64, id NodeID) Ballot { return MakeBallot(round, id) }

func TestAcceptorPrepareRules(t *testing.T) {
	tests := []struct {
		name       string
		promised   Ballot
		ballot     Ballot
		ok, raised bool
	}{
		{"higher ballot is promised", b(1, 1), b(2, 1), true, true},
		{"lower ballot is refused", b(2, 1), b(1, 2), false, false},
		{"same ballot is a retransmission", b(2, 1), b(2, 1), true, false},
		{"same round, higher id wins", b(2, 1), b(2, 2), true, true},
		{"ballot zero is never promised", 0, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newAcceptorState()
			s.promised = tt.promised
			ok, raised := s.prepare(tt.ballot)
			if ok != tt.ok || raised != tt.raised {
				t.Fatalf("prepare = (%v, %v), want (%v, %v)", ok, raised, tt.ok, tt.raised)
			}
			if want := max(tt.promised, tt.ballot); tt.ok && s.promised != want {
				t.Fatalf("promised = %v, want %v", s.promised, want)
			}
		})
	}
}

func TestAcceptorAcceptRules(t *testing.T) {
	s := newAcceptorState()
	s.prepare(b(2, 1))
	if r := s.accept(&Accept{Ballot: b(1, 1), Entries: []Entry{{Slot: 0, Value: []byte("old")}}}); r.ok {
		t.Fatal("accepted a ballot below the promise")
	}
	r := s.accept(&Accept{Ballot: b(3, 2), Entries: []Entry{{Slot: 0, Value: []byte("a")}, {Slot: 1, Value: []byte("b")}}})
	if !r.ok || !r.raised || s.promised != b(3, 2) || len(r.stored) != 2 {
		t.Fatalf("accept at a higher ballot: ok=%v raised=%v promised=%v stored=%d", r.ok, r.raised, s.promised, len(r.stored))
	}
	if r.stored[0].Ballot != b(3, 2) || r.stored[0].Chosen {
		t.Fatalf("stored %+v", r.stored[0])
	}
	// A commit from the same ballot marks its entries chosen.
	r = s.accept(&Accept{Ballot: b(3, 2), Commit: 1})
	if len(r.marked) != 1 || r.marked[0].Slot != 0 || !s.isChosen(0) || s.isChosen(1) {
		t.Fatalf("commit 1: marked %+v", r.marked)
	}
	if s.chosenPrefix != 1 {
		t.Fatalf("chosenPrefix = %d, want 1", s.chosenPrefix)
	}
	// A later leader's commit does not vouch for entries of older ballots.
	r = s.accept(&Accept{Ballot: b(4, 3), Commit: 2})
	if len(r.marked) != 0 || s.isChosen(1) {
		t.Fatalf("a commit of ballot %v marked an entry of ballot %v: %+v", b(4, 3), b(3, 2), r.marked)
	}
	// ... until that leader re-sends the entry in its own ballot.
	r = s.accept(&Accept{Ballot: b(4, 3), Commit: 2, Entries: []Entry{{Slot: 1, Value: []byte("b")}}})
	if !r.stored[0].Chosen || !s.isChosen(1) {
		t.Fatal("entry below the commit of its own ballot not chosen")
	}
	// Explicitly chosen slots above the commit point.
	s.accept(&Accept{Ballot: b(4, 3), Commit: 2, Entries: []Entry{{Slot: 9, Value: []byte("z")}}})
	r = s.accept(&Accept{Ballot: b(4, 3), Commit: 2, Chosen: []Slot{9}})
	if len(r.marked) != 1 || !s.isChosen(9) {
		t.Fatalf("Chosen list: marked %+v", r.marked)
	}
	// Forgetting drops state and refuses entries below.
	s.forget(5)
	r = s.accept(&Accept{Ballot: b(4, 3), Entries: []Entry{{Slot: 3, Value: []byte("late")}}})
	if !r.ok || len(r.stored) != 0 {
		t.Fatalf("entry below the truncation point stored: %+v", r.stored)
	}
}

func TestAcceptorRestoreRaisesPromise(t *testing.T) {
	s := newAcceptorState()
	// A crash may persist an entry of ballot 5 but not the raised promise.
	s.restore(b(3, 1), 0, Entry{})
	s.restore(0, 0, Entry{Slot: 4, Ballot: b(5, 2), Value: []byte("x")})
	if s.promised != b(5, 2) {
		t.Fatalf("promised = %v, want %v", s.promised, b(5, 2))
	}
	if ok, _ := s.prepare(b(4, 1)); ok {
		t.Fatal("promised a ballot below an accepted entry's")
	}
}

func TestProposerWinRule(t *testing.T) {
	s := newProposerState(1, 3, 0)
	prep := s.campaign(2)
	if prep.From != 2 || prep.Ballot.Proposer() != 1 {
		t.Fatalf("prepare %+v", prep)
	}
	ballot := prep.Ballot
	won, _, _ := s.promise(0, ballot, &Promise{OK: true, Promised: ballot, Entries: []Entry{
		{Slot: 2, Ballot: b(1, 2), Value: []byte("low")},
		{Slot: 5, Ballot: b(1, 2), Value: []byte("five")},
	}})
	if won {
		t.Fatal("won with one promise of three")
	}
	won, lost, _ := s.promise(1, ballot, &Promise{OK: true, Promised: ballot, Entries: []Entry{
		{Slot: 2, Ballot: b(1, 3), Value: []byte("high")},
	}})
	if !won || lost {
		t.Fatal("did not win with two of three")
	}
	got := s.win()
	want := []Entry{
		{Slot: 2, Ballot: ballot, Value: []byte("high")}, // highest ballot's value
		{Slot: 3, Ballot: ballot, NoOp: true},            // holes get no-ops
		{Slot: 4, Ballot: ballot, NoOp: true},
		{Slot: 5, Ballot: ballot, Value: []byte("five")},
	}
	if !slices.EqualFunc(got, want, func(a, b Entry) bool {
		return a.Slot == b.Slot && a.Ballot == b.Ballot && a.NoOp == b.NoOp && string(a.Value) == string(b.Value)
	}) {
		t.Fatalf("win re-proposes %+v\nwant %+v", got, want)
	}
	if s.next != 6 || s.commit != 2 {
		t.Fatalf("next=%d commit=%d, want 6 and 2", s.next, s.commit)
	}
}

func TestProposerWinSkipsForgottenSlots(t *testing.T) {
	s := newProposerState(1, 3, 0)
	ballot := s.campaign(0).Ballot
	s.promise(0, ballot, &Promise{OK: true, Promised: ballot, Forgotten: 4})
	s.promise(1, ballot, &Promise{OK: true, Promised: ballot, Entries: []Entry{{Slot: 2, Ballot: b(1, 2), Value: []byte("x")}}})
	if got := s.win(); len(got) != 0 {
		t.Fatalf("re-proposed below a peer's truncation point: %+v", got)
	}
	if s.next != 4 || s.commit != 4 {
		t.Fatalf("next=%d commit=%d, want 4 and 4", s.next, s.commit)
	}
}

func TestProposerLosesToHigherBallot(t *testing.T) {
	s := newProposerState(1, 3, 0)
	ballot := s.campaign(0).Ballot
	_, lost, _ := s.promise(1, ballot, &Promise{Promised: b(9, 2)})
	if !lost || s.role != follower {
		t.Fatal("a higher promise did not end the candidacy")
	}
	if next := s.campaign(0).Ballot; next <= b(9, 2) {
		t.Fatalf("next ballot %v is not above the one seen, %v", next, b(9, 2))
	}
}

func TestProposerCommitAndMin(t *testing.T) {
	s := newProposerState(1, 3, 0)
	ballot := s.campaign(0).Ballot
	s.promise(0, ballot, &Promise{OK: true, Promised: ballot})
	s.promise(1, ballot, &Promise{OK: true, Promised: ballot})
	s.win()
	e0 := s.assign(Entry{Value: []byte("a")}, false)
	e1 := s.assign(Entry{Value: []byte("b")}, false)
	if e0.Slot != 0 || e1.Slot != 1 {
		t.Fatalf("slots %d %d", e0.Slot, e1.Slot)
	}
	if c := s.accepted(0, ballot, []Slot{1}); len(c) != 0 {
		t.Fatal("chosen with one vote")
	}
	if c := s.accepted(2, ballot, []Slot{1}); !slices.Equal(c, []Slot{1}) || s.commit != 0 {
		t.Fatalf("chosen %v commit %d", c, s.commit)
	}
	if got := s.chosenList(10); !slices.Equal(got, []Slot{1}) {
		t.Fatalf("chosen above commit = %v", got)
	}
	s.accepted(0, ballot, []Slot{0})
	s.accepted(1, ballot, []Slot{0})
	if s.commit != 2 || len(s.chosenList(10)) != 0 {
		t.Fatalf("commit = %d", s.commit)
	}
	// Min needs every peer's done watermark.
	if _, moved := s.done(0, 5); moved {
		t.Fatal("Min moved with one peer heard")
	}
	s.done(1, 3)
	if m, moved := s.done(2, 7); !moved || m != 3 {
		t.Fatalf("Min = %d (moved %v), want 3", m, moved)
	}
}

func TestObserverRules(t *testing.T) {
	s := newObserverState(3)
	// One vote is not enough; two of the same ballot are.
	if d := s.observe(0, &ObserveEvent{Entries: []Entry{{Slot: 0, Ballot: b(1, 1), Value: []byte("a")}}}); len(d) != 0 {
		t.Fatal("decided with one vote")
	}
	// Votes for the same slot in different ballots do not add up.
	if d := s.observe(1, &ObserveEvent{Entries: []Entry{{Slot: 0, Ballot: b(2, 2), Value: []byte("a")}}}); len(d) != 0 {
		t.Fatal("decided on votes of different ballots")
	}
	d := s.observe(2, &ObserveEvent{Entries: []Entry{{Slot: 0, Ballot: b(2, 2), Value: []byte("a")}}})
	if len(d) != 1 || string(d[0].Value) != "a" {
		t.Fatalf("decided %+v", d)
	}
	s.record([]Slot{0})
	if s.watermark != 1 {
		t.Fatalf("watermark %d", s.watermark)
	}
	// A chosen mark without a value waits for the value.
	if d := s.observe(0, &ObserveEvent{Entries: []Entry{{Slot: 2, Ballot: b(2, 2), Chosen: true}}}); len(d) != 0 {
		t.Fatal("decided without a value")
	}
	d = s.observe(1, &ObserveEvent{Entries: []Entry{{Slot: 2, Ballot: b(2, 2), Value: []byte("c")}}})
	if len(d) != 1 || d[0].Slot != 2 {
		t.Fatalf("decided %+v", d)
	}
	s.record([]Slot{2})
	if s.watermark != 1 || !s.known(2) {
		t.Fatal("out-of-order slot not kept above the watermark")
	}
	// A commit hint makes the observer know it lags.
	s.hint(3, nil)
	if !s.lagging() {
		t.Fatal("not lagging with slot 1 chosen elsewhere")
	}
	d = s.observe(0, &ObserveEvent{Entries: []Entry{{Slot: 1, Ballot: b(2, 2), Chosen: true, NoOp: true}}})
	s.record([]Slot{d[0].Slot})
	if s.watermark != 3 || s.lagging() {
		t.Fatalf("watermark %d lagging %v", s.watermark, s.lagging())
	}
}

// A quorum of promises without this node's own does not win: the own
// promise is what persists the ballot here, so a restart never reuses it.
func TestProposerNeedsOwnPromise(t *testing.T) {
	s := newProposerState(1, 3, 0)
	ballot := s.campaign(0).Ballot
	if won, _, _ := s.promise(1, ballot, &Promise{OK: true, Promised: ballot}); won {
		t.Fatal("won with one promise")
	}
	if won, _, _ := s.promise(2, ballot, &Promise{OK: true, Promised: ballot}); won {
		t.Fatal("won without this node's own promise")
	}
	if won, _, _ := s.promise(0, ballot, &Promise{OK: true, Promised: ballot}); !won {
		t.Fatal("did not win with all three")
	}
}

func TestProposerHoles(t *testing.T) {
	s := newProposerState(1, 3, 0)
	ballot := s.campaign(0).Ballot
	s.promise(0, ballot, &Promise{OK: true, Promised: ballot})
	s.promise(1, ballot, &Promise{OK: true, Promised: ballot})
	s.win()
	s.assign(Entry{Slot: 4, Value: []byte("x")}, true)
	got := s.holes(10, func(slot Slot) bool { return slot == 1 })
	if !slices.Equal(got, []Slot{0, 2, 3}) {
		t.Fatalf("holes = %v, want [0 2 3]", got)
	}
}

// A promise that comes in pages counts only once its last page arrives,
// and carries the entries of every page into the win.
func TestProposerPagedPromise(t *testing.T) {
	s := newProposerState(1, 3, 0)
	ballot := s.campaign(2).Ballot
	if won, _, next := s.promise(1, ballot, &Promise{OK: true, Promised: ballot, Entries: []Entry{
		{Slot: 3, Ballot: b(1, 2), Value: []byte("three")},
	}}); won || next != 0 {
		t.Fatalf("a whole promise: won=%v next=%d", won, next)
	}
	won, _, next := s.promise(0, ballot, &Promise{OK: true, Promised: ballot, Next: 5, Entries: []Entry{
		{Slot: 2, Ballot: b(1, 2), Value: []byte("two")},
	}})
	if won || next != 5 {
		t.Fatalf("first page: won=%v next=%d, want false and 5", won, next)
	}
	won, _, next = s.promise(0, ballot, &Promise{OK: true, Promised: ballot, Entries: []Entry{
		{Slot: 5, Ballot: b(1, 2), Value: []byte("five")},
	}})
	if !won || next != 0 {
		t.Fatalf("last page: won=%v next=%d, want true and 0", won, next)
	}
	got := s.win()
	var values []string
	for _, e := range got {
		if e.NoOp {
			values = append(values, "-")
		} else {
			values = append(values, string(e.Value))
		}
	}
	if want := []string{"two", "three", "-", "five"}; !slices.Equal(values, want) {
		t.Fatalf("win re-proposes %q, want %q (slots 2 to 5)", values, want)
	}
}

// A page whose Next does not pass the slot it was asked from is ignored,
// not asked after: a faulty peer repeating it would otherwise keep the
// campaign paging for ever (each page extends it).
func TestProposerIgnoresPageWithoutProgress(t *testing.T) {
	s := newProposerState(1, 3, 0)
	ballot := s.campaign(5).Ballot
	if _, _, next := s.promise(1, ballot, &Promise{OK: true, Promised: ballot, Next: 5}); next != 0 {
		t.Fatalf("a first page with Next at the campaign's From (5): asked again from %d", next)
	}
	if _, _, next := s.promise(1, ballot, &Promise{OK: true, Promised: ballot, Next: 3}); next != 0 {
		t.Fatalf("a first page with Next below the campaign's From (5): asked again from %d", next)
	}
	if _, _, next := s.promise(1, ballot, &Promise{OK: true, Promised: ballot, Next: 8, Entries: []Entry{
		{Slot: 5, Ballot: b(1, 2), Value: []byte("five")},
	}}); next != 8 {
		t.Fatalf("a real first page: next %d, want 8", next)
	}
	for _, stale := range []Slot{8, 6} {
		if _, _, next := s.promise(1, ballot, &Promise{OK: true, Promised: ballot, Next: stale}); next != 0 {
			t.Fatalf("a page asked from 8 with Next %d: asked again from %d", stale, next)
		}
	}
	// The promise still completes with its real last page.
	s.promise(1, ballot, &Promise{OK: true, Promised: ballot, Entries: []Entry{{Slot: 9, Ballot: b(1, 2), Value: []byte("nine")}}})
	won, _, _ := s.promise(0, ballot, &Promise{OK: true, Promised: ballot})
	if !won {
		t.Fatal("did not win with two whole promises")
	}
	var slots []Slot
	for _, e := range s.win() {
		if !e.NoOp {
			slots = append(slots, e.Slot)
		}
	}
	if want := []Slot{5, 9}; !slices.Equal(slots, want) {
		t.Fatalf("re-proposed values at %v, want %v", slots, want)
	}
}

// A page read after the acceptor restarted may report a lower truncation
// point than an earlier page (a Compact is not persisted); the whole
// promise keeps the highest, or win would fill slots the earlier page
// skipped as forgotten (chosen) with no-ops.
func TestProposerPagedPromiseKeepsHighestForgotten(t *testing.T) {
	s := newProposerState(1, 3, 0)
	ballot := s.campaign(2).Ballot
	if _, _, next := s.promise(0, ballot, &Promise{OK: true, Promised: ballot, Forgotten: 10, Next: 12, Entries: []Entry{
		{Slot: 10, Ballot: b(1, 2), Value: []byte("ten")},
		{Slot: 11, Ballot: b(1, 2), Value: []byte("eleven")},
	}}); next != 12 {
		t.Fatalf("first page: next %d, want 12", next)
	}
	s.promise(0, ballot, &Promise{OK: true, Promised: ballot, Forgotten: 0})
	won, _, _ := s.promise(1, ballot, &Promise{OK: true, Promised: ballot})
	if !won {
		t.Fatal("did not win with two of three")
	}
	for _, e := range s.win() {
		if e.Slot < 10 {
			t.Fatalf("re-proposed slot %d (%+v), below the truncation point 10 an earlier page reported", e.Slot, e)
		}
	}
	if s.commit != 10 {
		t.Fatalf("commit %d, want 10", s.commit)
	}
}
