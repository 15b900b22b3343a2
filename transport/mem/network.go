package mem

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/synod-go/synod/transport"
)

// Options configures a Network. The zero value is a reliable network on the
// real clock with no size limit and no logging.
type Options struct {
	// Seed seeds the one random source behind every fault decision (drops
	// and delays). The same seed gives the same sequence of decisions; with
	// concurrent traffic the order in which messages ask for a decision
	// still varies from run to run. Print it in randomized tests.
	Seed int64

	// Clock measures message delays. Default: the real clock. With a
	// clockwork.FakeClock, delayed messages wait for Advance. Contexts'
	// deadlines are always real time.
	Clock clockwork.Clock

	// Logger receives debug records of fault decisions (drops, broken
	// streams, kills, partitions). It is called with the network's lock
	// held, so its handler must not call back into the Network. Default:
	// discard.
	Logger *slog.Logger

	// MaxMessageSize is the largest request, reply or stream message in
	// bytes; larger ones fail with transport.ErrTooLarge. 0 means no limit.
	MaxMessageSize int
}

// Validate reports whether o is usable.
func (o Options) Validate() error {
	if o.MaxMessageSize < 0 {
		return fmt.Errorf("mem: negative MaxMessageSize %d", o.MaxMessageSize)
	}
	return nil
}

// Network is an in-process network of nodes named by address strings. See
// the package doc for the model. All methods are safe for concurrent use,
// including concurrently with traffic.
type Network struct {
	clock   clockwork.Clock
	log     *slog.Logger
	maxSize int

	mu     sync.Mutex
	rng    *rand.Rand // every fault decision; guarded by mu
	closed bool

	// nodes holds every address the network has heard of: listened on,
	// dialed from, or given a fault setting. Records are never removed, so
	// their settings and counters survive Kill and Restart.
	nodes map[string]*node

	defaults   faults
	partition  map[string]int // address → group; nil: no partition
	inFlight   map[*call]struct{}
	streams    map[*stream]struct{} // streams not yet ended
	sent       map[string]int64     // by address
	delivered  map[string]int64     // by address
	deliveredR map[string]int64     // by route
}

// node is one address's state. Guarded by Network.mu.
type node struct {
	addr string

	// incarnation counts restarts. Conns, listeners and calls remember the
	// incarnation they belong to and die with it.
	incarnation uint64
	killed      bool
	deaf        bool
	mux         *transport.Mux // nil: not listening
	listener    *Listener      // the Listener serving mux, if any

	// ctx lives as long as the incarnation; handlers' contexts derive from
	// it so that Kill cancels them.
	ctx    context.Context
	cancel context.CancelCauseFunc

	drops  *dropRates // nil: network default
	delays *delayRange
}

// faults are the fault settings that apply to one message.
type faults struct {
	dropRates
	delayRange
}

type dropRates struct{ request, reply float64 }

type delayRange struct{ min, max time.Duration }

// NewNetwork returns an empty, reliable network. It panics if opts is
// invalid (see Options.Validate).
func NewNetwork(opts Options) *Network {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	n := &Network{
		clock:      opts.Clock,
		log:        opts.Logger,
		maxSize:    opts.MaxMessageSize,
		rng:        rand.New(rand.NewPCG(uint64(opts.Seed), 0x5eed)),
		nodes:      make(map[string]*node),
		inFlight:   make(map[*call]struct{}),
		streams:    make(map[*stream]struct{}),
		sent:       make(map[string]int64),
		delivered:  make(map[string]int64),
		deliveredR: make(map[string]int64),
	}
	if n.clock == nil {
		n.clock = clockwork.NewRealClock()
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	return n
}

// Listener is a node's registration on the Network, returned by Listen and
// Restart.
type Listener struct {
	n           *Network
	node        *node
	incarnation uint64
}

// Addr returns the address the Listener serves.
func (l *Listener) Addr() string { return l.node.addr }

// Close takes the node's Mux off the network: later requests and stream
// opens to the address fail with transport.ErrUnreachable. Calls whose
// handler is already running still get their replies, and streams already
// open stay open. The node can still dial out, and Listen may register a new
// Mux at the address. Close is idempotent, and a no-op after the node was
// killed.
func (l *Listener) Close() error {
	l.n.mu.Lock()
	defer l.n.mu.Unlock()
	if l.node.listener == l {
		l.node.listener = nil
		l.node.mux = nil
	}
	return nil
}

// Listen registers mux as the server of node addr. It fails if the address
// is empty, already has a listener, or belongs to a killed node (use
// Restart), or if the network is closed.
func (n *Network) Listen(addr string, mux *transport.Mux) (*Listener, error) {
	if addr == "" {
		return nil, errors.New("mem: listen: empty address")
	}
	if mux == nil {
		return nil, fmt.Errorf("mem: listen %q: nil Mux", addr)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("mem: listen %q: %w", addr, transport.ErrClosed)
	}
	nd := n.node(addr)
	switch {
	case nd.killed:
		return nil, fmt.Errorf("mem: listen %q: node is killed; Restart it", addr)
	case nd.mux != nil:
		return nil, fmt.Errorf("mem: listen %q: address in use", addr)
	}
	return n.listen(nd, mux), nil
}

// listen serves mux at nd. Caller holds n.mu.
func (n *Network) listen(nd *node, mux *transport.Mux) *Listener {
	l := &Listener{n: n, node: nd, incarnation: nd.incarnation}
	nd.mux, nd.listener = mux, l
	return l
}

// Dialer returns a Dialer whose Conns send as node from: faults of from
// apply to them, and they die when from is killed. from need not listen (a
// client-only node). Dial never blocks and never fails for an unknown or
// unreachable address; calls check reachability when they are made. A Conn
// belongs to the incarnation of from that dialed it: after Kill and Restart
// of from, Conns dialed before the kill (or while from was killed) keep
// failing with transport.ErrUnreachable, as the Conns of a dead process
// would; dial again.
func (n *Network) Dialer(from string) transport.Dialer {
	return dialer{n: n, from: from}
}

// Close shuts the network down: every call in progress fails with
// transport.ErrClosed, every stream is aborted with it, every handler's
// context is cancelled, and later Listens, calls and streams fail with it.
// Close does not wait for handlers to return. It is idempotent.
func (n *Network) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	err := fmt.Errorf("mem: network closed: %w", transport.ErrClosed)
	for c := range n.inFlight {
		n.finish(c, nil, err)
	}
	for s := range n.streams {
		n.abortStream(s, err, err)
	}
	for _, nd := range n.nodes {
		nd.cancel(err)
		nd.mux, nd.listener = nil, nil
	}
	return nil
}

// node returns addr's record, creating it. Caller holds n.mu.
func (n *Network) node(addr string) *node {
	nd := n.nodes[addr]
	if nd == nil {
		nd = &node{addr: addr}
		nd.ctx, nd.cancel = newNodeContext()
		n.nodes[addr] = nd
	}
	return nd
}

// newNodeContext returns the context of a new incarnation of a node.
func newNodeContext() (context.Context, context.CancelCauseFunc) {
	return context.WithCancelCause(context.Background())
}

// faultsBetween returns the settings for a message between a and b: the
// worse of the two nodes' settings, each node's being its own or else the
// network's default. Caller holds n.mu.
func (n *Network) faultsBetween(a, b *node) faults {
	fa, fb := n.faultsOf(a), n.faultsOf(b)
	return faults{
		dropRates{max(fa.request, fb.request), max(fa.reply, fb.reply)},
		delayRange{max(fa.min, fb.min), max(fa.max, fb.max)},
	}
}

func (n *Network) faultsOf(nd *node) faults {
	f := n.defaults
	if nd.drops != nil {
		f.dropRates = *nd.drops
	}
	if nd.delays != nil {
		f.delayRange = *nd.delays
	}
	return f
}

// chance reports true with probability p. Caller holds n.mu.
func (n *Network) chance(p float64) bool {
	return p > 0 && n.rng.Float64() < p
}

// delay draws a delay uniformly from r. Caller holds n.mu.
func (n *Network) delay(r delayRange) time.Duration {
	if r.max <= r.min {
		return r.min
	}
	return r.min + time.Duration(n.rng.Int64N(int64(r.max-r.min)+1))
}

// path describes one message's way across the network.
type path struct {
	from, to         *node
	fromIncarnation  uint64
	toIncarnation    uint64 // checked only if checkTo
	checkTo          bool
	needListener     bool // the message goes to to's Mux (a request or stream open)
	deafStops        bool // to's deafness stops it (to did not open the exchange)
	route, direction string
}

// check returns why a message on p cannot travel now, or nil. Caller holds
// n.mu.
func (n *Network) check(p path) error {
	var why string
	switch {
	case n.closed:
		return fmt.Errorf("mem: %s %s %s→%s: %w", p.direction, p.route, p.from.addr, p.to.addr, transport.ErrClosed)
	case p.from.killed || p.from.incarnation != p.fromIncarnation:
		why = "sender is down"
	case p.to.killed || (p.checkTo && p.to.incarnation != p.toIncarnation):
		why = "receiver is down"
	case p.needListener && p.to.mux == nil:
		why = "nothing listens at the receiver"
	case p.deafStops && p.to.deaf:
		why = "receiver is deaf"
	case !n.sameSide(p.from.addr, p.to.addr):
		why = "partitioned"
	default:
		return nil
	}
	return fmt.Errorf("mem: %s %s %s→%s: %s: %w", p.direction, p.route, p.from.addr, p.to.addr, why, transport.ErrUnreachable)
}

// dropped is the error of a message lost by a drop decision.
func dropped(p path) error {
	return fmt.Errorf("mem: %s %s %s→%s: dropped: %w", p.direction, p.route, p.from.addr, p.to.addr, transport.ErrUnreachable)
}

// sameSide reports whether a and b are on the same side of the current
// partition. Caller holds n.mu.
func (n *Network) sameSide(a, b string) bool {
	if n.partition == nil || a == b {
		return true
	}
	ga, oka := n.partition[a]
	gb, okb := n.partition[b]
	return oka && okb && ga == gb
}

// tooLarge returns a transport.ErrTooLarge error if size is over the limit.
func (n *Network) tooLarge(what string, size int) error {
	if n.maxSize > 0 && size > n.maxSize {
		return fmt.Errorf("mem: %s of %d bytes over the limit of %d: %w", what, size, n.maxSize, transport.ErrTooLarge)
	}
	return nil
}

// wait blocks for d on n's clock, or until one of the channels is closed.
// It reports whether the full delay passed.
func (n *Network) wait(d time.Duration, stop1, stop2 <-chan struct{}) bool {
	if d <= 0 {
		return true
	}
	t := n.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.Chan():
		return true
	case <-stop1:
	case <-stop2:
	}
	return false
}
