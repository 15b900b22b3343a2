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
		v, err := stalled.Get(ctx, uint64(ch.Slot))
		if err != nil {
			t.Fatalf("slot %d not in the recorded log after it moved again: %v", ch.Slot, err)
		}
		if len(v) == 0 {
			t.Fatalf("slot %d recorded empty", ch.Slot)
		}
	}
	c.CheckAgreement()
}
