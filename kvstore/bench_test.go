package kvstore_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkKV measures Put and Get through kvstore.Client against a 3-server
// in-process cluster (memory logs, the paxostest network): throughput,
// latency percentiles, and allocations per operation across the whole
// cluster. Values are 128 bytes over 1,000 keys; clients talk to the
// leader's server.
//
//	go test -run x -bench KV -benchtime 5000x ./kvstore
func BenchmarkKV(b *testing.B) {
	for _, op := range []string{"put", "get"} {
		for _, clients := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/clients=%d", op, clients), func(b *testing.B) {
				benchKV(b, op, clients)
			})
		}
	}
}

func benchKV(b *testing.B, op string, clients int) {
	h := newHarness(b, harnessOptions{n: 3, seed: 1})
	leader := h.c.Leader(10 * time.Second)
	ctx := context.Background()
	value := make([]byte, 128)
	const keys = 1000
	seed := h.client("seed", leader).kv
	for k := range keys {
		if err := seed.Put(ctx, fmt.Sprint("key-", k), value); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([][]time.Duration, clients)
	var next atomic.Int64
	var wg sync.WaitGroup
	kvs := make([]func(context.Context, int) error, clients)
	for w := range clients {
		kv := h.client(fmt.Sprint("bench-", w), leader).kv
		if op == "put" {
			kvs[w] = func(ctx context.Context, i int) error { return kv.Put(ctx, fmt.Sprint("key-", i%keys), value) }
		} else {
			kvs[w] = func(ctx context.Context, i int) error { _, err := kv.Get(ctx, fmt.Sprint("key-", i%keys)); return err }
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for w := range clients {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := kvs[w](ctx, int(i)); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
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
}
