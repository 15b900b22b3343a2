package kvstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/synod-go/synod/kvstore"
	"github.com/synod-go/synod/log"
	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/paxos/paxostest"
	"github.com/synod-go/synod/transport"
)

// harnessOptions configures a test cluster of kvstore servers.
type harnessOptions struct {
	n    int
	seed int64
	// badger keeps every node's paxos logs and snapshot log on disk, so
	// that Crash and Start bring a node back from its files.
	badger bool
	// configure adjusts each server's Config before NewServer.
	configure func(i int, cfg *kvstore.Config)
	// paxos adjusts each node's paxos Config.
	paxos func(i int, cfg *paxos.Config)
	// deferred nodes are not started with the cluster.
	deferred []int
}

// harness is a paxostest cluster with a kvstore Server on every node, and
// the history of every operation its recording clients made.
type harness struct {
	t    testing.TB
	c    *paxostest.Cluster
	opts harnessOptions
	hist *history

	ready chan struct{} // closed once c is set

	mu       sync.Mutex
	servers  []*kvstore.Server // the current incarnation of each node's server
	snaps    []log.Log         // snapshot logs (kept across restarts)
	snapDBs  []*log.BadgerDB   // with badger: the snapshot databases
	snapDirs []string
	nclients int
}

// testSeed returns the seed of a randomized test: KVSTORE_SEED if set (to
// replay a failure), else def.
func testSeed(t testing.TB, def int64) int64 {
	if s := os.Getenv("KVSTORE_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("KVSTORE_SEED: %v", err)
		}
		return v
	}
	return def
}

func testLogger(name string) *slog.Logger {
	if os.Getenv("SYNOD_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("kv", name)
}

func newHarness(t testing.TB, opts harnessOptions) *harness {
	t.Helper()
	opts.seed = testSeed(t, opts.seed)
	h := &harness{
		t:       t,
		opts:    opts,
		hist:    newHistory(opts.seed),
		ready:   make(chan struct{}),
		servers: make([]*kvstore.Server, opts.n),
		snaps:   make([]log.Log, opts.n),
		snapDBs: make([]*log.BadgerDB, opts.n),
	}
	popts := paxostest.Options{
		Seed:     opts.seed,
		Deferred: opts.deferred,
		OnStart:  h.onStart,
		Configure: func(i int, cfg *paxos.Config) {
			if opts.paxos != nil {
				opts.paxos(i, cfg)
			}
		},
	}
	if opts.badger {
		store := paxostest.NewBadgerStore(t, opts.n)
		root := t.TempDir()
		for i := range opts.n {
			h.snapDirs = append(h.snapDirs, filepath.Join(root, fmt.Sprintf("kv-%d", i)))
		}
		popts.Logs = store.Logs
		popts.CloseLogs = func(i int) {
			store.Close(i)
			h.closeSnapshots(i)
		}
		t.Cleanup(func() {
			for i := range opts.n {
				h.closeSnapshots(i)
			}
		})
	} else {
		for i := range opts.n {
			h.snaps[i] = log.NewMemory()
		}
	}
	h.c = paxostest.NewCluster(t, opts.n, popts)
	close(h.ready)
	return h
}

// onStart builds node i's server at each start of the node.
func (h *harness) onStart(i int, p *paxos.Paxos, mux *transport.Mux) func(context.Context) {
	var peers []string
	for j := range h.opts.n {
		if j != i {
			peers = append(peers, paxostest.Addr(j))
		}
	}
	cfg := kvstore.Config{
		Snapshots: h.snapshotLog(i),
		Peers:     peers,
		Dialer:    lateDialer{h: h, from: paxostest.Addr(i)},
		Logger:    testLogger(paxostest.Addr(i)),
	}
	if h.opts.configure != nil {
		h.opts.configure(i, &cfg)
	}
	srv, err := kvstore.NewServer(p, cfg)
	if err != nil {
		h.t.Errorf("server %d: %v", i, err)
		return nil
	}
	kvstore.Register(mux, srv)
	h.mu.Lock()
	h.servers[i] = srv
	h.mu.Unlock()
	return func(ctx context.Context) {
		if err := srv.Run(ctx); err != nil {
			h.t.Errorf("server %d: %v", i, err)
		}
	}
}

func (h *harness) snapshotLog(i int) log.Log {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.opts.badger {
		return h.snaps[i]
	}
	if h.snaps[i] != nil {
		return h.snaps[i]
	}
	db, err := log.OpenBadger(h.snapDirs[i], log.BadgerOptions{Identity: fmt.Sprintf("kvstore-test/%d", i)})
	if err != nil {
		h.t.Fatalf("node %d: opening snapshot database: %v", i, err)
	}
	l, err := db.Log("kvstore")
	if err != nil {
		h.t.Fatalf("node %d: snapshot log: %v", i, err)
	}
	h.snapDBs[i], h.snaps[i] = db, l
	return l
}

func (h *harness) closeSnapshots(i int) {
	h.mu.Lock()
	db := h.snapDBs[i]
	h.snapDBs[i], h.snaps[i] = nil, nil
	h.mu.Unlock()
	if db != nil {
		db.Close()
	}
}

// server returns the current server of node i.
func (h *harness) server(i int) *kvstore.Server {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.servers[i]
}

// lateDialer dials as node from once the cluster exists: OnStart runs
// inside paxostest.NewCluster, before the test can see the network.
type lateDialer struct {
	h    *harness
	from string
}

func (d lateDialer) Dial(ctx context.Context, addr string) (transport.Conn, error) {
	select {
	case <-d.h.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return d.h.c.Dialer(d.from).Dial(ctx, addr)
}

// client returns a recording client named name (its network address),
// bound to the given servers (every server if none).
func (h *harness) client(name string, servers ...int) *client {
	h.t.Helper()
	if len(servers) == 0 {
		for i := range h.opts.n {
			servers = append(servers, i)
		}
	}
	var addrs []string
	for _, i := range servers {
		addrs = append(addrs, paxostest.Addr(i))
	}
	kv, err := kvstore.NewClient(kvstore.ClientConfig{
		Dialer:  h.c.Dialer(name),
		Servers: addrs,
		Logger:  testLogger(name),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { kv.Close() })
	h.mu.Lock()
	id := h.nclients
	h.nclients++
	h.mu.Unlock()
	return &client{h: h, kv: kv, id: id, name: name}
}

// check fails the test if the recorded history is not linearizable.
func (h *harness) check() {
	h.t.Helper()
	h.hist.check(h.t)
}

// waitApplied waits until every running server has applied at least
// every slot below slot.
func (h *harness) waitApplied(nodes []int, slot paxos.Slot, timeout time.Duration) {
	h.t.Helper()
	h.c.WaitFor(fmt.Sprintf("servers %v to apply up to slot %d", nodes, slot), timeout, func() bool {
		for _, i := range nodes {
			if s := h.server(i); s == nil || s.Stats().Applied < slot {
				return false
			}
		}
		return true
	})
}

// maxApplied returns the highest applied slot among the given servers.
func (h *harness) maxApplied(nodes ...int) paxos.Slot {
	var m paxos.Slot
	for _, i := range nodes {
		if s := h.server(i); s != nil {
			m = max(m, s.Stats().Applied)
		}
	}
	return m
}

// client is a kvstore.Client that records its operations in the harness
// history.
type client struct {
	h    *harness
	kv   *kvstore.Client
	id   int
	name string
	// digest records values by their hash (for big values).
	digest bool
}

func (c *client) record(in kvInput, out kvOutput, call int64, failed bool) {
	if c.digest {
		in.Value, out.Value = digest(in.Value), digest(out.Value)
	}
	c.h.hist.add(c.id, in, out, call, failed)
}

// Get reads key; a missing key reads as "" with ok false.
func (c *client) Get(ctx context.Context, key string) (string, bool, error) {
	call := c.h.hist.now()
	v, err := c.kv.Get(ctx, key)
	if errors.Is(err, kvstore.ErrNoKey) {
		c.record(kvInput{Op: opGet, Key: key}, kvOutput{}, call, false)
		return "", false, nil
	}
	if err != nil {
		return "", false, err // a failed read changes nothing: not recorded
	}
	c.record(kvInput{Op: opGet, Key: key}, kvOutput{Value: string(v), Found: true}, call, false)
	return string(v), true, nil
}

func (c *client) Put(ctx context.Context, key, value string) error {
	call := c.h.hist.now()
	err := c.kv.Put(ctx, key, []byte(value))
	c.record(kvInput{Op: opPut, Key: key, Value: value}, kvOutput{}, call, err != nil)
	return err
}

func (c *client) Append(ctx context.Context, key, value string) error {
	call := c.h.hist.now()
	err := c.kv.Append(ctx, key, []byte(value))
	c.record(kvInput{Op: opAppend, Key: key, Value: value}, kvOutput{}, call, err != nil)
	return err
}

// mustGet reads key and fails the test on an error or a wrong value.
func (c *client) mustGet(ctx context.Context, key, want string) {
	c.h.t.Helper()
	v, _, err := c.Get(ctx, key)
	if err != nil {
		c.h.t.Fatalf("%s: Get(%q): %v (seed %d)", c.name, key, err, c.h.opts.seed)
	}
	if v != want {
		c.h.t.Fatalf("%s: Get(%q) = %q, want %q (seed %d)", c.name, key, trunc(v), trunc(want), c.h.opts.seed)
	}
}

func (c *client) mustPut(ctx context.Context, key, value string) {
	c.h.t.Helper()
	if err := c.Put(ctx, key, value); err != nil {
		c.h.t.Fatalf("%s: Put(%q): %v (seed %d)", c.name, key, err, c.h.opts.seed)
	}
}

func (c *client) mustAppend(ctx context.Context, key, value string) {
	c.h.t.Helper()
	if err := c.Append(ctx, key, value); err != nil {
		c.h.t.Fatalf("%s: Append(%q): %v (seed %d)", c.name, key, err, c.h.opts.seed)
	}
}

func trunc(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%s…(%d bytes)", s[:80], len(s))
	}
	return s
}
