package paxos_test

import (
	"context"
	"errors"
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
	t.Logf("chosen %d, timed out %d, peak leader queue %d (MaxPending %d)", chosen.Load(), timedOut.Load(), peak, maxPending)
	if peak > maxPending {
		t.Errorf("the leader queued %d values, MaxPending is %d", peak, maxPending)
	}
	if timedOut.Load() == 0 {
		t.Errorf("no Propose waited past its context: the overload did not push back")
	}
	if chosen.Load() < 20 {
		t.Errorf("only %d values chosen under overload", chosen.Load())
	}
	for i := range 3 {
		paxos.SetAcceptorFault(c.P(i), nil)
	}
	c.CheckAgreement()
}
