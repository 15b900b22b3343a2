package paxos

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/synod-go/synod/log"
)

// startAcceptor runs an acceptor on memory logs until the test ends.
func startAcceptor(t *testing.T, hooks acceptorHooks) *Acceptor {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, _, err := newAcceptor(ctx, log.NewMemory(), log.NewMemory(), slog.New(slog.NewTextHandler(io.Discard, nil)), hooks)
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		a.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.mu.Lock()
		running := a.running
		a.mu.Unlock()
		if running {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatal("acceptor did not start")
		}
		time.Sleep(time.Millisecond)
	}
}

// acceptInBallot1 has a promise b(1, 1) and then entries accepted in it.
func acceptInBallot1(t *testing.T, a *Acceptor, entries []Entry) {
	t.Helper()
	ctx := context.Background()
	if rep, err := a.Prepare(ctx, &Prepare{Ballot: b(1, 1)}); err != nil || !rep.OK {
		t.Fatalf("Prepare b(1, 1): %+v, %v", rep, err)
	}
	if rep, err := a.Accept(ctx, &Accept{Ballot: b(1, 1), Entries: entries}); err != nil || !rep.OK {
		t.Fatalf("Accept: %+v, %v", rep, err)
	}
}

// TestPrepareSupersededSkipsRead: a Prepare overtaken by a higher one
// after its promise was persisted answers with the higher ballot instead
// of reading (and shipping) every accepted value: its candidate has lost
// already. A Prepare whose caller has gone reads nothing either.
func TestPrepareSupersededSkipsRead(t *testing.T) {
	var a *Acceptor
	var nested atomic.Bool
	a = startAcceptor(t, acceptorHooks{contact: func(bal Ballot, leader bool) {
		// A candidate with a higher ballot arrives while the Prepare
		// of b(2, 1) is between its promise and its read.
		if !leader && bal == b(2, 1) && nested.CompareAndSwap(false, true) {
			if rep, err := a.Prepare(context.Background(), &Prepare{Ballot: b(3, 2)}); err != nil || !rep.OK {
				t.Errorf("the overtaking Prepare: %+v, %v", rep, err)
			}
		}
	}})
	ctx := context.Background()
	value := []byte("accepted in ballot 1")
	acceptInBallot1(t, a, []Entry{{Slot: 0, Value: value}})

	rep, err := a.Prepare(ctx, &Prepare{Ballot: b(2, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if !nested.Load() {
		t.Fatal("the overtaking Prepare never ran")
	}
	if rep.OK || rep.Promised != b(3, 2) || len(rep.Entries) != 0 {
		t.Fatalf("overtaken Prepare answered %+v, want a rejection naming %v with no entries", rep, b(3, 2))
	}

	// The winner of phase 1 still gets the accepted value.
	rep, err = a.Prepare(ctx, &Prepare{Ballot: b(3, 2)})
	if err != nil || !rep.OK || len(rep.Entries) != 1 || string(rep.Entries[0].Value) != string(value) {
		t.Fatalf("retransmitted Prepare b(3, 2): %+v, %v", rep, err)
	}

	// A caller that gave up gets no answer (and nothing is read for it),
	// but the promise stands.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if rep, err := a.Prepare(cctx, &Prepare{Ballot: b(4, 1)}); err == nil {
		t.Fatalf("Prepare with its caller gone answered %+v", rep)
	}
	if promised, _ := a.status(); promised != b(4, 1) {
		t.Fatalf("promised %v after the abandoned Prepare, want %v", promised, b(4, 1))
	}
}

// TestCampaignBackoff: each campaign that fails in a row, by timing out
// or by being preempted, doubles the election timeout and the time the
// next campaign is given (up to maxBackoff doublings), so candidates whose
// phase 1 takes longer than the configured timeouts stop preempting each
// other. Winning, or hearing a leader's Accept, starts the count again.
func TestCampaignBackoff(t *testing.T) {
	clock := clockwork.NewFakeClock()
	cfg := Config{ID: 1, Clock: clock, ElectionTimeout: 100 * time.Millisecond, RPCTimeout: 300 * time.Millisecond}
	p := newProposer(cfg.withDefaults(), nil)
	p.st = newProposerState(1, 3, 0)
	ctx := context.Background()
	inRange := func(failed int) {
		t.Helper()
		f := time.Duration(1) << min(failed, maxBackoff)
		if p.failedCampaigns != failed {
			t.Fatalf("failedCampaigns = %d, want %d", p.failedCampaigns, failed)
		}
		if lo, hi := f*cfg.ElectionTimeout, 2*f*cfg.ElectionTimeout; p.timeout < lo || p.timeout >= hi {
			t.Fatalf("after %d failed campaigns: election timeout %v, want in [%v, %v)", failed, p.timeout, lo, hi)
		}
		if got, want := p.campaignTime(), f*cfg.RPCTimeout; got != want {
			t.Fatalf("after %d failed campaigns: campaign time %v, want %v", failed, got, want)
		}
	}
	p.timeout = p.randomTimeout()
	inRange(0)
	for failed := 1; failed <= maxBackoff+2; failed++ {
		p.st.campaign(0)
		p.campaignEnd = clock.Now().Add(2 * p.campaignTime())
		clock.Advance(2*p.campaignTime() + time.Millisecond)
		p.onTick(ctx) // the campaign times out
		if p.st.role != follower {
			t.Fatalf("still %v after the campaign's time", p.st.role)
		}
		inRange(failed)
	}

	// A preemption counts too; a leader's Accept resets the count.
	p.failedCampaigns = 1
	prep := p.st.campaign(0)
	p.onPromise(1, prep.Ballot, &Promise{Promised: MakeBallot(prep.Ballot.Round()+1, 2)}, nil)
	inRange(2)
	p.contact(MakeBallot(prep.Ballot.Round()+1, 2), false) // a candidate's Prepare: no reset
	p.touch()
	p.onTick(ctx)
	inRange(2)
	p.contact(MakeBallot(prep.Ballot.Round()+1, 2), true)
	p.onTick(ctx)
	inRange(0) // the election timeout is drawn again, unhurried
}

// TestPreparePages: a Prepare's reply holds at most pageBytes of entries
// (one larger entry alone) and says where the rest starts; asking again
// in the same ballot from there returns the next page, and the pages
// together are every accepted entry.
func TestPreparePages(t *testing.T) {
	a := startAcceptor(t, acceptorHooks{})
	a.pageBytes = 2*pageCost(Entry{Value: []byte("six-00")}) + 1 // two of the small values
	ctx := context.Background()
	values := []string{"six-00", "six-01", "a value larger than a whole page, which goes alone", "six-03", "six-04"}
	var entries []Entry
	for i, v := range values {
		entries = append(entries, Entry{Slot: Slot(i), Value: []byte(v)})
	}
	acceptInBallot1(t, a, entries)
	var pages [][]Slot
	var got []string
	from := Slot(0)
	for range len(values) + 1 {
		rep, err := a.Prepare(ctx, &Prepare{Ballot: b(2, 2), From: from})
		if err != nil || !rep.OK {
			t.Fatalf("Prepare b(2, 2) from %d: %+v, %v", from, rep, err)
		}
		var page []Slot
		for _, e := range rep.Entries {
			page = append(page, e.Slot)
			got = append(got, string(e.Value))
		}
		pages = append(pages, page)
		if rep.Next == 0 {
			break
		}
		from = rep.Next
	}
	want := [][]Slot{{0, 1}, {2}, {3, 4}}
	if len(pages) != len(want) {
		t.Fatalf("pages %v, want %v", pages, want)
	}
	for i := range want {
		if !slices.Equal(pages[i], want[i]) {
			t.Fatalf("pages %v, want %v", pages, want)
		}
	}
	if !slices.Equal(got, values) {
		t.Fatalf("the pages hold %q, want %q", got, values)
	}
}

// TestPreparePageEntries: a long run of no-ops, which carry no value
// bytes, still comes in pages of at most promisePageEntries entries.
func TestPreparePageEntries(t *testing.T) {
	a := startAcceptor(t, acceptorHooks{})
	ctx := context.Background()
	const n = promisePageEntries + 10
	entries := make([]Entry, n)
	for i := range entries {
		entries[i] = Entry{Slot: Slot(i), NoOp: true}
	}
	acceptInBallot1(t, a, entries)
	rep, err := a.Prepare(ctx, &Prepare{Ballot: b(2, 2)})
	if err != nil || !rep.OK || len(rep.Entries) != promisePageEntries || rep.Next != promisePageEntries {
		t.Fatalf("first page: %d entries, next %d, %v; want %d and %d", len(rep.Entries), rep.Next, err, promisePageEntries, promisePageEntries)
	}
	rep, err = a.Prepare(ctx, &Prepare{Ballot: b(2, 2), From: rep.Next})
	if err != nil || !rep.OK || len(rep.Entries) != 10 || rep.Next != 0 {
		t.Fatalf("last page: %d entries, next %d, %v; want 10 and 0", len(rep.Entries), rep.Next, err)
	}
}
