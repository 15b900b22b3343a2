package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/synod-go/synod/log"
	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/transport"
	"github.com/synod-go/synod/transport/tcp"
)

// doneEvery is how many applied entries each system's application keeps
// before telling the consensus layer it may release them: Synod's Done here,
// and the etcd node's MemoryStorage compaction (raftexample's snapshot
// count). hashicorp/raft runs its own snapshot policy (see hashicorp.go).
const doneEvery = 10000

// synodCluster is three paxos.Paxos nodes over transport/tcp on loopback.
//
// Settings: paxos.Config zero values (ElectionTimeout 500ms,
// HeartbeatInterval 50ms, RPCTimeout 1s, MaxBatch 256, MaxBatchBytes 1 MiB,
// MaxInflight 8, MaxPending 4096); tcp.Options zero values. Memory:
// log.NewMemory() for the three logs with Volatile set. Durable: one
// log.OpenBadger(dir, log.BadgerOptions{MemTableSize: 64 << 20}) per node
// (the log package's advice for production: Badger's own default memtable
// size, instead of the small test-friendly default) holding the "promise",
// "accepted" and "recorded" logs; every acceptor Write is fsynced (Badger
// SyncWrites) before it returns, and an acceptor answers only after its
// write returned, so a value is chosen, and Propose returns, only once a
// majority has it on disk. The recorded log is written lazily, and for
// slots a node's acceptor holds it keeps references into the accepted log
// rather than copies (see the paxos package doc).
type synodCluster struct {
	nodes  []*synodNode
	leader *synodNode
	cancel context.CancelFunc
	wg     sync.WaitGroup // Start and the application loops
}

type synodNode struct {
	p       *paxos.Paxos
	srv     *tcp.Server
	dialer  *tcp.Dialer
	db      interface{ Close() error } // *log.FileDB or *log.BadgerDB; nil in the memory case
	applied *slotWaiters
	count   uint64 // the state machine: commands applied; owned by apply
}

// Durable backends of Synod's logs.
const (
	synodFileLog   = "file"   // log.OpenFile: the write-ahead log, the default
	synodBadgerLog = "badger" // log.OpenBadger (system "synod-badger")
)

func startSynod(ctx context.Context, store, dir, backend string) (cluster, error) {
	c := &synodCluster{}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()

	var members []paxos.Member
	muxes := make([]*transport.Mux, 3)
	for i := range 3 {
		muxes[i] = transport.NewMux()
		srv, err := tcp.ListenAddr("127.0.0.1:0", muxes[i], tcp.Options{})
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, &synodNode{srv: srv, applied: newSlotWaiters()})
		members = append(members, paxos.Member{ID: paxos.NodeID(i + 1), Addr: srv.Addr()})
	}
	for i, nd := range c.nodes {
		cfg := &paxos.Config{ID: members[i].ID}
		if store == storeDurable {
			var db interface {
				Log(string) (log.Log, error)
				Close() error
			}
			var err error
			if backend == synodBadgerLog {
				db, err = log.OpenBadger(filepath.Join(dir, fmt.Sprint(i+1)), log.BadgerOptions{MemTableSize: 64 << 20})
			} else {
				db, err = log.OpenFile(filepath.Join(dir, fmt.Sprint(i+1)), log.FileOptions{})
			}
			if err != nil {
				return nil, err
			}
			nd.db = db
			for _, l := range []struct {
				prefix string
				dst    *log.Log
			}{{"promise", &cfg.PromiseLog}, {"accepted", &cfg.AcceptedLog}, {"recorded", &cfg.RecordedLog}} {
				if *l.dst, err = db.Log(l.prefix); err != nil {
					return nil, err
				}
			}
		} else {
			cfg.PromiseLog, cfg.AcceptedLog, cfg.RecordedLog = log.NewMemory(), log.NewMemory(), log.NewMemory()
			cfg.Volatile = true // memory logs, a cluster that starts fresh and is never restarted
		}
		d, err := tcp.NewDialer(tcp.Options{})
		if err != nil {
			return nil, err
		}
		nd.dialer = d
		cfg.DialTransport(d)
		p, err := paxos.New(cfg)
		if err != nil {
			return nil, err
		}
		nd.p = p
		paxos.Register(muxes[i], p)
	}
	for _, nd := range c.nodes {
		c.wg.Add(2)
		go func() {
			defer c.wg.Done()
			nd.p.Start(runCtx, members)
		}()
		go func() {
			defer c.wg.Done()
			nd.apply(runCtx)
		}()
	}

	for c.leader == nil {
		for _, nd := range c.nodes {
			if nd.p.IsLeader() {
				c.leader = nd
			}
		}
		if c.leader == nil {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("no leader: %w", ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	if err := c.Propose(ctx, newCommand(minCommandSize)); err != nil {
		return nil, fmt.Errorf("first proposal: %w", err)
	}
	ok = true
	return c, nil
}

// Propose gets cmd chosen through the leader's Propose (which returns once
// the slot is chosen), then waits until the leader's application loop has
// learned and applied that slot.
func (c *synodCluster) Propose(ctx context.Context, cmd []byte) error {
	slot, err := c.leader.p.Propose(ctx, cmd)
	if err != nil {
		return err
	}
	return c.leader.applied.wait(ctx, uint64(slot))
}

// apply is the node's application: it learns chosen values in slot order,
// applies them to a trivial state machine (it counts them), wakes the
// clients waiting on those slots, and every doneEvery slots tells the node
// it may release what it applied.
func (nd *synodNode) apply(ctx context.Context) {
	var next, released paxos.Slot
	for {
		chosen, err := nd.p.Learn(ctx, next, 256)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, paxos.ErrForgotten) {
				return // cannot happen: this node calls Done only for what it applied
			}
			time.Sleep(time.Millisecond)
			continue
		}
		for _, ch := range chosen {
			if !ch.NoOp {
				nd.count++
			}
			next = ch.Slot + 1
		}
		nd.applied.advance(uint64(next))
		if next-released >= doneEvery {
			nd.p.Done(next - 1)
			released = next
		}
	}
}

// Close stops the nodes, then their sockets and databases.
func (c *synodCluster) Close() error {
	c.cancel()
	c.wg.Wait()
	var errs []error
	for _, nd := range c.nodes {
		if nd.srv != nil {
			errs = append(errs, nd.srv.Close())
		}
		if nd.dialer != nil {
			errs = append(errs, nd.dialer.Close())
		}
		if nd.db != nil {
			errs = append(errs, nd.db.Close())
		}
	}
	return errors.Join(errs...)
}

// slotWaiters lets clients wait until the application loop has applied a
// slot. Each Propose returns a distinct slot, so at most one client waits
// on a slot.
type slotWaiters struct {
	mu      sync.Mutex
	applied uint64 // slots below this are applied
	waiting map[uint64]chan struct{}
}

func newSlotWaiters() *slotWaiters {
	return &slotWaiters{waiting: make(map[uint64]chan struct{})}
}

// wait returns once slot is applied, or with ctx's error.
func (w *slotWaiters) wait(ctx context.Context, slot uint64) error {
	w.mu.Lock()
	if slot < w.applied {
		w.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	w.waiting[slot] = ch
	w.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		w.mu.Lock()
		delete(w.waiting, slot)
		w.mu.Unlock()
		return ctx.Err()
	}
}

// advance records that every slot below next is applied and wakes their
// waiters.
func (w *slotWaiters) advance(next uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if next <= w.applied {
		return
	}
	w.applied = next
	for slot, ch := range w.waiting {
		if slot < next {
			close(ch)
			delete(w.waiting, slot)
		}
	}
}
