package paxos_test

import (
	"context"
	"errors"
	"testing"

	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/paxos/paxostest"
)

// Compaction truncates below a snapshot point while a peer is down; the
// peer, back, learns that it fell behind (ErrForgotten) and, once it has
// installed a snapshot (Compact at the same point), learns the rest.
func TestCompactWhilePeerDown(t *testing.T) {
	t.Parallel()
	c := paxostest.NewCluster(t, 3, paxostest.Options{Seed: 31})
	defer c.CheckAgreement()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c.Stop(2)
	var last paxos.Slot
	for k := range 20 {
		s, err := c.P(k%2).Propose(ctx, []byte{byte('a' + k)})
		if err != nil {
			t.Fatal(err)
		}
		last = max(last, s)
	}
	c.WaitDecided(last, 2, wait)
	for i := range 2 {
		c.P(i).Compact(10)
		if f, _ := c.P(i).Status(5); f != paxos.Forgotten {
			t.Fatalf("node %d: slot 5 is %v after Compact(10)", i, f)
		}
		if _, err := c.P(i).Learn(ctx, 3, 10); !errors.Is(err, paxos.ErrForgotten) {
			t.Fatalf("node %d: Learn below the compaction point = %v, want ErrForgotten", i, err)
		}
	}
	if c.P(0).Min() != 0 {
		t.Fatalf("Min moved without node 2's Done: %d", c.P(0).Min())
	}
	c.Start(2)
	p := c.P(2)
	// The laggard hears of the truncation and cannot learn slot 0.
	if _, err := p.Learn(ctx, 0, 10); !errors.Is(err, paxos.ErrForgotten) {
		t.Fatalf("lagging Learn = %v, want ErrForgotten", err)
	}
	p.Compact(10) // as after installing a snapshot taken at slot 10
	chosen, err := p.Learn(ctx, 10, 100)
	if err != nil {
		t.Fatal(err)
	}
	if chosen[0].Slot != 10 {
		t.Fatalf("Learn(10) starts at %d", chosen[0].Slot)
	}
	c.WaitDecided(last, 3, wait)
	// New values still get chosen everywhere.
	s, err := p.Propose(ctx, []byte("after"))
	if err != nil {
		t.Fatal(err)
	}
	c.WaitDecided(s, 3, wait)
}

// A peer's compaction does not make a node forget what it has recorded:
// node 2, partitioned after recording slots 0-9, catches up from peers of
// which one compacted below 10, and still delivers slots 0-19 in order.
func TestPeerCompactionKeepsRecorded(t *testing.T) {
	t.Parallel()
	c := paxostest.NewCluster(t, 3, paxostest.Options{Seed: 32})
	defer c.CheckAgreement()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	propose := func(n int) paxos.Slot {
		var last paxos.Slot
		for k := range n {
			s, err := c.P(k%2).Propose(ctx, []byte{byte('a' + k)})
			if err != nil {
				t.Fatal(err)
			}
			last = max(last, s)
		}
		return last
	}
	c.WaitDecided(propose(10), 3, wait)
	c.Net.Partition([]string{paxostest.Addr(0), paxostest.Addr(1)}, []string{paxostest.Addr(2)})
	last := propose(10)
	c.WaitDecided(last, 2, wait)
	c.P(0).Compact(10)
	c.Net.Heal()
	c.WaitDecided(last, 3, wait)
	var got []paxos.Chosen
	for paxos.Slot(len(got)) <= last {
		ch, err := c.P(2).Learn(ctx, paxos.Slot(len(got)), 100)
		if err != nil {
			t.Fatalf("Learn(%d) on node 2 after a peer compacted below 10: %v", len(got), err)
		}
		got = append(got, ch...)
	}
}
