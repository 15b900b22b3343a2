package kvstore_test

import (
	"fmt"
	"math/rand"
	"runtime"
	"testing"
	"time"

	"github.com/synod-go/synod/kvstore"
	"github.com/synod-go/synod/paxos"
)

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Values overwritten and applied are not kept: after two rounds of ten
// 1 MB values overwritten with small ones, snapshots, Compact and Done
// release the logs, and the heap returns close to where it started.
func TestMemory(t *testing.T) {
	const nkeys, size = 10, 1 << 20
	h := newHarness(t, harnessOptions{n: 3, seed: 11,
		configure: func(i int, cfg *kvstore.Config) {
			cfg.SnapshotEvery = 8
		},
		// Under -race a 1 MB copy takes about 8 ms of CPU, and a Put of
		// one is copied some twenty times on its way through the three
		// nodes: with the harness's default timeouts (150 ms to elect),
		// a loaded machine lost every leader before it could commit.
		paxos: func(i int, cfg *paxos.Config) {
			cfg.ElectionTimeout = 2 * time.Second
			cfg.HeartbeatInterval = 50 * time.Millisecond
			cfg.RPCTimeout = 2 * time.Second
		},
	})
	ctx := testCtx(t, 2*time.Minute)
	ck := h.client("client-0")
	ck.digest = true // the history keeps hashes of the big values, not the values
	single := []*client{h.client("s0", 0), h.client("s1", 1), h.client("s2", 2)}
	for _, c := range single {
		c.digest = true
	}
	ck.mustPut(ctx, "warm", "up")
	base := heapAlloc()

	rng := rand.New(rand.NewSource(h.opts.seed))
	buf := make([]byte, size)
	for round := range 2 {
		for k := range nkeys {
			rng.Read(buf)
			v := string(buf)
			key := fmt.Sprint(k)
			ck.mustPut(ctx, key, v)
			single[(k+round)%3].mustGet(ctx, key, v)
		}
	}
	peak := heapAlloc()
	// Overwrite with small values, twice, so that the snapshot kept and
	// the log kept behind it (one snapshot interval) hold only those.
	for round := range 2 {
		for k := range nkeys {
			ck.mustPut(ctx, fmt.Sprint(k), fmt.Sprintf("small %d", round))
		}
	}
	last := h.maxApplied(0, 1, 2)
	h.waitApplied([]int{0, 1, 2}, last, 30*time.Second)
	h.c.WaitFor("snapshots past the overwrites", 30*time.Second, func() bool {
		for i := range 3 {
			if h.server(i).Stats().SnapshotSlot+paxos.Slot(8) < last {
				return false
			}
		}
		return true
	})
	for _, c := range single {
		for k := range nkeys {
			c.mustGet(ctx, fmt.Sprint(k), "small 1")
		}
	}
	end := heapAlloc()
	t.Logf("heap: base %.1f MB, after the big values %.1f MB, at the end %.1f MB", mb(base), mb(peak), mb(end))
	if end > base+60<<20 {
		t.Fatalf("heap grew from %.1f MB to %.1f MB after the values were overwritten (allowed: +60 MB)", mb(base), mb(end))
	}
	h.check()
}

func mb(n uint64) float64 { return float64(n) / (1 << 20) }
