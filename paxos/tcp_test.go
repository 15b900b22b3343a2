package paxos_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/synod-go/synod/log"
	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/transport"
	"github.com/synod-go/synod/transport/tcp"
)

// tcpCluster is a cluster of paxos nodes talking over loopback TCP.
type tcpCluster struct {
	t         *testing.T
	members   []paxos.Member
	nodes     []*tcpNode
	configure func(*paxos.Config) // adjusts every node's Config, if set
}

type tcpNode struct {
	mux    *transport.Mux
	opts   tcp.Options
	srv    *tcp.Server
	dialer *tcp.Dialer
	p      *paxos.Paxos
	cancel context.CancelFunc
	done   chan struct{}
	logs   [3]log.Log
}

func newTCPCluster(t *testing.T, n int, tlsConfig func(i int) *tls.Config) *tcpCluster {
	return newTCPClusterWith(t, n, func(i int, o *tcp.Options) {
		if tlsConfig != nil {
			o.TLS = tlsConfig(i)
		}
	}, nil)
}

// newTCPClusterWith is newTCPCluster with node i's transport options set by
// options and every node's Config adjusted by configure (either may be nil).
func newTCPClusterWith(t *testing.T, n int, options func(i int, o *tcp.Options), configure func(*paxos.Config)) *tcpCluster {
	c := &tcpCluster{t: t, configure: configure}
	for i := range n {
		nd := &tcpNode{mux: transport.NewMux(), logs: [3]log.Log{log.NewMemory(), log.NewMemory(), log.NewMemory()}}
		if options != nil {
			options(i, &nd.opts)
		}
		srv, err := tcp.ListenAddr("127.0.0.1:0", nd.mux, nd.opts)
		if err != nil {
			t.Fatal(err)
		}
		nd.srv = srv
		c.nodes = append(c.nodes, nd)
		c.members = append(c.members, paxos.Member{ID: paxos.NodeID(i + 1), Addr: srv.Addr()})
	}
	for i := range n {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	return c
}

func (c *tcpCluster) start(i int) {
	nd := c.nodes[i]
	d, err := tcp.NewDialer(nd.opts)
	if err != nil {
		c.t.Fatal(err)
	}
	cfg := &paxos.Config{
		ID: c.members[i].ID, PromiseLog: nd.logs[0], AcceptedLog: nd.logs[1], RecordedLog: nd.logs[2],
		ElectionTimeout: 300 * time.Millisecond, HeartbeatInterval: 30 * time.Millisecond, RPCTimeout: 300 * time.Millisecond,
		Volatile: true, // a restart here keeps its log.Memory instances
	}
	if c.configure != nil {
		c.configure(cfg)
	}
	cfg.DialTransport(d)
	p, err := paxos.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	paxos.Register(nd.mux, p)
	if nd.srv == nil {
		if nd.srv, err = tcp.ListenAddr(c.members[i].Addr, nd.mux, nd.opts); err != nil {
			c.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	nd.p, nd.dialer, nd.cancel, nd.done = p, d, cancel, make(chan struct{})
	go func() {
		defer close(nd.done)
		p.Start(ctx, c.members)
	}()
}

// stop closes node i's sockets and stops it.
func (c *tcpCluster) stop(i int) {
	nd := c.nodes[i]
	if nd.cancel == nil {
		return
	}
	if nd.srv != nil {
		nd.srv.Close()
		nd.srv = nil
	}
	nd.cancel()
	<-nd.done
	nd.dialer.Close()
	nd.cancel = nil
}

// learnAll reads slots [0, n) from node i.
func (c *tcpCluster) learnAll(ctx context.Context, i int, n paxos.Slot) []string {
	var out []string
	for next := paxos.Slot(0); next < n; {
		chosen, err := c.nodes[i].p.Learn(ctx, next, 64)
		if err != nil {
			c.t.Fatalf("node %d: learn from %d: %v", i, next, err)
		}
		for _, ch := range chosen {
			out = append(out, fmt.Sprintf("%d:%s", ch.Slot, ch.Value))
			next = ch.Slot + 1
		}
	}
	return out
}

func (c *tcpCluster) agree(ctx context.Context, upto paxos.Slot, running ...int) {
	c.t.Helper()
	want := c.learnAll(ctx, running[0], upto)
	for _, i := range running[1:] {
		got := c.learnAll(ctx, i, upto)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			c.t.Fatalf("node %d learned %v, node %d learned %v", running[0], want, i, got)
		}
	}
}

func TestTCPAgreementFailoverAndHeal(t *testing.T) {
	t.Parallel()
	c := newTCPCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	var last paxos.Slot
	for k := range 9 {
		s, err := c.nodes[k%3].p.Propose(ctx, fmt.Appendf(nil, "v%d", k))
		if err != nil {
			t.Fatal(err)
		}
		last = max(last, s)
	}
	c.agree(ctx, last+1, 0, 1, 2)

	// Failover: the leader's process goes away; the others carry on.
	leader := -1
	for i, nd := range c.nodes {
		if nd.p.IsLeader() {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no leader")
	}
	c.stop(leader)
	other := (leader + 1) % 3
	s, err := c.nodes[other].p.Propose(ctx, []byte("after-failover"))
	if err != nil {
		t.Fatal(err)
	}
	last = max(last, s)
	c.start(leader)
	c.agree(ctx, last+1, 0, 1, 2)

	// Partition: one node refuses connections (its listener is closed);
	// the majority decides; after the heal the node catches up.
	cut := (other + 1) % 3
	c.nodes[cut].srv.Close()
	c.nodes[cut].srv = nil
	s, err = c.nodes[other].p.Propose(ctx, []byte("during-partition"))
	if err != nil {
		t.Fatal(err)
	}
	last = max(last, s)
	srv, err := tcp.ListenAddr(c.members[cut].Addr, c.nodes[cut].mux, c.nodes[cut].opts)
	if err != nil {
		t.Fatal(err)
	}
	c.nodes[cut].srv = srv
	s, err = c.nodes[cut].p.Propose(ctx, []byte("after-heal"))
	if err != nil {
		t.Fatal(err)
	}
	last = max(last, s)
	c.agree(ctx, last+1, 0, 1, 2)
}

func TestTCPMutualTLSCluster(t *testing.T) {
	t.Parallel()
	ca, err := tcp.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	certs := make([]*tcp.NodeCert, 3)
	for i := range certs {
		if certs[i], err = ca.Issue(fmt.Sprintf("node-%d", i), "127.0.0.1", "localhost"); err != nil {
			t.Fatal(err)
		}
	}
	c := newTCPCluster(t, 3, func(i int) *tls.Config { return certs[i].TLSConfig() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	var last paxos.Slot
	for k := range 6 {
		s, err := c.nodes[k%3].p.Propose(ctx, fmt.Appendf(nil, "tls-%d", k))
		if err != nil {
			t.Fatal(err)
		}
		last = max(last, s)
	}
	c.agree(ctx, last+1, 0, 1, 2)
}

// TestTCPLargeValuesCatchUp: a node that was down while large values were
// chosen catches up over TCP from the other acceptors. The replay of what
// it missed (12 values of 64 KiB, 768 KiB) is larger than one frame may
// be (256 KiB here), so it must come in chunks of at most MaxBatchBytes,
// as Accepts and promise pages do; one event of it all would be refused by
// the transport at every try, and the node would never catch up.
func TestTCPLargeValuesCatchUp(t *testing.T) {
	t.Parallel()
	const frame, batch, size, n = 256 << 10, 96 << 10, 64 << 10, 12
	c := newTCPClusterWith(t, 3,
		func(_ int, o *tcp.Options) { o.MaxFrameSize = frame },
		func(cfg *paxos.Config) { cfg.MaxBatchBytes = batch })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.nodes[0].p.Propose(ctx, []byte("first")); err != nil {
		t.Fatal(err)
	}
	c.agree(ctx, 1, 0, 1, 2)
	c.stop(2)
	for i := range n {
		v := bytes.Repeat([]byte{byte('a' + i)}, size)
		if _, err := c.nodes[i%2].p.Propose(ctx, v); err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
	}
	c.start(2)
	c.agree(ctx, n+1, 0, 1, 2)
	if c.nodes[2].p.Metrics().Catchups == 0 {
		t.Fatal("node 2 learned the values without catching up: the test did not exercise the replay")
	}
}

// TestDefaultValueFitsTCPFrame: every message that carries one value —
// an Accept, a promise page, an observe event, a forwarded proposal — fits
// tcp's default frame with a value of paxos's default MaxValueSize and
// large numbers around it. (Before, the frame limit was exactly 16 MiB,
// the default MaxValueSize then: a value of the maximum size was refused
// by the transport at every try, and its Propose never returned.)
func TestDefaultValueFitsTCPFrame(t *testing.T) {
	const big = ^paxos.Slot(0) >> 1
	v := make([]byte, paxos.DefaultMaxValueSize)
	e := paxos.Entry{Slot: big, Ballot: paxos.Ballot(big), Value: v}
	for _, m := range []interface{ MarshalBinary() ([]byte, error) }{
		&paxos.Accept{Ballot: paxos.Ballot(big), Commit: big - 1, Min: big - 1, Done: big, Entries: []paxos.Entry{e}},
		&paxos.Promise{OK: true, Promised: paxos.Ballot(big), Forgotten: big - 1, Next: big, Entries: []paxos.Entry{e}},
		&paxos.ObserveEvent{Commit: big, Forgotten: big - 1, Entries: []paxos.Entry{e}},
		&paxos.ProposeRequest{HasSlot: true, Wait: true, Slot: big, Value: v},
	} {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if len(b) > tcp.DefaultMaxFrameSize {
			t.Errorf("%T with a %d-byte value: %d bytes, over tcp.DefaultMaxFrameSize (%d)", m, len(v), len(b), tcp.DefaultMaxFrameSize)
		}
	}
}
