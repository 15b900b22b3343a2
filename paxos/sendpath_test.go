package paxos_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/paxos/paxostest"
)

// syncOnly hides a client's optional interfaces (AsyncAcceptorClient,
// HeartbeatClient), so the leader sends everything through its senders.
type syncOnly struct{ paxos.AcceptorClient }

// hangingPeer passes no timeout to the transport, whose calls then never
// expire on their own, and while hang is set it swallows Accepts: they
// never complete unless the leader cancels them, as with a peer that
// stopped answering on a connection that stays up. outstanding counts the
// calls not yet completed.
type hangingPeer struct {
	paxos.AcceptorClient
	async       paxos.AsyncAcceptorClient
	hang        *atomic.Bool
	outstanding *atomic.Int64
}

func (c hangingPeer) AcceptAsync(req *paxos.Accept, _ time.Duration, done func(*paxos.Accepted, error)) (func(), error) {
	c.outstanding.Add(1)
	var once sync.Once
	finish := func(rep *paxos.Accepted, err error) {
		once.Do(func() {
			c.outstanding.Add(-1)
			done(rep, err)
		})
	}
	if c.hang.Load() {
		return func() { finish(nil, context.Canceled) }, nil
	}
	cancel, err := c.async.AcceptAsync(req, 0, finish)
	if err != nil {
		c.outstanding.Add(-1)
	}
	return cancel, err
}

// TestLossySendPaths proposes through the leader while the network drops
// and delays messages, once with the Accepts started by the leader's loop
// (mem Conns implement transport.AsyncConn) and once through its sender
// goroutines only, and once with a follower whose Accepts hang for a while
// (hangingPeer): the leader must cancel them after RPCTimeout. Every
// acknowledged value must be decided, on every
// node, in the slot Propose returned.
func TestLossySendPaths(t *testing.T) {
	for _, mode := range []string{"async", "hanging", "senders"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			seed := time.Now().UnixNano()
			var hang atomic.Bool
			var outstanding atomic.Int64
			t.Logf("seed %d", seed)
			c := paxostest.NewCluster(t, 3, paxostest.Options{Seed: seed, Configure: func(i int, cfg *paxos.Config) {
				dial := cfg.AcceptorDialer
				switch mode {
				case "senders":
					cfg.AcceptorDialer = func(m paxos.Member) (paxos.AcceptorClient, error) {
						ac, err := dial(m)
						return syncOnly{ac}, err
					}
				case "hanging":
					cfg.AcceptorDialer = func(m paxos.Member) (paxos.AcceptorClient, error) {
						ac, err := dial(m)
						if err != nil || m.ID != paxos.NodeID((i+1)%3+1) {
							return ac, err // each node has one hanging peer: the next one
						}
						async, ok := ac.(paxos.AsyncAcceptorClient)
						if !ok {
							return nil, fmt.Errorf("%T is not an AsyncAcceptorClient", ac)
						}
						return hangingPeer{ac, async, &hang, &outstanding}, nil
					}
				}
			}})
			defer c.CheckAgreement()
			c.Net.SetDefaultReliability(0.2, 0.2)
			c.Net.SetDefaultDelay(0, 2*time.Millisecond)
			first := c.Leader(wait)

			ctx, cancel := context.WithTimeout(context.Background(), 4*wait)
			defer cancel()
			var mu sync.Mutex
			acked := make(map[paxos.Slot]string)
			var g errgroup.Group
			if mode == "hanging" {
				hang.Store(true)
				g.Go(func() error {
					time.Sleep(time.Second) // the length of the fault, not a synchronization
					hang.Store(false)
					return nil
				})
			}
			for k := range 16 {
				g.Go(func() error {
					leader := first
					for j := range 40 {
						v := fmt.Sprintf("%d-%d", k, j)
						for {
							slot, err := c.P(leader).Propose(ctx, []byte(v))
							if err == nil {
								mu.Lock()
								if prev, dup := acked[slot]; dup {
									mu.Unlock()
									return fmt.Errorf("slot %d acknowledged for %q and %q", slot, prev, v)
								}
								acked[slot] = v
								mu.Unlock()
								break
							}
							if ctx.Err() != nil {
								return fmt.Errorf("value %s: %w (seed %d)", v, err, seed)
							}
							if !errors.Is(err, paxos.ErrNotLeader) {
								t.Logf("retrying %s: %v", v, err)
							}
							leader = c.Leader(wait)
						}
					}
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				t.Fatal(err)
			}
			c.Net.SetDefaultReliability(0, 0)
			if mode == "hanging" {
				// Calls swallowed while the peer hung end only when the leader
				// cancels them.
				c.WaitFor("hung calls cancelled", wait, func() bool { return outstanding.Load() == 0 })
			}
			for slot, v := range acked {
				if got := c.WaitDecided(slot, 3, wait); string(got) != v {
					t.Fatalf("slot %d decided %q, acknowledged %q (seed %d)", slot, got, v, seed)
				}
			}
			m := c.P(c.Leader(wait)).Metrics()
			t.Logf("%d values acknowledged; leader metrics %+v", len(acked), m)
		})
	}
}
