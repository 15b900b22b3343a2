package paxos_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synod-go/synod/log"
	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/paxos/paxostest"
)

// gatedLog is a log.Memory whose Writes wait until the gate opens.
type gatedLog struct {
	*log.Memory
	mu   sync.Mutex
	gate chan struct{}
}

func (g *gatedLog) Write(ctx context.Context, recs ...log.Record) error {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	select {
	case <-gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Memory.Write(ctx, recs...)
}

func (g *gatedLog) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.gate)
}

// Delivery does not wait for the recorded log: with node 0's recorded log
// stalled, its Learn and Status still serve every chosen value, and once
// the log moves again it holds them all.
func TestDeliveryDoesNotWaitForRecordedLog(t *testing.T) {
	t.Parallel()
	stalled := &gatedLog{Memory: log.NewMemory(), gate: make(chan struct{})}
	c := paxostest.NewCluster(t, 3, paxostest.Options{Seed: 7, Logs: func(i int) (log.Log, log.Log, log.Log) {
		rec := log.Log(log.NewMemory())
		if i == 0 {
			rec = stalled
		}
		return log.NewMemory(), log.NewMemory(), rec
	}})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	const n = 20
	for k := range n {
		if _, err := c.P(k%3).Propose(ctx, fmt.Appendf(nil, "v%d", k)); err != nil {
			t.Fatal(err)
		}
	}
	var got []paxos.Chosen
	for len(got) < n {
		ch, err := c.P(0).Learn(ctx, paxos.Slot(len(got)), n)
		if err != nil {
			t.Fatalf("Learn(%d) with the recorded log stalled: %v", len(got), err)
		}
		got = append(got, ch...)
	}
	for s := range paxos.Slot(n) {
		if f, _ := c.P(0).Status(s); f != paxos.Decided {
			t.Fatalf("slot %d is %v on node 0, want Decided", s, f)
		}
	}
	if last, err := stalled.Last(ctx); err == nil {
		t.Fatalf("the stalled recorded log holds slot %d already", last)
	}

	stalled.open()
	if err := paxos.Sync(ctx, c.P(0)); err != nil {
		t.Fatal(err)
	}
	for _, ch := range got {
		ok, err := paxos.RecordedCovers(ctx, stalled, ch.Slot)
		if err != nil || !ok {
			t.Fatalf("slot %d not in the recorded log after it moved again: %v, %v", ch.Slot, ok, err)
		}
	}
	c.CheckAgreement()
}

// A node records the slots its own acceptor holds as references into the
// accepted log, not copies. After a crash, a compaction that cuts through a
// references record, and a restart, it still serves every slot it kept,
// with the value that was chosen, through Learn and Status.
func TestRecordedReferencesSurviveRestart(t *testing.T) {
	t.Parallel()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	store := paxostest.NewBadgerStore(t, 3)
	c := paxostest.NewCluster(t, 3, paxostest.Options{Seed: seed, Logs: store.Logs, CloseLogs: store.Close})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	leader := c.Leader(wait)
	const n = 400
	var mu sync.Mutex
	want := make(map[paxos.Slot]string)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for k := w; k < n; k += 8 {
				v := fmt.Sprintf("value-%d-%s", k, strings.Repeat("x", k%50))
				s, err := c.P(leader).Propose(ctx, []byte(v))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				want[s] = v
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	var last paxos.Slot
	for s := range want {
		last = max(last, s)
	}
	c.WaitDecided(last, 3, wait)
	cut := last / 2
	for _, i := range []int{leader, (leader + 1) % 3} {
		if err := paxos.Sync(ctx, c.P(i)); err != nil {
			t.Fatal(err)
		}
		_, _, rec := store.Logs(i)
		refs, err := paxos.RecordedRefs(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		if refs == 0 {
			t.Fatalf("node %d recorded no references into its accepted log", i)
		}
		t.Logf("node %d: %d references records for %d slots", i, refs, last+1)
		from := paxos.Slot(0)
		if i == leader {
			// Cut through the middle of the references.
			c.P(i).Compact(cut)
			c.WaitFor("the recorded log truncated", wait, func() bool {
				f, err := rec.First(ctx)
				return err == nil && f == uint64(cut)
			})
			from = cut
		}
		c.Crash(i)
		// Alone, the restarted node can serve only what its own logs hold.
		var others []string
		for j := range 3 {
			if j != i {
				others = append(others, paxostest.Addr(j))
			}
		}
		c.Net.Partition([]string{paxostest.Addr(i)}, others)
		c.Start(i)
		p := c.P(i)
		if from > 0 {
			if _, err := p.Learn(ctx, from-1, 1); !errors.Is(err, paxos.ErrForgotten) {
				t.Fatalf("node %d: Learn(%d) below its compaction = %v, want ErrForgotten", i, from-1, err)
			}
		}
		for next := from; next <= last; {
			ch, err := p.Learn(ctx, next, 64)
			if err != nil {
				t.Fatalf("node %d: Learn(%d) after restart: %v", i, next, err)
			}
			for _, e := range ch {
				if e.Slot != next {
					t.Fatalf("node %d: Learn returned slot %d, want %d", i, e.Slot, next)
				}
				if v, ok := want[e.Slot]; ok && string(e.Value) != v {
					t.Fatalf("node %d: slot %d holds %q after restart, want %q", i, e.Slot, e.Value, v)
				}
				next++
			}
		}
		for s, v := range want {
			if s < from {
				continue
			}
			if f, got := p.Status(s); f != paxos.Decided || string(got) != v {
				t.Fatalf("node %d: Status(%d) = %v %q after restart, want Decided %q", i, s, f, got, v)
			}
		}
		c.Net.Heal()
	}
	c.CheckAgreement()
}
