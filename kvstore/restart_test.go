package kvstore_test

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/synod-go/synod/kvstore"
	"github.com/synod-go/synod/paxos"
)

// workload runs trackers (clients of every server appending to and
// reading their own keys) until stopped.
type workload struct {
	h        *harness
	trackers []*tracker
	stopc    chan struct{}
	wg       sync.WaitGroup
}

func startWorkload(ctx context.Context, h *harness, name string, n int) *workload {
	w := &workload{h: h, stopc: make(chan struct{})}
	rng := rand.New(rand.NewSource(h.opts.seed))
	for c := range n {
		tr := &tracker{ck: h.client(fmt.Sprintf("%s-%d", name, c)), key: fmt.Sprintf("%s%d", name, c)}
		w.trackers = append(w.trackers, tr)
		r := rand.New(rand.NewSource(rng.Int63()))
		w.wg.Go(func() { tr.run(ctx, r, w.stopc) })
	}
	return w
}

// ops returns the operations completed so far.
func (w *workload) ops() int64 {
	var n int64
	for _, tr := range w.trackers {
		n += tr.ops.Load()
	}
	return n
}

// waitOps waits until the clients completed n more operations.
func (w *workload) waitOps(n int64, timeout time.Duration) {
	w.h.t.Helper()
	target := w.ops() + n
	w.h.c.WaitFor(fmt.Sprintf("%d more client operations", n), timeout, func() bool { return w.ops() >= target })
}

// stop ends the workload and checks every client's reads, then reads
// every key on every running server.
func (w *workload) stop(ctx context.Context) {
	w.h.t.Helper()
	close(w.stopc)
	w.wg.Wait()
	for _, tr := range w.trackers {
		if e := tr.err(); e != "" {
			w.h.t.Fatalf("%s: %s (seed %d)", tr.ck.name, e, w.h.opts.seed)
		}
	}
	for i := range w.h.opts.n {
		if !w.h.c.Running(i) {
			continue
		}
		ck := w.h.client(fmt.Sprintf("verify-%d", i), i)
		for _, tr := range w.trackers {
			ck.mustGet(ctx, tr.key, tr.want)
		}
	}
}

// Servers on Badger logs crash and restart under load, one at a time and
// two at once; then one stays down while its peers snapshot and truncate
// past its log, and recovers by installing a peer's snapshot. Nothing
// acknowledged is lost.
func TestRestart(t *testing.T) {
	h := newHarness(t, harnessOptions{n: 5, seed: 7, badger: true, configure: func(i int, cfg *kvstore.Config) {
		cfg.SnapshotEvery = 40
	}})
	ctx := testCtx(t, 3*time.Minute)
	w := startWorkload(ctx, h, "r", 5)
	w.waitOps(20, 30*time.Second)

	// One at a time.
	for i := range 5 {
		h.c.Crash(i)
		w.waitOps(10, 30*time.Second)
		h.c.Start(i)
	}
	// A minority at once.
	for _, pair := range [][2]int{{1, 3}, {0, 4}} {
		h.c.Crash(pair[0])
		h.c.Crash(pair[1])
		w.waitOps(10, 30*time.Second)
		h.c.Start(pair[0])
		h.c.Start(pair[1])
		w.waitOps(10, 30*time.Second)
	}
	var loaded bool
	for i := range 5 {
		loaded = loaded || h.server(i).Stats().Applied > 0
	}

	// Server 2 stays down while the others go on, snapshot, and compact
	// past everything it holds.
	held := h.server(2).Stats().Applied
	h.c.Crash(2)
	others := []int{0, 1, 3, 4}
	h.c.WaitFor("the other servers to snapshot past server 2's log", time.Minute, func() bool {
		for _, i := range others {
			if h.server(i).Stats().SnapshotSlot <= held+paxos.Slot(100) {
				return false
			}
		}
		return true
	})
	h.c.Start(2)
	h.c.WaitFor("server 2 to install a snapshot", time.Minute, func() bool {
		return h.server(2).Stats().SnapshotsInstalled > 0
	})
	w.waitOps(10, 30*time.Second)
	h.waitApplied([]int{2}, h.maxApplied(others...), 30*time.Second)
	w.stop(ctx)
	st := h.server(2).Stats()
	t.Logf("server 2 after recovery: %+v", st)
	if !loaded {
		t.Errorf("no restarted server had any state")
	}
	h.check()
	h.c.CheckAgreement()
}

// A server with an empty directory joins a cluster whose log was
// compacted long ago: it gets everything from a peer's snapshot.
func TestNewServerCatchesUpBySnapshot(t *testing.T) {
	h := newHarness(t, harnessOptions{n: 3, seed: 8, deferred: []int{2}, configure: func(i int, cfg *kvstore.Config) {
		cfg.SnapshotEvery = 20
		cfg.SnapshotChunkSize = 16 << 10 // many chunks
	}})
	ctx := testCtx(t, 2*time.Minute)
	ck := h.client("client-0", 0, 1)
	for i := range 60 {
		ck.mustAppend(ctx, fmt.Sprintf("k%d", i%7), fmt.Sprintf("%d:%s;", i, string(make([]byte, 3000))))
	}
	h.c.WaitFor("snapshots on the running servers", 30*time.Second, func() bool {
		return h.server(0).Stats().SnapshotSlot > 30 && h.server(1).Stats().SnapshotSlot > 30
	})
	// Lossy links to the new server: some transfers break midway (a lost
	// stream message breaks the stream) and are retried.
	h.c.Net.SetReliability("node-2", 0.02, 0.05)
	h.c.Start(2)
	h.c.WaitFor("server 2 to install a snapshot", time.Minute, func() bool {
		return h.server(2) != nil && h.server(2).Stats().SnapshotsInstalled > 0
	})
	h.c.Net.ClearFaults("node-2")
	t.Logf("server 2: %+v", h.server(2).Stats())
	ck.mustPut(ctx, "after", "join")
	one := h.client("client-2", 2)
	one.mustGet(ctx, "after", "join")
	for k := range 7 {
		want, _, err := ck.Get(ctx, fmt.Sprintf("k%d", k))
		if err != nil {
			t.Fatal(err)
		}
		one.mustGet(ctx, fmt.Sprintf("k%d", k), want)
	}
	h.check()
}
