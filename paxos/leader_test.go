package paxos_test

import (
	"context"
	"testing"
	"time"

	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/paxos/paxostest"
)

// A leader nobody can reach (deaf: its own calls still get answers, so it
// keeps its quorum) is replaced once a follower's forwards have failed for
// an election timeout, and proposals get through again.
func TestDeafLeaderReplaced(t *testing.T) {
	t.Parallel()
	c := paxostest.NewCluster(t, 3, paxostest.Options{Seed: 21})
	defer c.CheckAgreement()
	leader := c.Leader(wait)
	c.Net.Deafen(paxostest.Addr(leader), true)
	follower := (leader + 1) % 3
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := c.P(follower).Propose(pctx, []byte("through"))
		pcancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no proposal got through with the leader deaf: %v", err)
		}
	}
	if lead, ok := c.P(follower).Leader(); !ok || lead == c.Members[leader].ID {
		t.Fatalf("follower's leader is %v (%v), want a new one", lead, ok)
	}
	c.Net.Deafen(paxostest.Addr(leader), false)
}

// A follower cut off from the majority, with proposals of its own failing
// to reach the leader, does not campaign (it cannot get a quorum of
// pre-vote answers), so on healing it does not depose the majority's
// leader.
func TestMinorityDoesNotDepose(t *testing.T) {
	t.Parallel()
	c := paxostest.NewCluster(t, 5, paxostest.Options{Seed: 22})
	defer c.CheckAgreement()
	leader := c.Leader(wait)
	cut := (leader + 1) % 5
	var rest []string
	for i := range 5 {
		if i != cut {
			rest = append(rest, paxostest.Addr(i))
		}
	}
	ballot := paxos.Promised(c.P(leader))
	before := c.P(cut).Metrics().Campaigns
	c.Net.Partition([]string{paxostest.Addr(cut)}, rest)
	ctx, cancel := context.WithTimeout(context.Background(), 3*quiet)
	for ctx.Err() == nil {
		pctx, pcancel := context.WithTimeout(ctx, 50*time.Millisecond)
		c.P(cut).Propose(pctx, []byte("from the minority")) // fails: cut off
		pcancel()
	}
	cancel()
	if n := c.P(cut).Metrics().Campaigns - before; n != 0 {
		t.Fatalf("the cut-off node campaigned %d times", n)
	}
	c.Net.Heal()
	ctx, cancel = context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c.P(cut).Propose(ctx, []byte("after healing")); err != nil {
		t.Fatal(err)
	}
	if !c.P(leader).IsLeader() || paxos.Promised(c.P(leader)) != ballot {
		t.Fatalf("the leader was deposed on healing (promised %v, was %v)", paxos.Promised(c.P(leader)), ballot)
	}
}
