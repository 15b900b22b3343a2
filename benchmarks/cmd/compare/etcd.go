package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// etcdTick is how often each etcd node ticks: etcd's default heartbeat
// interval (100ms), with its default election timeout of 10 ticks (1s).
const etcdTick = 100 * time.Millisecond

// etcdCluster is three go.etcd.io/raft/v3 nodes, each driven by the
// standard Ready loop below, over the loopback transport in
// etcd_transport.go.
//
// Settings, as etcd's own server configures the library: ElectionTick 10,
// HeartbeatTick 1 (ticks of 100ms), MaxSizePerMsg 1 MiB, MaxInflightMsgs
// 512, CheckQuorum and PreVote on; everything else at its zero value
// (AsyncStorageWrites off, proposal forwarding on). raft.MemoryStorage
// serves the log to raft in both cases; every 10,000 applied entries it is
// compacted to the last 10,000, as etcd's raftexample does.
//
// Durable: a file log (etcd_log.go) gets each Ready's entries, HardState
// and snapshot metadata in one write and one fdatasync (when Ready.MustSync
// says so, as etcd's WAL does) before that Ready's messages are sent, so a
// follower acknowledges an entry only once it is on disk and the leader
// counts its own vote only once its own write returned; an entry is
// committed, and the client released, only once a majority has it on disk.
type etcdCluster struct {
	nodes  []*etcdNode
	leader *etcdNode
	cancel context.CancelFunc
	wg     sync.WaitGroup // the Ready loops
}

// etcdNode is one node and its application.
type etcdNode struct {
	id      uint64
	node    raft.Node
	storage *raft.MemoryStorage
	wal     *fileLog // nil in the memory case
	net     *etcdTransport
	waiters *idWaiters

	// Owned by the Ready loop.
	confState     raftpb.ConfState
	applied       uint64 // Invariant: applied <= the committed index
	snapshotIndex uint64 // MemoryStorage holds a snapshot at this index
	count         uint64 // the state machine: commands applied
}

func startEtcd(ctx context.Context, store, dir string) (cluster, error) {
	c := &etcdCluster{}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()

	peers := []raft.Peer{{ID: 1}, {ID: 2}, {ID: 3}}
	quiet := &raft.DefaultLogger{Logger: stdlog.New(io.Discard, "", 0)}
	for i := range peers {
		nd := &etcdNode{id: peers[i].ID, storage: raft.NewMemoryStorage(), waiters: newIDWaiters()}
		c.nodes = append(c.nodes, nd)
		if store == storeDurable {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
			wal, err := createFileLog(filepath.Join(dir, fmt.Sprintf("%d.log", nd.id)))
			if err != nil {
				return nil, err
			}
			nd.wal = wal
		}
		tr, err := listenEtcd(nd.id)
		if err != nil {
			return nil, err
		}
		nd.net = tr
		nd.node = raft.StartNode(&raft.Config{
			ID:              nd.id,
			ElectionTick:    10,
			HeartbeatTick:   1,
			Storage:         nd.storage,
			MaxSizePerMsg:   1 << 20,
			MaxInflightMsgs: 4096 / 8,
			CheckQuorum:     true,
			PreVote:         true,
			Logger:          quiet,
		}, peers)
		tr.node = nd.node
	}
	addrs := map[uint64]string{}
	for _, nd := range c.nodes {
		addrs[nd.id] = nd.net.addr()
	}
	for _, nd := range c.nodes {
		if err := nd.net.connect(ctx, addrs); err != nil {
			return nil, err
		}
	}
	for _, nd := range c.nodes {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if err := nd.run(runCtx); err != nil {
				fmt.Fprintf(os.Stderr, "etcd node %d: %v\n", nd.id, err)
			}
		}()
	}
	// Any node would win an election after a timeout; asking one to
	// campaign now only saves that wait.
	if err := c.nodes[0].node.Campaign(ctx); err != nil {
		return nil, err
	}
	for c.leader == nil {
		for _, nd := range c.nodes {
			if nd.node.Status().RaftState == raft.StateLeader {
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

// Propose registers a waiter under the command's request id at the leader,
// proposes it there, and waits until the leader's Ready loop applies an
// entry with that id. A proposal that raft drops (no leader, say) fails at
// once; one lost in a leadership change fails when ctx ends.
func (c *etcdCluster) Propose(ctx context.Context, cmd []byte) error {
	id, ok := commandID(cmd)
	if !ok {
		return errors.New("command too short for a request id")
	}
	nd := c.leader
	done := nd.waiters.register(id)
	if err := nd.node.Propose(ctx, cmd); err != nil {
		nd.waiters.cancel(id)
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		nd.waiters.cancel(id)
		return ctx.Err()
	}
}

// run is the standard etcd raft loop: on each Ready, save the entries and
// HardState (fsynced if durable), send the messages, apply the committed
// entries, compact, and Advance; tick every etcdTick.
func (n *etcdNode) run(ctx context.Context) error {
	ticker := time.NewTicker(etcdTick)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			n.node.Tick()
		case rd := <-n.node.Ready():
			if n.wal != nil {
				if err := n.wal.save(rd.HardState, rd.Entries, rd.Snapshot, rd.MustSync); err != nil {
					return fmt.Errorf("save: %w", err)
				}
			}
			if !raft.IsEmptySnap(rd.Snapshot) {
				if err := n.storage.ApplySnapshot(rd.Snapshot); err != nil {
					return fmt.Errorf("apply snapshot: %w", err)
				}
				n.applied = rd.Snapshot.Metadata.Index
				n.snapshotIndex = n.applied
				n.confState = rd.Snapshot.Metadata.ConfState
			}
			if err := n.storage.Append(rd.Entries); err != nil {
				return fmt.Errorf("append: %w", err)
			}
			if !raft.IsEmptyHardState(rd.HardState) {
				if err := n.storage.SetHardState(rd.HardState); err != nil {
					return fmt.Errorf("hard state: %w", err)
				}
			}
			n.net.send(rd.Messages)
			if err := n.apply(rd.CommittedEntries); err != nil {
				return err
			}
			n.compact()
			n.node.Advance()
		}
	}
}

// apply applies committed entries: configuration changes to raft, commands
// to the state machine (a count), waking the client waiting on each
// command's request id.
func (n *etcdNode) apply(entries []raftpb.Entry) error {
	for i := range entries {
		e := &entries[i]
		if e.Index <= n.applied {
			continue
		}
		switch e.Type {
		case raftpb.EntryConfChange:
			var cc raftpb.ConfChange
			if err := cc.Unmarshal(e.Data); err != nil {
				return fmt.Errorf("conf change at %d: %w", e.Index, err)
			}
			n.confState = *n.node.ApplyConfChange(cc)
		case raftpb.EntryNormal:
			if id, ok := commandID(e.Data); ok {
				n.count++
				n.waiters.trigger(id)
			}
		}
		n.applied = e.Index
	}
	return nil
}

// compact keeps MemoryStorage from growing without bound: every doneEvery
// applied entries it takes a snapshot (of the trivial state machine) and
// drops all but the last doneEvery entries, which lagging followers can
// still fetch without a snapshot.
func (n *etcdNode) compact() {
	if n.applied-n.snapshotIndex < doneEvery {
		return
	}
	if _, err := n.storage.CreateSnapshot(n.applied, &n.confState, nil); err != nil {
		return // raft.ErrSnapOutOfDate: a newer snapshot arrived meanwhile
	}
	if n.applied > doneEvery {
		_ = n.storage.Compact(n.applied - doneEvery) // raft.ErrCompacted only: already done
	}
	n.snapshotIndex = n.applied
}

// Close stops the Ready loops and the nodes, then the transports and logs.
func (c *etcdCluster) Close() error {
	c.cancel()
	c.wg.Wait()
	var errs []error
	for _, nd := range c.nodes {
		if nd.node != nil {
			nd.node.Stop()
		}
		if nd.net != nil {
			errs = append(errs, nd.net.close())
		}
		if nd.wal != nil {
			errs = append(errs, nd.wal.close())
		}
	}
	return errors.Join(errs...)
}

// idWaiters lets a client wait until the entry carrying its request id is
// applied (etcd's server does the same with its wait.Wait).
type idWaiters struct {
	mu      sync.Mutex
	waiting map[uint64]chan struct{}
}

func newIDWaiters() *idWaiters {
	return &idWaiters{waiting: make(map[uint64]chan struct{})}
}

func (w *idWaiters) register(id uint64) <-chan struct{} {
	ch := make(chan struct{})
	w.mu.Lock()
	w.waiting[id] = ch
	w.mu.Unlock()
	return ch
}

func (w *idWaiters) cancel(id uint64) {
	w.mu.Lock()
	delete(w.waiting, id)
	w.mu.Unlock()
}

// trigger wakes the waiter on id, if any (on followers there is none).
func (w *idWaiters) trigger(id uint64) {
	w.mu.Lock()
	ch, ok := w.waiting[id]
	delete(w.waiting, id)
	w.mu.Unlock()
	if ok {
		close(ch)
	}
}
