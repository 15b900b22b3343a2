package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// hashicorpCluster is three github.com/hashicorp/raft nodes over its TCP
// transport on loopback.
//
// Settings: raft.DefaultConfig() (HeartbeatTimeout 1s, ElectionTimeout 1s,
// CommitTimeout 50ms, MaxAppendEntries 64, BatchApplyCh false,
// LeaderLeaseTimeout 500ms, SnapshotInterval 120s, SnapshotThreshold 8192,
// TrailingLogs 10240, pre-vote on), with LocalID set and logging at Error.
// Transport: raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 3, 10s, …),
// the maxPool and timeout the package's examples and Consul use; it
// pipelines AppendEntries. All three nodes are bootstrapped with the same
// three-voter configuration.
//
// Memory: raft.NewInmemStore() as log and stable store,
// raft.NewInmemSnapshotStore(). Durable: raft-boltdb/v2 (one bbolt file per
// node) as log and stable store, its log wrapped in raft.NewLogCache(512, …)
// as the LogCache documentation advises for stores that do not cache (and
// as Consul and Nomad do), and raft.NewFileSnapshotStore(dir, 2, …). bbolt
// fsyncs every transaction (NoSync false), a StoreLogs batch is one
// transaction, and a follower answers AppendEntries only after storing, so
// an entry is committed, and Apply returns, only once a majority has it on
// disk.
type hashicorpCluster struct {
	nodes  []*hashicorpNode
	leader *hashicorpNode
	logger hclog.Logger
}

type hashicorpNode struct {
	r     *raft.Raft
	trans *raft.NetworkTransport
	bolt  *raftboltdb.BoltStore // nil in the memory case
	fsm   *countingFSM
}

func startHashicorp(ctx context.Context, store, dir string) (cluster, error) {
	c := &hashicorpCluster{
		logger: hclog.New(&hclog.LoggerOptions{Name: "hashicorp-raft", Level: hclog.Error, Output: os.Stderr}),
	}
	logger := c.logger
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()

	var servers []raft.Server
	for i := range 3 {
		trans, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 3, 10*time.Second, logger)
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, &hashicorpNode{trans: trans, fsm: &countingFSM{}})
		servers = append(servers, raft.Server{
			Suffrage: raft.Voter, ID: raft.ServerID(fmt.Sprint(i + 1)), Address: trans.LocalAddr(),
		})
	}
	for i, nd := range c.nodes {
		conf := raft.DefaultConfig()
		conf.LocalID = servers[i].ID
		conf.Logger = logger

		var (
			logs   raft.LogStore
			stable raft.StableStore
			snaps  raft.SnapshotStore
		)
		if store == storeDurable {
			nodeDir := filepath.Join(dir, fmt.Sprint(i+1))
			if err := os.MkdirAll(nodeDir, 0o755); err != nil {
				return nil, err
			}
			bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(nodeDir, "raft.db")})
			if err != nil {
				return nil, err
			}
			nd.bolt = bolt
			cache, err := raft.NewLogCache(512, bolt)
			if err != nil {
				return nil, err
			}
			if snaps, err = raft.NewFileSnapshotStoreWithLogger(nodeDir, 2, logger); err != nil {
				return nil, err
			}
			logs, stable = cache, bolt
		} else {
			mem := raft.NewInmemStore()
			logs, stable, snaps = mem, mem, raft.NewInmemSnapshotStore()
		}
		if err := raft.BootstrapCluster(conf, logs, stable, snaps, nd.trans, raft.Configuration{Servers: servers}); err != nil {
			return nil, err
		}
		r, err := raft.NewRaft(conf, nd.fsm, logs, stable, snaps, nd.trans)
		if err != nil {
			return nil, err
		}
		nd.r = r
	}

	for c.leader == nil {
		for _, nd := range c.nodes {
			if nd.r.State() == raft.Leader {
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

// Propose calls Apply on the leader; its future's Error returns once the
// leader's FSM has applied the entry. Apply takes a timeout, not a context:
// it is the time left until ctx's deadline.
func (c *hashicorpCluster) Propose(ctx context.Context, cmd []byte) error {
	timeout := time.Minute
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
		if timeout <= 0 {
			return context.DeadlineExceeded
		}
	}
	return c.leader.r.Apply(cmd, timeout).Error()
}

// Close shuts the nodes down, then their transports and stores.
func (c *hashicorpCluster) Close() error {
	// Peers closing their connections during shutdown are logged as
	// errors; they are expected here.
	c.logger.SetLevel(hclog.Off)
	var errs []error
	for _, nd := range c.nodes {
		if nd.r != nil {
			errs = append(errs, nd.r.Shutdown().Error())
		}
	}
	for _, nd := range c.nodes {
		errs = append(errs, nd.trans.Close())
		if nd.bolt != nil {
			errs = append(errs, nd.bolt.Close())
		}
	}
	return errors.Join(errs...)
}

// countingFSM is the trivial state machine: it counts the commands applied.
type countingFSM struct {
	applied atomic.Uint64
}

func (f *countingFSM) Apply(*raft.Log) any {
	f.applied.Add(1)
	return nil
}

func (f *countingFSM) Snapshot() (raft.FSMSnapshot, error) {
	return countSnapshot(f.applied.Load()), nil
}

func (f *countingFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [8]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return err
	}
	f.applied.Store(binary.BigEndian.Uint64(b[:]))
	return nil
}

// countSnapshot is a countingFSM's state: the count, 8 bytes big-endian.
type countSnapshot uint64

func (s countSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(binary.BigEndian.AppendUint64(nil, uint64(s))); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (countSnapshot) Release() {}
