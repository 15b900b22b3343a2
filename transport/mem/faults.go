package mem

import (
	"fmt"
	"math"
	"time"

	"github.com/synod-go/synod/transport"
)

// SetDefaultReliability sets the drop probabilities of every node that has no
// setting of its own (see SetReliability). It panics unless both are in
// [0, 1].
func (n *Network) SetDefaultReliability(dropRequest, dropReply float64) {
	checkProbability(dropRequest, dropReply)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.defaults.dropRates = dropRates{dropRequest, dropReply}
}

// SetReliability sets node addr's own drop probabilities, overriding the
// network's default. They apply to the calls and streams the node makes and
// the ones it serves; a message between two nodes gets the larger of their
// two probabilities. dropRequest applies to requests, stream opens and
// messages from a stream's opener to its server; dropReply to replies and to
// messages from a stream's server to its opener. A dropped request fails the
// call with transport.ErrUnreachable without running the handler; a dropped
// reply fails it after the handler ran; a dropped stream message breaks the
// stream. It panics unless both are in [0, 1].
func (n *Network) SetReliability(addr string, dropRequest, dropReply float64) {
	checkProbability(dropRequest, dropReply)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.node(addr).drops = &dropRates{dropRequest, dropReply}
}

// SetDefaultDelay sets the delay range of every node that has no setting of
// its own (see SetDelay). It panics unless 0 <= minDelay <= maxDelay.
func (n *Network) SetDefaultDelay(minDelay, maxDelay time.Duration) {
	checkDelay(minDelay, maxDelay)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.defaults.delayRange = delayRange{minDelay, maxDelay}
}

// SetDelay sets node addr's own delay range, overriding the network's
// default. Every message of a call or stream the node makes or serves waits
// a delay drawn uniformly from [minDelay, maxDelay] on the network's clock; a message
// between two nodes uses the larger of their two bounds at each end of the
// range. Concurrent calls overtake one another when their delays differ;
// messages of one stream keep their order (each waits at least until the one
// before it is delivered). It panics unless 0 <= minDelay <= maxDelay.
func (n *Network) SetDelay(addr string, minDelay, maxDelay time.Duration) {
	checkDelay(minDelay, maxDelay)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.node(addr).delays = &delayRange{minDelay, maxDelay}
}

// ClearFaults removes node addr's own drop and delay settings, so that the
// network's defaults apply to it again.
func (n *Network) ClearFaults(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	nd := n.node(addr)
	nd.drops, nd.delays = nil, nil
}

func checkProbability(ps ...float64) {
	for _, p := range ps {
		if !(p >= 0 && p <= 1) || math.IsNaN(p) {
			panic(fmt.Sprintf("mem: drop probability %v not in [0, 1]", p))
		}
	}
}

func checkDelay(minDelay, maxDelay time.Duration) {
	if minDelay < 0 || maxDelay < minDelay {
		panic(fmt.Sprintf("mem: bad delay range [%v, %v]", minDelay, maxDelay))
	}
}

// Partition splits the network: nodes in different groups cannot exchange
// messages, and a node named in no group is isolated on its own (it can
// reach only itself), including nodes that first appear after the call. A
// node always reaches itself. Partition replaces any previous partition.
//
// It applies at once to traffic in progress: calls between nodes now apart
// fail with transport.ErrUnreachable (their handlers' contexts are
// cancelled), and streams between them break. It panics if a node is named in
// two groups.
func (n *Network) Partition(groups ...[]string) {
	p := make(map[string]int)
	for g, group := range groups {
		for _, addr := range group {
			if prev, ok := p[addr]; ok && prev != g {
				panic(fmt.Sprintf("mem: Partition: %q is in groups %d and %d", addr, prev, g))
			}
			p[addr] = g
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.partition = p
	n.log.Debug("mem: partition", "groups", groups)
	for c := range n.inFlight {
		if !n.sameSide(c.from.addr, c.to.addr) {
			n.finish(c, nil, fmt.Errorf("mem: call %s %s→%s: partitioned: %w", c.route, c.from.addr, c.to.addr, transport.ErrUnreachable))
		}
	}
	for s := range n.streams {
		if !n.sameSide(s.opener.addr, s.server.addr) {
			err := fmt.Errorf("mem: stream %s %s→%s: partitioned: %w", s.route, s.opener.addr, s.server.addr, transport.ErrUnreachable)
			n.abortStream(s, err, err)
		}
	}
}

// Heal removes the partition: every node can reach every other again.
// Streams broken by the partition stay broken.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.partition = nil
	n.log.Debug("mem: heal")
}

// Deafen makes node addr deaf (deaf true) or hearing again (false). Nothing
// sent to a deaf node reaches it: requests and stream opens to it fail with
// transport.ErrUnreachable without running a handler, and streams it serves
// break (at once, and any opened while it is deaf fail). But what it sends
// still goes out, and the answers come back: replies to its own calls, and
// both directions of streams it opened. Calls whose request reached it
// before it went deaf still get their replies. It is the node whose listener
// is gone but whose outgoing connections still work.
func (n *Network) Deafen(addr string, deaf bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	nd := n.node(addr)
	nd.deaf = deaf
	n.log.Debug("mem: deafen", "addr", addr, "deaf", deaf)
	if !deaf {
		return
	}
	for s := range n.streams {
		if s.server == nd && s.opener != nd {
			err := fmt.Errorf("mem: stream %s %s→%s: receiver is deaf: %w", s.route, s.opener.addr, addr, transport.ErrUnreachable)
			n.abortStream(s, err, err)
		}
	}
}

// Kill stops node addr as if its process crashed: its listener is removed;
// calls it makes and calls to it fail at once with transport.ErrUnreachable;
// its handlers' contexts are cancelled and their replies discarded; its
// streams break; and its Conns stay dead even after Restart. Its fault
// settings and counters are kept. Killing a killed node is a no-op.
func (n *Network) Kill(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	nd := n.node(addr)
	if nd.killed {
		return
	}
	nd.killed = true
	nd.mux, nd.listener = nil, nil
	err := fmt.Errorf("mem: node %s killed: %w", addr, transport.ErrUnreachable)
	nd.cancel(err)
	n.log.Debug("mem: kill", "addr", addr)
	for c := range n.inFlight {
		if c.from == nd || c.to == nd {
			n.finish(c, nil, err)
		}
	}
	for s := range n.streams {
		if s.opener == nd || s.server == nd {
			n.abortStream(s, err, err)
		}
	}
}

// Restart brings killed node addr back as a new process: a new incarnation
// that serves mux, or serves nothing if mux is nil (it can still dial out).
// The Listener is nil when mux is nil. It fails if the node is not killed or
// the network is closed.
func (n *Network) Restart(addr string, mux *transport.Mux) (*Listener, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("mem: restart %q: %w", addr, transport.ErrClosed)
	}
	nd := n.node(addr)
	if !nd.killed {
		return nil, fmt.Errorf("mem: restart %q: node is not killed", addr)
	}
	nd.killed = false
	nd.incarnation++
	nd.ctx, nd.cancel = newNodeContext()
	n.log.Debug("mem: restart", "addr", addr)
	if mux == nil {
		return nil, nil
	}
	return n.listen(nd, mux), nil
}
