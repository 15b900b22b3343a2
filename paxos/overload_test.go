package paxos_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/paxos/paxostest"
)

// When the followers fall behind (every Accept they take costs them 20 ms,
// as a slow disk would), proposals wait for the leader instead of queueing
// without limit: the leader's queue never holds more than MaxPending
// values, callers whose context ends get its error, and values keep being
// chosen.
func TestOverloadIsBounded(t *testing.T) {
	t.Parallel()
	const maxPending = 32
	c := paxostest.NewCluster(t, 3, paxostest.Options{Seed: 11, Configure: func(i int, cfg *paxos.Config) {
		cfg.MaxPending = maxPending
		cfg.MaxBatch = 16
		cfg.MaxInflight = 2
	}})
	leader := c.Leader(wait)
	for i := range 3 {
		if i != leader {
			paxos.SetAcceptorFault(c.P(i), func(stage string) error {
				if stage == "received" {
					time.Sleep(20 * time.Millisecond) // the slow disk being simulated
				}
				return nil
			})
		}
	}
	p := c.P(leader)
	chosenBefore := p.Metrics().Chosen
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	value := make([]byte, 4096)
	var chosen, timedOut atomic.Int64
	var wg sync.WaitGroup
	for range 300 {
		wg.Go(func() {
			for ctx.Err() == nil {
				pctx, pcancel := context.WithTimeout(ctx, 100*time.Millisecond)
				_, err := p.Propose(pctx, value)
				pcancel()
				switch {
				case err == nil:
					chosen.Add(1)
				case errors.Is(err, context.DeadlineExceeded):
					timedOut.Add(1)
				case ctx.Err() == nil:
					t.Errorf("Propose: %v", err)
					return
				}
			}
		})
	}
	peak := 0
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
sample:
	for {
		select {
		case <-ctx.Done():
			break sample
		case <-tick.C:
			peak = max(peak, paxos.QueueLen(ctx, p))
		}
	}
	wg.Wait()
	slots := p.Metrics().Chosen - chosenBefore
	t.Logf("%d slots chosen; %d Proposes returned them, %d timed out; peak leader queue %d (MaxPending %d)", slots, chosen.Load(), timedOut.Load(), peak, maxPending)
	if peak > maxPending {
		t.Errorf("the leader queued %d values, MaxPending is %d", peak, maxPending)
	}
	if timedOut.Load() == 0 {
		t.Errorf("no Propose waited past its context: the overload did not push back")
	}
	// Progress is counted in slots chosen, not in Proposes that returned
	// in time: with 300 callers queued for 64 places, which of them get a
	// place before their 100 ms end depends on the machine's load.
	if slots < 20 {
		t.Errorf("only %d values chosen under overload", slots)
	}
	for i := range 3 {
		paxos.SetAcceptorFault(c.P(i), nil)
	}
	c.CheckAgreement()
}

// One follower is slow (every Accept costs it 10 ms) while every node's
// application learns and calls Done: 192 MB of values go through, and the
// heap stays far below what they would take if anything (the slow
// follower's queue, the logs behind its Done, the leader's pipeline) held
// on to them. What it does peak at is mostly the logs between Min and the
// head and the in-memory network's stream queues (unbounded by design) of
// the slow node's catch-up.
func TestSlowFollowerMemoryBounded(t *testing.T) {
	// Not parallel: it measures the heap.
	const (
		values    = 12000
		valueSize = 16 << 10
		limit     = 144 << 20 // holding the values would take 192 MB per log, on each node
	)
	c := paxostest.NewCluster(t, 3, paxostest.Options{Seed: 12})
	defer c.CheckAgreement()
	leader := c.Leader(wait)
	slow := (leader + 1) % 3
	paxos.SetAcceptorFault(c.P(slow), func(stage string) error {
		if stage == "received" {
			time.Sleep(10 * time.Millisecond) // the slow disk being simulated
		}
		return nil
	})
	defer paxos.SetAcceptorFault(c.P(slow), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var apps sync.WaitGroup
	appCtx, stopApps := context.WithCancel(ctx)
	for i := range 3 {
		apps.Go(func() {
			var next paxos.Slot
			for {
				ch, err := c.P(i).Learn(appCtx, next, 256)
				if err != nil {
					return
				}
				next = ch[len(ch)-1].Slot + 1
				c.P(i).Done(next - 1)
			}
		})
	}
	base := heapInUse()
	value := make([]byte, valueSize)
	var proposed atomic.Int64
	// The heap is sampled (after a GC) every 100 values proposed, by a
	// goroutine of its own, so that no phase of the run goes unmeasured.
	var peak uint64
	samples := 0
	sampled := make(chan struct{})
	next := make(chan struct{}, 1)
	go func() {
		defer close(sampled)
		for range next {
			peak = max(peak, heapInUse())
			samples++
		}
	}()
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for {
				k := proposed.Add(1)
				if k > values {
					return
				}
				if _, err := c.P(leader).Propose(ctx, value); err != nil {
					t.Errorf("Propose: %v", err)
					return
				}
				if k%100 == 0 {
					select {
					case next <- struct{}{}:
					default: // a sample is being taken
					}
				}
			}
		})
	}
	wg.Wait()
	close(next)
	<-sampled
	stopApps()
	apps.Wait()
	growth := int64(peak) - int64(base)
	t.Logf("%d values of %d KB through a cluster with one slow follower: heap peaked %d MB above the %d MB baseline over %d samples (limit %d MB); Min %d; %d Accepts to it deferred, it caught up from its peers %d times",
		values, valueSize>>10, growth>>20, base>>20, samples, limit>>20, c.P(leader).Min(), c.P(leader).Metrics().Deferred, c.P(slow).Metrics().Catchups)
	if samples < 5 {
		t.Fatalf("only %d heap samples were taken", samples)
	}
	if growth > limit {
		t.Fatalf("heap grew by %d MB, limit %d MB", growth>>20, limit>>20)
	}
	if c.P(leader).Min() == 0 {
		t.Fatal("Min never moved: the test did not exercise release")
	}
}

// A follower that falls far behind (every Accept costs it 100 ms, while
// the other follower makes the quorum) overflows its send queue at the
// leader; what did not fit waits in the leader's backlog for it and goes
// out merged, chosen or not, as it drains. So its acceptor ends up with
// every slot, and its observer never has to fill holes from the other
// acceptors. (Before the backlog, the overflowing Accepts were retried only
// while not yet chosen, and the follower's observer caught up over remote
// streams, which at high rates kept it behind.)
func TestSlowFollowerMissesNothing(t *testing.T) {
	t.Parallel()
	const values = 600
	c := paxostest.NewCluster(t, 3, paxostest.Options{Seed: 13, Configure: func(i int, cfg *paxos.Config) {
		cfg.MaxInflight = 2 // a send queue of 24 Accepts per peer
	}})
	defer c.CheckAgreement()
	leader := c.Leader(wait)
	slow := (leader + 1) % 3
	var slowing atomic.Bool
	slowing.Store(true)
	paxos.SetAcceptorFault(c.P(slow), func(stage string) error {
		if stage == "received" && slowing.Load() {
			time.Sleep(100 * time.Millisecond) // the slow disk being simulated
		}
		return nil
	})
	defer paxos.SetAcceptorFault(c.P(slow), nil)
	before := c.P(leader).Metrics().Deferred
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var last paxos.Slot
	for i := range values {
		s, err := c.P(leader).Propose(ctx, []byte(fmt.Sprintf("v%d", i)))
		if err != nil {
			t.Fatalf("Propose %d: %v", i, err)
		}
		last = max(last, s)
	}
	slowing.Store(false)
	c.WaitDecided(last, 3, wait)
	deferred := c.P(leader).Metrics().Deferred - before
	catchups := c.P(slow).Metrics().Catchups
	t.Logf("%d values; %d Accepts to the slow follower deferred; its observer caught up from peers %d times", values, deferred, catchups)
	if deferred == 0 {
		t.Fatal("no Accept was deferred: the slow follower's queue never overflowed, so the test proved nothing")
	}
	if catchups != 0 {
		t.Errorf("the slow follower's observer caught up from its peers %d times: its acceptor missed slots", catchups)
	}
}
