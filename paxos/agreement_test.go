package paxos_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/paxos/paxostest"
)

const wait = 10 * time.Second

func TestBasicAgreement(t *testing.T) {
	t.Parallel()
	// The classic out-of-order case below leaves holes on purpose until
	// their own proposals arrive: keep the leader from filling them.
	c := paxostest.NewCluster(t, 3, paxostest.Options{Seed: 1, Configure: func(i int, cfg *paxos.Config) {
		cfg.HoleTimeout = time.Minute
	}})
	defer c.CheckAgreement()

	// One proposer.
	if err := c.P(0).ProposeAt(0, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if v := c.WaitDecided(0, 3, wait); string(v) != "hello" {
		t.Fatalf("slot 0 = %q, want hello", v)
	}

	// Many proposers, same value.
	for i := range 3 {
		c.P(i).ProposeAt(1, []byte("77"))
	}
	if v := c.WaitDecided(1, 3, wait); string(v) != "77" {
		t.Fatalf("slot 1 = %q", v)
	}

	// Many proposers, different values: one wins everywhere.
	for i := range 3 {
		c.P(i).ProposeAt(2, fmt.Appendf(nil, "v%d", i))
	}
	c.WaitDecided(2, 3, wait)

	// Out of order.
	c.P(0).ProposeAt(7, []byte("700"))
	c.P(0).ProposeAt(6, []byte("600"))
	c.P(1).ProposeAt(5, []byte("500"))
	c.WaitDecided(7, 3, wait)
	c.P(0).ProposeAt(4, []byte("400"))
	c.P(1).ProposeAt(3, []byte("300"))
	for s, want := range map[paxos.Slot]string{3: "300", 4: "400", 5: "500", 6: "600", 7: "700"} {
		if v := c.WaitDecided(s, 3, wait); string(v) != want {
			t.Fatalf("slot %d = %q, want %q", s, v, want)
		}
	}
	for i := range 3 {
		if m := c.P(i).Max(); m != 7 {
			t.Fatalf("node %d: Max() = %d, want 7", i, m)
		}
	}
}

func TestProposeBlocking(t *testing.T) {
	t.Parallel()
	c := paxostest.NewCluster(t, 3, paxostest.Options{Seed: 2})
	defer c.CheckAgreement()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	seen := make(map[paxos.Slot]string)
	for k := range 30 {
		v := fmt.Sprintf("value-%d", k)
		slot, err := c.P(k%3).Propose(ctx, []byte(v))
		if err != nil {
			t.Fatalf("propose %d: %v", k, err)
		}
		if old, ok := seen[slot]; ok {
			t.Fatalf("slot %d returned for both %q and %q", slot, old, v)
		}
		seen[slot] = v
	}
	for slot, v := range seen {
		if got := c.WaitDecided(slot, 3, wait); string(got) != v {
			t.Fatalf("slot %d = %q, want %q", slot, got, v)
		}
	}
	// Learn delivers everything in order, without gaps.
	var next paxos.Slot
	for next < 30 {
		batch, err := c.P(1).Learn(ctx, next, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range batch {
			if ch.Slot != next {
				t.Fatalf("Learn gave slot %d, want %d", ch.Slot, next)
			}
			next++
		}
	}
}

// A slot left empty below a chosen one is filled with a no-op after
// HoleTimeout, so in-order delivery goes on.
func TestHolesAreFilled(t *testing.T) {
	t.Parallel()
	c := paxostest.NewCluster(t, 3, paxostest.Options{Seed: 12})
	defer c.CheckAgreement()
	c.P(0).ProposeAt(5, []byte("five"))
	c.WaitDecided(5, 3, wait)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var got []paxos.Chosen
	for next := paxos.Slot(0); next <= 5; {
		batch, err := c.P(1).Learn(ctx, next, 10)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, batch...)
		next = batch[len(batch)-1].Slot + 1
	}
	for _, ch := range got[:5] {
		if !ch.NoOp {
			t.Fatalf("slot %d holds %q, want a no-op", ch.Slot, ch.Value)
		}
	}
	if string(got[5].Value) != "five" {
		t.Fatalf("slot 5 = %q", got[5].Value)
	}
}
