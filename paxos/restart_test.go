package paxos_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/paxos/paxostest"
)

// workload proposes unique values at random running nodes until stop is
// closed, and records each value whose Propose returned, with its slot.
type workload struct {
	mu    sync.Mutex
	acked map[string]paxos.Slot
	wg    sync.WaitGroup
	stop  chan struct{}
}

func startWorkload(c *paxostest.Cluster, n, clients int, seed int64) *workload {
	w := &workload{acked: make(map[string]paxos.Slot), stop: make(chan struct{})}
	for k := range clients {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			rng := rand.New(rand.NewSource(seed + int64(k)))
			for seq := 0; ; seq++ {
				select {
				case <-w.stop:
					return
				default:
				}
				i := rng.Intn(n)
				p := c.P(i)
				if p == nil || !c.Running(i) {
					continue
				}
				v := fmt.Sprintf("c%d-%d", k, seq)
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				slot, err := p.Propose(ctx, []byte(v))
				cancel()
				if err == nil {
					w.mu.Lock()
					w.acked[v] = slot
					w.mu.Unlock()
				}
			}
		}()
	}
	return w
}

func (w *workload) finish() map[string]paxos.Slot {
	close(w.stop)
	w.wg.Wait()
	return w.acked
}

// checkAcked fails unless every acknowledged value is chosen at its slot on
// every node.
func checkAcked(t *testing.T, c *paxostest.Cluster, n int, acked map[string]paxos.Slot) {
	t.Helper()
	if len(acked) == 0 {
		t.Fatal("no proposal was acknowledged")
	}
	for v, slot := range acked {
		if got := c.WaitDecided(slot, n, 2*wait); string(got) != v {
			t.Fatalf("acknowledged %q at slot %d, but the slot holds %q", v, slot, got)
		}
	}
	c.CheckAgreement()
}

// diskBackends are the durable log backends the crash tests run on.
var diskBackends = []struct {
	name string
	new  func(t testing.TB, n int) *paxostest.DiskStore
}{
	{"badger", paxostest.NewBadgerStore},
	{"file", paxostest.NewFileStore},
}

func diskCluster(t *testing.T, n int, seed int64, newStore func(t testing.TB, n int) *paxostest.DiskStore) *paxostest.Cluster {
	store := newStore(t, n)
	return paxostest.NewCluster(t, n, paxostest.Options{Seed: seed, Logs: store.Logs, CloseLogs: store.Close})
}

// TestCrashRestart crashes nodes of a cluster on disk under load — the
// leader, a follower, and (with 5 nodes) two at once — and restarts them
// from their directories, on each durable backend.
func TestCrashRestart(t *testing.T) {
	t.Parallel()
	for _, b := range diskBackends {
		for _, n := range []int{3, 5} {
			t.Run(fmt.Sprintf("%s/%d", b.name, n), func(t *testing.T) {
				testCrashRestart(t, n, b.new)
			})
		}
	}
}

func testCrashRestart(t *testing.T, n int, newStore func(t testing.TB, n int) *paxostest.DiskStore) {
	seed := time.Now().UnixNano()
	c := diskCluster(t, n, seed, newStore)
	rng := rand.New(rand.NewSource(seed))
	w := startWorkload(c, n, 4, seed)
	rounds := 8
	if testing.Short() {
		rounds = 3
	}
	for r := range rounds {
		var victims []int
		switch {
		case r%3 == 0:
			victims = []int{c.Leader(wait)}
		case n == 5 && r%3 == 1:
			a := rng.Intn(n)
			victims = []int{a, (a + 1 + rng.Intn(n-1)) % n}
		default:
			victims = []int{rng.Intn(n)}
		}
		for _, v := range victims {
			c.Crash(v)
		}
		time.Sleep(time.Duration(50+rng.Intn(250)) * time.Millisecond) // the schedule: down for a while under load
		for _, v := range victims {
			c.Start(v)
		}
		time.Sleep(time.Duration(50+rng.Intn(250)) * time.Millisecond)
	}
	acked := w.finish()
	t.Logf("seed %d: %d proposals acknowledged across %d crash rounds", seed, len(acked), rounds)
	checkAcked(t, c, n, acked)
}

var errCrash = errors.New("injected crash")

// crashAt runs a 3-node cluster on disk under load where one node crashes
// (and restarts from disk) at the given stage of a request, on each durable
// backend.
func crashAt(t *testing.T, stage string) {
	for _, b := range diskBackends {
		t.Run(b.name, func(t *testing.T) { crashAtOn(t, stage, b.new) })
	}
}

func crashAtOn(t *testing.T, stage string, newStore func(t testing.TB, n int) *paxostest.DiskStore) {
	const n = 3
	seed := time.Now().UnixNano()
	c := diskCluster(t, n, seed, newStore)
	crashes := make(chan int, 16)
	var mu sync.Mutex
	rng := rand.New(rand.NewSource(seed))
	arm := func(i int) {
		var once sync.Once
		paxos.SetAcceptorFault(c.P(i), func(s string) error {
			mu.Lock()
			hit := s == stage && rng.Intn(20) == 0
			mu.Unlock()
			if !hit {
				return nil
			}
			once.Do(func() { crashes <- i })
			return errCrash
		})
	}
	for i := range n {
		arm(i)
	}
	w := startWorkload(c, n, 4, seed)
	deadline := time.After(3 * time.Second)
	restarts := 0
loop:
	for {
		select {
		case i := <-crashes:
			c.Crash(i)
			c.Start(i)
			arm(i)
			restarts++
		case <-deadline:
			break loop
		}
	}
	for i := range n {
		paxos.SetAcceptorFault(c.P(i), nil)
	}
	acked := w.finish()
	t.Logf("seed %d: %d crashes at %q, %d proposals acknowledged", seed, restarts, stage, len(acked))
	if restarts == 0 {
		t.Fatal("no crash was injected")
	}
	checkAcked(t, c, n, acked)
}

func TestCrashBetweenPersistAndReply(t *testing.T) {
	t.Parallel()
	crashAt(t, "persisted")
}

func TestCrashBetweenReceiveAndPersist(t *testing.T) {
	t.Parallel()
	crashAt(t, "received")
}
