package paxos_test

import (
	"context"
	"fmt"
	"math/rand"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/paxos/paxostest"
)

// quiet is how long a test watches for something that must not happen
// (a deaf node learning, a minority deciding): several election timeouts.
const quiet = 600 * time.Millisecond

func TestDeafPeers(t *testing.T) {
	t.Parallel()
	c := paxostest.NewCluster(t, 5, paxostest.Options{Seed: 3})
	defer c.CheckAgreement()
	c.P(0).ProposeAt(0, []byte("hello"))
	c.WaitDecided(0, 5, wait)

	c.Net.Deafen(paxostest.Addr(0), true)
	c.Net.Deafen(paxostest.Addr(1), true)
	c.P(2).ProposeAt(1, []byte("goodbye"))
	c.WaitDecided(1, 3, wait)
	time.Sleep(quiet) // watching for a deaf peer to hear of the decision
	if n := c.NDecided(1); n != 3 {
		t.Fatalf("a deaf peer heard about a decision: %d decided, want 3", n)
	}

	// A deaf peer that proposes learns the decision, not its own value.
	c.P(0).ProposeAt(1, []byte("xxx"))
	c.WaitDecided(1, 4, wait)
	time.Sleep(quiet)
	if n := c.NDecided(1); n != 4 {
		t.Fatalf("a deaf peer heard about a decision: %d decided, want 4", n)
	}
	c.P(1).ProposeAt(1, []byte("yyy"))
	if v := c.WaitDecided(1, 5, wait); string(v) != "goodbye" {
		t.Fatalf("slot 1 = %q, want goodbye", v)
	}
}

func TestForget(t *testing.T) {
	t.Parallel()
	const n = 6
	c := paxostest.NewCluster(t, n, paxostest.Options{Seed: 4})
	defer c.CheckAgreement()
	for i := range n {
		if m := c.P(i).Min(); m != 0 {
			t.Fatalf("node %d: initial Min() = %d", i, m)
		}
	}
	c.P(0).ProposeAt(0, []byte("00"))
	c.P(1).ProposeAt(1, []byte("11"))
	c.P(2).ProposeAt(2, []byte("22"))
	c.P(0).ProposeAt(6, []byte("66"))
	c.P(1).ProposeAt(7, []byte("77"))
	c.WaitDecided(0, n, wait)
	c.WaitDecided(1, n, wait)
	c.WaitDecided(6, n, wait)
	c.WaitDecided(7, n, wait)

	// Min does not move until every peer called Done.
	for i := range n - 1 {
		c.P(i).Done(0)
	}
	time.Sleep(quiet) // watching for Min to move too early
	for i := range n {
		if m := c.P(i).Min(); m != 0 {
			t.Fatalf("node %d: Min() = %d before every peer called Done", i, m)
		}
	}
	c.P(n - 1).Done(0)
	for i := 1; i < n; i++ {
		c.P(i).Done(1)
	}
	c.WaitFor("Min() = 1 on every peer", wait, func() bool {
		for i := range n {
			if c.P(i).Min() != 1 {
				return false
			}
		}
		return true
	})
	for i := range n {
		if f, _ := c.P(i).Status(0); f != paxos.Forgotten {
			t.Fatalf("node %d: slot 0 is %v, want Forgotten", i, f)
		}
		if f, _ := c.P(i).Status(1); f != paxos.Decided {
			t.Fatalf("node %d: slot 1 is %v, want Decided", i, f)
		}
	}
	// A forgotten slot stays forgotten even if proposed again.
	c.P(2).ProposeAt(0, []byte("again"))
	time.Sleep(quiet)
	for i := range n {
		if f, _ := c.P(i).Status(0); f != paxos.Forgotten {
			t.Fatalf("node %d: slot 0 is %v after re-proposal, want Forgotten", i, f)
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func TestForgetMemory(t *testing.T) {
	// Not parallel: it measures the heap.
	const n = 6
	// Megabyte values: under the race detector every copy of one costs
	// milliseconds of CPU, and six nodes on two cores then miss the
	// cluster's usual 150 ms election timeout and depose each leader in
	// turn. This test is about memory, not elections: give them time.
	c := paxostest.NewCluster(t, n, paxostest.Options{Seed: 5, Configure: func(_ int, cfg *paxos.Config) {
		cfg.ElectionTimeout, cfg.RPCTimeout = 2*time.Second, 2*time.Second
	}})
	defer c.CheckAgreement()
	c.P(0).ProposeAt(0, []byte("x"))
	c.WaitDecided(0, n, wait)
	rng := rand.New(rand.NewSource(5))
	for i := 1; i <= 10; i++ {
		big := make([]byte, 1<<20)
		rng.Read(big)
		c.P(0).ProposeAt(paxos.Slot(i), big)
		c.WaitDecided(paxos.Slot(i), n, wait)
	}
	before := heapInUse()
	for i := range n {
		c.P(i).Done(10)
	}
	for i := range n {
		c.P(i).ProposeAt(paxos.Slot(11+i), []byte("z"))
	}
	c.WaitFor("Min() = 11 on every peer", wait, func() bool {
		for i := range n {
			if c.P(i).Min() != 11 {
				return false
			}
		}
		return true
	})
	var after uint64
	c.WaitFor("the heap to shrink to half", wait, func() bool {
		after = heapInUse()
		return after <= before/2
	})
	t.Logf("heap in use: %d MB with 10 MB decided on 6 peers, %d MB after Done", before>>20, after>>20)
	for i := range n {
		for s := paxos.Slot(1); s <= 10; s++ {
			if f, _ := c.P(i).Status(s); f != paxos.Forgotten {
				t.Fatalf("node %d: slot %d is %v, want Forgotten", i, s, f)
			}
		}
	}
}

func manyInstances(t *testing.T, c *paxostest.Cluster, n, slots int) {
	for s := range slots {
		for i := range n {
			c.P(i).ProposeAt(paxos.Slot(s), fmt.Appendf(nil, "%d", s*10+i))
		}
	}
	for s := range slots {
		c.WaitDecided(paxos.Slot(s), n, 2*wait)
	}
}

func TestManyInstances(t *testing.T) {
	t.Parallel()
	c := paxostest.NewCluster(t, 3, paxostest.Options{Seed: 6})
	defer c.CheckAgreement()
	manyInstances(t, c, 3, 50)
}

func TestManyInstancesUnreliable(t *testing.T) {
	t.Parallel()
	c := paxostest.NewCluster(t, 3, paxostest.Options{Seed: 7})
	defer c.CheckAgreement()
	c.Net.SetDefaultReliability(0.1, 0.2)
	manyInstances(t, c, 3, 50)
}

func TestLateJoiner(t *testing.T) {
	t.Parallel()
	c := paxostest.NewCluster(t, 5, paxostest.Options{Seed: 8, Deferred: []int{0, 4}})
	defer c.CheckAgreement()
	c.P(1).ProposeAt(1, []byte("111"))
	c.WaitDecided(1, 3, wait)
	c.Start(0)
	c.P(0).ProposeAt(1, []byte("222"))
	if v := c.WaitDecided(1, 4, wait); string(v) != "111" {
		t.Fatalf("late joiner: slot 1 = %q, want 111", v)
	}
	c.Start(4)
	c.P(4).ProposeAt(1, []byte("444"))
	if v := c.WaitDecided(1, 5, wait); string(v) != "111" {
		t.Fatalf("late joiner: slot 1 = %q, want 111", v)
	}
}

func addrs(idx ...int) []string {
	out := make([]string, len(idx))
	for i, x := range idx {
		out[i] = paxostest.Addr(x)
	}
	return out
}

func TestPartition(t *testing.T) {
	t.Parallel()
	const n = 5
	c := paxostest.NewCluster(t, n, paxostest.Options{Seed: 9})
	defer c.CheckAgreement()
	c.Net.Partition(addrs(0, 2), addrs(1, 3), addrs(4))
	seq := paxos.Slot(0)
	c.P(1).ProposeAt(seq, []byte("111"))
	time.Sleep(quiet) // watching for a minority to decide
	if d := c.NDecided(seq); d != 0 {
		t.Fatalf("a minority decided: %d", d)
	}

	// The majority decides without new proposals.
	c.Net.Partition(addrs(0), addrs(1, 2, 3), addrs(4))
	c.WaitDecided(seq, 3, wait)

	// All agree after a full heal.
	c.Net.Heal()
	c.P(0).ProposeAt(seq, []byte("1000"))
	c.P(4).ProposeAt(seq, []byte("1004"))
	c.WaitDecided(seq, n, wait)

	// One peer switches partitions.
	for range 10 {
		seq++
		c.Net.Partition(addrs(0, 1, 2), addrs(3, 4))
		c.P(0).ProposeAt(seq, fmt.Appendf(nil, "%d", seq*10))
		c.P(3).ProposeAt(seq, fmt.Appendf(nil, "%d", seq*10+1))
		c.WaitDecided(seq, 3, wait)
		if d := c.NDecided(seq); d > 3 {
			t.Fatalf("%d peers decided across a partition", d)
		}
		c.Net.Partition(addrs(0, 1), addrs(2, 3, 4))
		c.WaitDecided(seq, n, wait)
	}
}

// TestPartitionChaos regroups the cluster at random, with loss, while
// values are proposed; after healing every slot is decided identically.
func TestPartitionChaos(t *testing.T) {
	t.Parallel()
	const n = 5
	seed := time.Now().UnixNano()
	c := paxostest.NewCluster(t, n, paxostest.Options{Seed: seed})
	defer c.CheckAgreement()
	duration := 20 * time.Second
	if testing.Short() {
		duration = 5 * time.Second
	}
	rng := rand.New(rand.NewSource(seed))
	c.Net.SetDefaultReliability(0.1, 0.2)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	proposed := 0
	wg.Add(1)
	go func() { // proposers
		defer wg.Done()
		r := rand.New(rand.NewSource(seed + 1))
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(r.Intn(20)) * time.Millisecond):
			}
			for range 1 + r.Intn(2) {
				c.P(r.Intn(n)).ProposeAt(paxos.Slot(seq), fmt.Appendf(nil, "%d-%d", seq, r.Intn(1000)))
			}
			mu.Lock()
			proposed = seq + 1
			mu.Unlock()
		}
	}()
	deadline := time.Now().Add(duration)
	for time.Now().Before(deadline) {
		groups := make([][]string, 3)
		for i := range n {
			g := rng.Intn(3)
			groups[g] = append(groups[g], paxostest.Addr(i))
		}
		c.Net.Partition(groups...)
		time.Sleep(time.Duration(rng.Intn(200)) * time.Millisecond) // the chaos schedule itself
	}
	close(stop)
	wg.Wait()
	c.Net.Heal()
	c.Net.SetDefaultReliability(0, 0)
	mu.Lock()
	total := proposed
	mu.Unlock()
	t.Logf("seed %d: %d slots proposed under chaos", seed, total)
	for s := range total {
		c.WaitDecided(paxos.Slot(s), n, 4*wait)
	}
}

func TestLeaderFailover(t *testing.T) {
	t.Parallel()
	c := paxostest.NewCluster(t, 5, paxostest.Options{Seed: 10})
	defer c.CheckAgreement()
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	old := c.Leader(wait)
	if _, err := c.P(old).Propose(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	c.Stop(old)
	other := (old + 1) % 5
	slot, err := c.P(other).Propose(ctx, []byte("after"))
	if err != nil {
		t.Fatal(err)
	}
	nl := c.Leader(wait)
	if nl == old {
		t.Fatalf("stopped node %d still leads", old)
	}
	if v := c.WaitDecided(slot, 4, wait); string(v) != "after" {
		t.Fatalf("slot %d = %q", slot, v)
	}
	// The old leader comes back and catches up.
	c.Start(old)
	c.WaitDecided(slot, 5, wait)
}

// TestStepDownWithLostAccepts: a leader cut off from its peers takes a
// proposal and sends its Accepts, which are all lost, then steps down. No
// acceptor holds the slot, so the new leader does not know it and nothing
// decides it until a later proposal takes it. The first Propose must not
// wait for that: it gives up on the slot and retries through the new
// leader.
func TestStepDownWithLostAccepts(t *testing.T) {
	t.Parallel()
	c := paxostest.NewCluster(t, 3, paxostest.Options{Seed: 21})
	defer c.CheckAgreement()
	old := c.Leader(wait)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c.P(old).Propose(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	others := []int{(old + 1) % 3, (old + 2) % 3}
	c.Net.Partition(addrs(old), addrs(others...))
	type result struct {
		slot paxos.Slot
		err  error
	}
	res := make(chan result, 1)
	go func() {
		slot, err := c.P(old).Propose(ctx, []byte("cut off"))
		res <- result{slot, err}
	}()
	c.WaitFor("a new leader among the others", wait, func() bool {
		return !c.P(old).IsLeader() && (c.P(others[0]).IsLeader() || c.P(others[1]).IsLeader())
	})
	c.Net.Heal()
	r := <-res
	if r.err != nil {
		t.Fatalf("Propose through a step-down with its Accepts lost: %v", r.err)
	}
	if got := c.WaitDecided(r.slot, 3, wait); string(got) != "cut off" {
		t.Fatalf("slot %d decided %q, acknowledged for %q", r.slot, got, "cut off")
	}
}
