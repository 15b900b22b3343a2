package kvstore_test

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synod-go/synod/paxos/paxostest"
)

// group lists the addresses of the given nodes and clients, for Partition
// (a client named in no group is cut off from every server).
func group(nodes []int, clients ...*client) []string {
	var g []string
	for _, i := range nodes {
		g = append(g, paxostest.Addr(i))
	}
	for _, c := range clients {
		g = append(g, c.name)
	}
	return g
}

// Five servers split 3|2: the minority's clients block, the majority
// serves; a minority server that rejoins a majority completes its blocked
// Put, and the last one its blocked Get once healed.
func TestPartition(t *testing.T) {
	h := newHarness(t, harnessOptions{n: 5, seed: 3})
	ctx := testCtx(t, 2*time.Minute)
	all := h.client("client-all")
	all.mustPut(ctx, "1", "13")

	maj := h.client("client-maj", 2)
	min3 := h.client("client-min3", 3)
	min4 := h.client("client-min4", 4)
	h.c.Net.Partition(group([]int{0, 1, 2}, maj, all), group([]int{3, 4}, min3, min4))

	maj.mustPut(ctx, "1", "14")
	maj.mustGet(ctx, "1", "14")

	putDone, getDone := make(chan error, 1), make(chan string, 1)
	go func() { putDone <- min3.Put(ctx, "1", "15") }()
	go func() {
		v, _, err := min4.Get(ctx, "1")
		if err != nil {
			v = "error: " + err.Error()
		}
		getDone <- v
	}()
	// Nothing must complete on the minority side in this window.
	select {
	case err := <-putDone:
		t.Fatalf("Put on the minority side completed (err %v)", err)
	case v := <-getDone:
		t.Fatalf("Get on the minority side completed with %q", v)
	case <-time.After(time.Second):
	}
	// The majority keeps serving meanwhile.
	maj.mustPut(ctx, "2", "a")
	maj.mustGet(ctx, "2", "a")
	all.mustGet(ctx, "1", "14")

	// Server 3 rejoins a majority: its blocked Put completes.
	h.c.Net.Partition(group([]int{0, 1, 2, 3}, maj, all, min3), group([]int{4}, min4))
	select {
	case err := <-putDone:
		if err != nil {
			t.Fatalf("Put after rejoining: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("Put did not complete within 3s of its server rejoining a majority (seed %d)", h.opts.seed)
	}
	select {
	case v := <-getDone:
		t.Fatalf("Get on the isolated server completed with %q", v)
	default:
	}
	h.c.Net.Heal()
	select {
	case v := <-getDone:
		if v != "15" {
			t.Fatalf("Get after healing = %q, want %q", v, "15")
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Get did not complete within 10s of healing (seed %d)", h.opts.seed)
	}
	for i := range 5 {
		h.client(fmt.Sprintf("check-%d", i), i).mustGet(ctx, "1", "15")
	}
	h.check()
	h.c.CheckAgreement()
}

// With 10% of requests and 20% of replies lost everywhere, sequential
// Appends stay correct and concurrent ones each apply exactly once, in
// each client's order.
func TestUnreliable(t *testing.T) {
	h := newHarness(t, harnessOptions{n: 5, seed: 4})
	ctx := testCtx(t, 2*time.Minute)
	h.c.Net.SetDefaultReliability(0.1, 0.2)

	const nclients, nappends = 5, 5
	var wg sync.WaitGroup
	for c := range nclients {
		ck := h.client(fmt.Sprintf("seq-%d", c))
		wg.Go(func() {
			key, want := fmt.Sprintf("own-%d", c), ""
			for i := range nappends {
				v := fmt.Sprintf("x %d %d y", c, i)
				if err := ck.Append(ctx, key, v); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				want += v
				if got, _, err := ck.Get(ctx, key); err != nil || got != want {
					t.Errorf("%s: Get = %q, %v; want %q (seed %d)", key, got, err, want, h.opts.seed)
					return
				}
			}
		})
	}
	wg.Wait()

	for c := range nclients {
		ck := h.client(fmt.Sprintf("conc-%d", c))
		wg.Go(func() {
			for i := range nappends {
				if err := ck.Append(ctx, "shared", fmt.Sprintf("x %d %d y", c, i)); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				// Reads pin the order of the appends in the history, which
				// keeps the linearizability check short.
				if _, _, err := ck.Get(ctx, "shared"); err != nil {
					t.Errorf("Get: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	v, _, err := h.client("reader").Get(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	checkAppends(t, v, nclients, nappends, h.opts.seed)
	h.c.Net.SetDefaultReliability(0, 0)
	h.check()
	h.c.CheckAgreement()
}

// checkAppends checks that v holds "x c i y" exactly once for every client
// c and i, in increasing i for each c.
func checkAppends(t *testing.T, v string, nclients, nappends int, seed int64) {
	t.Helper()
	for c := range nclients {
		last := -1
		for i := range nappends {
			s := fmt.Sprintf("x %d %d y", c, i)
			pos := strings.Index(v, s)
			if pos < 0 {
				t.Fatalf("%q missing from %q (seed %d)", s, v, seed)
			}
			if strings.LastIndex(v, s) != pos {
				t.Fatalf("%q twice in %q (seed %d)", s, v, seed)
			}
			if pos < last {
				t.Fatalf("%q before the append preceding it in %q (seed %d)", s, v, seed)
			}
			last = pos
		}
	}
}

// tracker is a client appending to its own key and checking every Get
// against what it appended.
type tracker struct {
	ck      *client
	key     string
	want    string
	ops     atomic.Int64
	errText atomic.Value
}

// run appends and reads until stop is closed, then finishes the operation
// in progress and returns.
func (tr *tracker) run(ctx context.Context, rng *rand.Rand, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		if rng.Intn(2) == 0 {
			v := fmt.Sprintf("%s.%d;", tr.key, i)
			if err := tr.ck.Append(ctx, tr.key, v); err != nil {
				tr.errText.Store(fmt.Sprintf("Append: %v", err))
				return
			}
			tr.want += v
		} else {
			got, _, err := tr.ck.Get(ctx, tr.key)
			if err != nil {
				tr.errText.Store(fmt.Sprintf("Get: %v", err))
				return
			}
			if got != tr.want {
				tr.errText.Store(fmt.Sprintf("Get(%q) = %q, want %q", tr.key, got, tr.want))
				return
			}
		}
		tr.ops.Add(1)
	}
}

func (tr *tracker) err() string {
	s, _ := tr.errText.Load().(string)
	return s
}

// Clients keep working on the minority side of a partition while the
// majority moves on; after healing, every one of them finishes correctly.
func TestHole(t *testing.T) {
	h := newHarness(t, harnessOptions{n: 5, seed: 5})
	ctx := testCtx(t, 2*time.Minute)
	rng := rand.New(rand.NewSource(h.opts.seed))
	for iter := range 3 {
		stop := make(chan struct{})
		var trackers []*tracker
		var wg sync.WaitGroup
		var left, right []*client
		for c := range 4 {
			node := []int{0, 1, 3, 4}[c]
			ck := h.client(fmt.Sprintf("hole-%d-%d", iter, c), node)
			if node < 2 {
				left = append(left, ck)
			} else {
				right = append(right, ck)
			}
			tr := &tracker{ck: ck, key: fmt.Sprintf("k%d-%d", iter, c)}
			trackers = append(trackers, tr)
			r := rand.New(rand.NewSource(rng.Int63()))
			wg.Go(func() { tr.run(ctx, r, stop) })
		}
		// Minority {0,1}, majority {2,3,4}.
		h.c.Net.Partition(group([]int{0, 1}, left...), group([]int{2, 3, 4}, right...))
		time.Sleep(time.Second) // chaos schedule: the majority works on
		before := trackers[0].ops.Load() + trackers[1].ops.Load()
		time.Sleep(500 * time.Millisecond) // a window in which the minority must not progress
		if after := trackers[0].ops.Load() + trackers[1].ops.Load(); after > before {
			t.Fatalf("minority clients completed %d operations while cut off (seed %d)", after-before, h.opts.seed)
		}
		if trackers[2].ops.Load()+trackers[3].ops.Load() == 0 {
			t.Fatalf("majority clients made no progress (seed %d)", h.opts.seed)
		}
		h.c.Net.Heal()
		healed := time.Now()
		close(stop)
		wg.Wait()
		t.Logf("iteration %d: clients finished %v after healing", iter, time.Since(healed).Round(time.Millisecond))
		for _, tr := range trackers {
			if e := tr.err(); e != "" {
				t.Fatalf("%s: %s (seed %d)", tr.ck.name, e, h.opts.seed)
			}
			tr.ck.mustGet(ctx, tr.key, tr.want)
		}
	}
	h.check()
	h.c.CheckAgreement()
}

// Five servers on an unreliable network regrouped at random into three
// groups every 0-200ms; ten clients append and read their own keys. After
// healing every client finishes and every read matched.
func TestManyPartitions(t *testing.T) {
	h := newHarness(t, harnessOptions{n: 5, seed: 6})
	ctx := testCtx(t, 3*time.Minute)
	rng := rand.New(rand.NewSource(h.opts.seed))
	h.c.Net.SetDefaultReliability(0.1, 0.2)
	const nclients = 10
	var trackers []*tracker
	var clients []*client
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range nclients {
		ck := h.client(fmt.Sprintf("many-%d", c))
		clients = append(clients, ck)
		tr := &tracker{ck: ck, key: fmt.Sprintf("k%d", c)}
		trackers = append(trackers, tr)
		r := rand.New(rand.NewSource(rng.Int63()))
		wg.Go(func() { tr.run(ctx, r, stop) })
	}
	duration := 20 * time.Second
	if testing.Short() {
		duration = 5 * time.Second
	}
	regroups := 0
	for end := time.Now().Add(duration); time.Now().Before(end); regroups++ {
		groups := make([][]string, 3)
		for i := range 5 {
			g := rng.Intn(3)
			groups[g] = append(groups[g], paxostest.Addr(i))
		}
		for _, ck := range clients {
			g := rng.Intn(3)
			groups[g] = append(groups[g], ck.name)
		}
		h.c.Net.Partition(groups...)
		time.Sleep(time.Duration(rng.Int63n(int64(200 * time.Millisecond)))) // chaos schedule
	}
	h.c.Net.Heal()
	h.c.Net.SetDefaultReliability(0, 0)
	healed := time.Now()
	close(stop)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(60 * time.Second):
		t.Fatalf("clients did not finish within 60s of healing (seed %d)", h.opts.seed)
	}
	recovery := time.Since(healed).Round(time.Millisecond)
	var total int64
	for _, tr := range trackers {
		if e := tr.err(); e != "" {
			t.Fatalf("%s: %s (seed %d)", tr.ck.name, e, h.opts.seed)
		}
		tr.ck.mustGet(ctx, tr.key, tr.want)
		total += tr.ops.Load()
	}
	t.Logf("%d regroupings, %d operations completed during chaos; clients finished %v after healing",
		regroups, total, recovery)
	if total == 0 {
		t.Fatalf("no operation completed during chaos (seed %d)", h.opts.seed)
	}
	h.check()
	h.c.CheckAgreement()
}
