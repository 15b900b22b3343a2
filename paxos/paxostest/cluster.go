package paxostest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synod-go/synod/log"
	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/transport"
	"github.com/synod-go/synod/transport/mem"
)

// Options configures a Cluster.
type Options struct {
	// Seed drives the network's faults and the nodes' randomness. It is
	// logged so a failing run can be replayed.
	Seed int64
	// Configure, if set, adjusts each node's Config before New.
	Configure func(i int, cfg *paxos.Config)
	// Deferred lists nodes that New does not start (late joiners).
	Deferred []int
	// Logs, if set, opens node i's three logs; it is called at every Start,
	// so a restarted node reopens them (default: one set of log.Memory per
	// node, kept across restarts).
	Logs func(i int) (promise, accepted, recorded log.Log)
	// OnStart, if set, is called at every Start of node i with its Paxos
	// and its transport Mux, before the node runs: an application layer
	// (kvstore) registers its routes on mux and returns the function that
	// runs it. run is called on its own goroutine with the node's context
	// and must return when that context ends; Stop and Crash wait for it.
	OnStart func(i int, p *paxos.Paxos, mux *transport.Mux) (run func(ctx context.Context))
	// CloseLogs, if set, is called by Crash to close node i's logs while
	// the node is still running, as a crash leaves files mid-write.
	CloseLogs func(i int)
}

// Cluster is n paxos nodes on one mem.Network.
type Cluster struct {
	T       testing.TB
	Net     *mem.Network
	Members []paxos.Member
	Nodes   []*Node
	opts    Options
}

// Node is one member of a Cluster.
type Node struct {
	Index int
	Addr  string
	Paxos *paxos.Paxos

	promise, accepted, recorded log.Log

	mu      sync.Mutex
	cancel  context.CancelFunc
	stopped chan struct{}
}

// Addr returns the address of node i.
func Addr(i int) string { return fmt.Sprintf("node-%d", i) }

// NewCluster builds and starts n nodes. The cluster is stopped at the end
// of the test.
func NewCluster(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	t.Logf("paxostest: cluster of %d, seed %d", n, opts.Seed)
	c := &Cluster{T: t, opts: opts, Net: mem.NewNetwork(mem.Options{Seed: opts.Seed})}
	for i := range n {
		c.Members = append(c.Members, paxos.Member{ID: paxos.NodeID(i + 1), Addr: Addr(i)})
	}
	deferred := make(map[int]bool)
	for _, i := range opts.Deferred {
		deferred[i] = true
	}
	for i := range n {
		nd := &Node{Index: i, Addr: Addr(i)}
		if opts.Logs == nil {
			nd.promise, nd.accepted, nd.recorded = log.NewMemory(), log.NewMemory(), log.NewMemory()
		}
		c.Nodes = append(c.Nodes, nd)
		if !deferred[i] {
			c.Start(i)
		}
	}
	t.Cleanup(func() {
		for i := range c.Nodes {
			c.Stop(i)
		}
		c.Net.Close()
	})
	return c
}

// Config returns the Config node i is built with.
func (c *Cluster) Config(i int) *paxos.Config {
	nd := c.Nodes[i]
	cfg := &paxos.Config{
		ID:                c.Members[i].ID,
		PromiseLog:        nd.promise,
		AcceptedLog:       nd.accepted,
		RecordedLog:       nd.recorded,
		ElectionTimeout:   150 * time.Millisecond,
		HeartbeatInterval: 15 * time.Millisecond,
		RPCTimeout:        200 * time.Millisecond,
		Seed:              c.opts.Seed*131 + int64(i) + 1,
		Volatile:          true,
		Logger:            testLogger(i),
	}
	cfg.DialTransport(c.Net.Dialer(nd.Addr))
	if c.opts.Configure != nil {
		c.opts.Configure(i, cfg)
	}
	return cfg
}

func testLogger(i int) *slog.Logger {
	if os.Getenv("SYNOD_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", i)
}

// Start builds node i from its logs and runs it.
func (c *Cluster) Start(i int) {
	c.T.Helper()
	nd := c.Nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cancel != nil {
		return
	}
	if c.opts.Logs != nil {
		nd.promise, nd.accepted, nd.recorded = c.opts.Logs(i)
	}
	p, err := paxos.New(c.Config(i))
	if err != nil {
		c.T.Fatalf("node %d: %v", i, err)
	}
	mux := transport.NewMux()
	paxos.Register(mux, p)
	var run func(context.Context)
	if c.opts.OnStart != nil {
		run = c.opts.OnStart(i, p, mux)
	}
	if _, err := c.Net.Listen(nd.Addr, mux); err != nil {
		if _, err2 := c.Net.Restart(nd.Addr, mux); err2 != nil {
			c.T.Fatalf("node %d: listen: %v; restart: %v", i, err, err2)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	nd.Paxos, nd.cancel, nd.stopped = p, cancel, make(chan struct{})
	var wg sync.WaitGroup
	if run != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(ctx)
		}()
	}
	go func(stopped chan struct{}) {
		defer close(stopped)
		if err := p.Start(ctx, c.Members); err != nil {
			c.T.Errorf("node %d: %v", i, err)
		}
		wg.Wait()
	}(nd.stopped)
}

// Stop kills node i (as a crash: the network drops it) and waits until all
// its goroutines have returned. Its logs are kept for Start.
func (c *Cluster) Stop(i int) {
	nd := c.Nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cancel == nil {
		return
	}
	c.Net.Kill(nd.Addr)
	nd.cancel()
	<-nd.stopped
	nd.cancel = nil
}

// Crash stops node i abruptly: it is cut off the network and its logs are
// closed (Options.CloseLogs) while it is still running, so writes in flight
// fail as they would in a crash; then its goroutines are waited for.
// Start brings it back from its logs.
func (c *Cluster) Crash(i int) {
	nd := c.Nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cancel == nil {
		return
	}
	c.Net.Kill(nd.Addr)
	if c.opts.CloseLogs != nil {
		c.opts.CloseLogs(i)
	}
	nd.cancel()
	<-nd.stopped
	nd.cancel = nil
}

// Running reports whether node i runs.
func (c *Cluster) Running(i int) bool {
	nd := c.Nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.cancel != nil
}

// Dialer returns a transport.Dialer that sends as a client with address
// from (a name that is not a node's: clients of an application layer).
func (c *Cluster) Dialer(from string) transport.Dialer { return c.Net.Dialer(from) }

// P returns node i's Paxos.
func (c *Cluster) P(i int) *paxos.Paxos {
	nd := c.Nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.Paxos
}

// NDecided returns how many nodes have decided slot, failing the test if
// two of them decided different values.
func (c *Cluster) NDecided(slot paxos.Slot) int {
	c.T.Helper()
	count := 0
	var first []byte
	firstNode := -1
	for i := range c.Nodes {
		p := c.P(i)
		if p == nil {
			continue
		}
		f, v := p.Status(slot)
		if f != paxos.Decided {
			continue
		}
		if firstNode >= 0 && !bytes.Equal(v, first) {
			c.T.Fatalf("slot %d: node %d decided %q but node %d decided %q (seed %d)", slot, firstNode, first, i, v, c.opts.Seed)
		}
		if firstNode < 0 {
			first, firstNode = v, i
		}
		count++
	}
	return count
}

// WaitDecided waits until at least n nodes have decided slot, failing the
// test after timeout. It returns the value.
func (c *Cluster) WaitDecided(slot paxos.Slot, n int, timeout time.Duration) []byte {
	c.T.Helper()
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; ; wait = min(wait*2, 50*time.Millisecond) {
		if c.NDecided(slot) >= n {
			break
		}
		if time.Now().After(deadline) {
			c.T.Fatalf("slot %d: only %d of %d nodes decided within %v (seed %d); %s", slot, c.NDecided(slot), n, timeout, c.opts.Seed, c.describe(slot))
		}
		// Polling a condition with a deadline: nothing to subscribe to
		// across n independent nodes.
		time.Sleep(wait)
	}
	for i := range c.Nodes {
		if p := c.P(i); p != nil {
			if f, v := p.Status(slot); f == paxos.Decided {
				return v
			}
		}
	}
	return nil
}

// describe tells, per node, what it knows of slot: for a failure message.
func (c *Cluster) describe(slot paxos.Slot) string {
	var b strings.Builder
	for i := range c.Nodes {
		p := c.P(i)
		if p == nil {
			fmt.Fprintf(&b, "node %d down; ", i)
			continue
		}
		f, _ := p.Status(slot)
		leader, _ := p.Leader()
		fmt.Fprintf(&b, "node %d: %v, max %d, min %d, leader %d, leading %v; ", i, f, p.Max(), p.Min(), leader, p.IsLeader())
	}
	return b.String()
}

// WaitFor polls cond until it holds, failing after timeout.
func (c *Cluster) WaitFor(what string, timeout time.Duration, cond func() bool) {
	c.T.Helper()
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; !cond(); wait = min(wait*2, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			c.T.Fatalf("timed out after %v waiting for %s (seed %d)", timeout, what, c.opts.Seed)
		}
		time.Sleep(wait)
	}
}

// Leader waits for a node that leads and that a majority follows, and
// returns its index.
func (c *Cluster) Leader(timeout time.Duration) int {
	c.T.Helper()
	leader := -1
	c.WaitFor("a leader", timeout, func() bool {
		for i := range c.Nodes {
			if p := c.P(i); p != nil && c.Running(i) && p.IsLeader() {
				leader = i
				return true
			}
		}
		return false
	})
	return leader
}

// CheckAgreement fails the test if any slot up to the highest known one
// has two different decided values on two nodes.
func (c *Cluster) CheckAgreement() {
	c.T.Helper()
	var top paxos.Slot
	for i := range c.Nodes {
		if p := c.P(i); p != nil {
			top = max(top, p.Max())
		}
	}
	for s := paxos.Slot(0); s <= top; s++ {
		c.NDecided(s)
	}
}
