package paxos_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/paxos/paxostest"
)

// BenchmarkPropose measures Propose at the leader of a 3-node in-process
// cluster: throughput (ops/s), latency percentiles, and allocations per
// chosen value across the whole cluster. Values are 128 bytes.
//
//	go test -run x -bench Propose -benchtime 20000x ./paxos
func BenchmarkPropose(b *testing.B) {
	for _, store := range []string{"memory", "file", "badger"} {
		for _, clients := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/clients=%d", store, clients), func(b *testing.B) {
				benchPropose(b, store, clients, false)
			})
		}
	}
	// Through a follower: Propose there, then wait until that node's own
	// Learn delivers the slot (what an application on it waits for).
	b.Run("memory/follower/clients=1", func(b *testing.B) { benchPropose(b, "memory", 1, true) })
}

func benchPropose(b *testing.B, store string, clients int, viaFollower bool) {
	opts := paxostest.Options{Seed: 1, Configure: func(i int, cfg *paxos.Config) {
		cfg.ElectionTimeout = time.Second
		cfg.HeartbeatInterval = 50 * time.Millisecond
		cfg.RPCTimeout = time.Second
	}}
	var bs *paxostest.DiskStore
	switch store {
	case "badger":
		bs = paxostest.NewBadgerStore(b, 3)
	case "file":
		bs = paxostest.NewFileStore(b, 3)
	}
	if bs != nil {
		opts.Logs, opts.CloseLogs = bs.Logs, bs.Close
	}
	c := paxostest.NewCluster(b, 3, opts)
	leader := c.P(c.Leader(10 * time.Second))
	node := leader
	if viaFollower {
		node = c.P((c.Leader(10*time.Second) + 1) % 3)
	}
	ctx := context.Background()
	value := make([]byte, 128)
	if _, err := leader.Propose(ctx, value); err != nil {
		b.Fatal(err)
	}
	syncs := func() (n uint64) {
		for i := range 3 {
			if bs != nil && bs.DB(i) != nil {
				n += bs.DB(i).Stats().Syncs
			}
		}
		return n
	}
	syncs0 := syncs()
	lat := make([][]time.Duration, clients)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := slices.Clone(value)
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				slot, err := node.Propose(ctx, v)
				if err != nil {
					b.Error(err)
					return
				}
				if viaFollower {
					if _, err := node.Learn(ctx, slot, 1); err != nil {
						b.Error(err)
						return
					}
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if bs != nil {
		b.ReportMetric(float64(syncs()-syncs0)/float64(b.N), "fsyncs/op")
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(pct(0.999), "p99.9-µs")
	m := leader.Metrics()
	if m.Batches > 0 {
		b.ReportMetric(float64(m.Chosen)/float64(m.Batches), "values/batch")
	}
}
