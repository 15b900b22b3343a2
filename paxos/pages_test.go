package paxos_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/synod-go/synod/log"
	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/paxos/paxostest"
)

// TestPagedPromisesKeepChosenValues: values accepted by the leader and one
// follower are chosen even though the leader never heard so (the
// follower's replies were lost). The next leader learns them from a
// promise far longer than one page (MaxBatchBytes is 8 bytes here, so a
// page holds one or two values) and must re-propose every one of them at
// its slot: a page lost or misread would let a no-op or a new value take
// the slot of a chosen value.
func TestPagedPromisesKeepChosenValues(t *testing.T) {
	t.Parallel()
	logs := make([][3]log.Log, 3)
	for i := range logs {
		logs[i] = [3]log.Log{log.NewMemory(), log.NewMemory(), log.NewMemory()}
	}
	c := paxostest.NewCluster(t, 3, paxostest.Options{
		Seed:      31,
		Configure: func(_ int, cfg *paxos.Config) { cfg.MaxBatchBytes = 8 },
		Logs:      func(i int) (promise, accepted, recorded log.Log) { return logs[i][0], logs[i][1], logs[i][2] },
	})
	defer c.CheckAgreement()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	old := c.Leader(wait)
	gone, keeper := (old+1)%3, (old+2)%3
	if _, err := c.P(old).Propose(ctx, []byte("first")); err != nil {
		t.Fatal(err)
	}
	c.Stop(gone)
	// The keeper accepts everything the leader sends, and the leader
	// hears none of it: nothing is chosen as far as anyone knows.
	c.Net.SetReliability(paxostest.Addr(keeper), 0, 1)
	const n = 24
	var proposers sync.WaitGroup
	for i := range n {
		proposers.Go(func() {
			pctx, pcancel := context.WithTimeout(ctx, wait/4)
			defer pcancel()
			c.P(old).Propose(pctx, []byte(fmt.Sprintf("v-%02d", i))) // fails: no quorum answers
		})
	}
	c.WaitFor("the leader to step down", wait, func() bool { return !c.P(old).IsLeader() })
	proposers.Wait()
	c.Stop(old)
	c.Net.ClearFaults(paxostest.Addr(keeper))

	// What the keeper holds beyond "first": chosen, since the old leader's
	// acceptor took every value it sent.
	held, err := paxos.AcceptedEntries(ctx, logs[keeper][1])
	if err != nil {
		t.Fatal(err)
	}
	var chosen []paxos.Entry
	for _, e := range held {
		if e.Slot > 0 && !e.NoOp {
			chosen = append(chosen, e)
		}
	}
	if len(chosen) < 4 {
		t.Fatalf("the keeper accepted %d values, too few for several pages", len(chosen))
	}

	c.Start(gone)
	c.WaitFor("a new leader", wait, func() bool { return c.P(gone).IsLeader() || c.P(keeper).IsLeader() })
	for _, e := range chosen {
		got := c.WaitDecided(e.Slot, 2, wait)
		if string(got) != string(e.Value) {
			t.Fatalf("slot %d: decided %q, but %q was chosen there (accepted by the old leader and the keeper)", e.Slot, got, e.Value)
		}
	}
	pages := c.P(gone).Metrics().PromisePages + c.P(keeper).Metrics().PromisePages
	if pages == 0 {
		t.Fatalf("no promise pages asked for: the test did not exercise paging (%d values held)", len(chosen))
	}
	t.Logf("%d chosen values carried over in %d further promise pages", len(chosen), pages)
}
