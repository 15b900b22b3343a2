package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/synod-go/synod/kvstore"
	"github.com/synod-go/synod/log"
	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/transport"
	"github.com/synod-go/synod/transport/tcp"
)

// Sizing of the node's storage and transport.
const (
	// badgerMemTable: one Badger transaction holds at most about 13% of the
	// memtable, and a full Accept batch of values just under Badger's value
	// threshold (4 KiB, kept in the LSM tree) is about 1 MiB, which the
	// 4 MiB default would refuse.
	badgerMemTable = 16 << 20
	// paxosBatch is the most values an Accept, and an observe replay
	// chunk, carries (the paxos defaults; both count values, not bytes).
	paxosBatch = 256
	// pingRoute answers the peers' reachability probes.
	pingRoute = "kv/ping"
	// probeEvery and leaderSampleEvery pace the node's monitor.
	probeEvery        = time.Second
	leaderSampleEvery = 50 * time.Millisecond
)

// nodeConfig is everything one node needs; a local cluster builds one per
// node, kv serve builds one from its flags.
type nodeConfig struct {
	id      paxos.NodeID
	members []paxos.Member // every member, this one included
	listen  string         // paxos listen address; default: this member's address
	dataDir string
	http    string // HTTP listen address; a port of 0 picks a free one
	tls     *tls.Config
	logger  *slog.Logger
	nodeFlags
}

// node is one running replica: Badger, paxos, kvstore, the transport server
// and the HTTP API.
type node struct {
	cfg     nodeConfig
	logger  *slog.Logger
	db      *log.BadgerDB
	paxos   *paxos.Paxos
	kv      *kvstore.Server
	client  *kvstore.Client
	dialer  *tcp.Dialer
	tcpSrv  *tcp.Server
	httpSrv *http.Server
	httpLn  net.Listener
	api     *api
	cancel  context.CancelFunc // set by start
	wg      sync.WaitGroup
	// failed receives the error of a part that stopped on its own.
	failed chan error
}

// frameSize is the transport's frame limit for values of up to maxKey and
// maxValue bytes: a full Accept batch or replay chunk must fit in one frame.
func frameSize(maxKey, maxValue int) int {
	return max(tcp.DefaultMaxFrameSize, paxosBatch*(maxKey+maxValue+256)+1<<20)
}

// startNode opens a node and starts it.
func startNode(cfg nodeConfig) (*node, error) {
	n, err := openNode(cfg)
	if err != nil {
		return nil, err
	}
	n.start()
	return n, nil
}

// openNode opens the node's storage, builds its roles and listens on its
// transport and HTTP addresses; start runs it. On error everything opened
// is closed again.
func openNode(cfg nodeConfig) (*node, error) {
	idx := slices.IndexFunc(cfg.members, func(m paxos.Member) bool { return m.ID == cfg.id })
	if idx < 0 {
		return nil, fmt.Errorf("node %d is not a member", cfg.id)
	}
	if cfg.listen == "" {
		cfg.listen = cfg.members[idx].Addr
	}
	n := &node{cfg: cfg, logger: cfg.logger.With("node", cfg.id), failed: make(chan error, 4)}
	if err := n.open(); err != nil {
		n.closeAll()
		return nil, err
	}
	return n, nil
}

// open opens the node's storage, builds its roles and listens on its
// addresses.
func (n *node) open() error {
	var err error
	cfg := n.cfg
	if n.db, err = log.OpenBadger(cfg.dataDir, log.BadgerOptions{
		Identity:     fmt.Sprintf("%s/node-%d", cfg.cluster, cfg.id),
		Logger:       n.logger.With("component", "badger"),
		MemTableSize: badgerMemTable,
	}); err != nil {
		return fmt.Errorf("opening %s: %w", cfg.dataDir, err)
	}
	var logs [4]log.Log
	for i, prefix := range []string{"promise", "accepted", "recorded", "snapshots"} {
		if logs[i], err = n.db.Log(prefix); err != nil {
			return err
		}
	}
	opts := tcp.Options{TLS: cfg.tls, MaxFrameSize: frameSize(cfg.maxKey, cfg.maxValue), Logger: n.logger.With("component", "tcp")}
	if n.dialer, err = tcp.NewDialer(opts); err != nil {
		return err
	}
	pcfg := &paxos.Config{
		ID: cfg.id, PromiseLog: logs[0], AcceptedLog: logs[1], RecordedLog: logs[2],
		Logger:   n.logger.With("component", "paxos"),
		MaxBatch: paxosBatch,
		// An op is the value, the key and about 40 bytes.
		MaxValueSize: cfg.maxValue + cfg.maxKey + 1024,
	}
	pcfg.DialTransport(n.dialer)
	if n.paxos, err = paxos.New(pcfg); err != nil {
		return err
	}
	var peers []string
	for _, m := range cfg.members {
		if m.ID != cfg.id {
			peers = append(peers, m.Addr)
		}
	}
	if n.kv, err = kvstore.NewServer(n.paxos, kvstore.Config{
		Snapshots: logs[3], Peers: peers, Dialer: n.dialer,
		Logger:     n.logger.With("component", "kvstore"),
		MaxKeySize: cfg.maxKey, MaxValueSize: cfg.maxValue,
		SnapshotEvery: cfg.snapshotEvery,
	}); err != nil {
		return err
	}
	mux := transport.NewMux()
	paxos.Register(mux, n.paxos)
	kvstore.Register(mux, n.kv)
	mux.Handle(pingRoute, func(context.Context, []byte) ([]byte, error) { return nil, nil })
	// One attempt per request: the request timeout bounds it, and the
	// server goes on with a proposal its client gave up on anyway.
	if n.client, err = kvstore.NewClient(kvstore.ClientConfig{
		Dialer: localDialer{mux}, Servers: []string{"local"},
		AttemptTimeout: cfg.requestTimeout, MaxAttemptTimeout: cfg.requestTimeout,
		MaxKeySize: cfg.maxKey, MaxValueSize: cfg.maxValue,
		Logger: n.logger.With("component", "client"),
	}); err != nil {
		return err
	}
	if n.tcpSrv, err = tcp.ListenAddr(cfg.listen, mux, opts); err != nil {
		return fmt.Errorf("paxos transport: %w", err)
	}
	if n.httpLn, err = net.Listen("tcp", cfg.http); err != nil {
		return fmt.Errorf("HTTP: %w", err)
	}
	n.api = newAPI(apiConfig{
		id: cfg.id, store: n.client, status: n.status, metrics: n.writeMetrics,
		maxKey: cfg.maxKey, maxValue: cfg.maxValue, requestTimeout: cfg.requestTimeout,
		pprof: cfg.pprof, logger: n.logger.With("component", "http"),
	}, cfg.members)
	n.httpSrv = &http.Server{
		Handler:           n.api,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.requestTimeout + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(n.logger.With("component", "http").Handler(), slog.LevelWarn),
	}
	return nil
}

// start runs the roles, the monitor and the HTTP server.
func (n *node) start() {
	cfg := n.cfg
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Go(func() {
		if err := n.paxos.Start(ctx, cfg.members); err != nil {
			n.failed <- fmt.Errorf("paxos: %w", err)
		}
	})
	n.wg.Go(func() {
		if err := n.kv.Run(ctx); err != nil {
			n.failed <- fmt.Errorf("kvstore: %w", err)
		}
	})
	n.wg.Go(func() { n.monitor(ctx) })
	go func() {
		if err := n.httpSrv.Serve(n.httpLn); !errors.Is(err, http.ErrServerClosed) {
			n.failed <- fmt.Errorf("HTTP: %w", err)
		}
	}()
	n.logger.Info("node started", "paxos", n.tcpSrv.Addr(), "http", n.URL(), "data", cfg.dataDir, "tls", cfg.tls != nil)
}

// URL is the base URL of the node's HTTP API.
func (n *node) URL() string { return "http://" + n.httpLn.Addr().String() }

// Failed delivers the error of a part of the node that stopped on its own.
func (n *node) Failed() <-chan error { return n.failed }

// Shutdown stops the node: the HTTP server first (requests in flight end
// within their timeout, or when ctx ends), then the roles, the transport,
// and the database.
func (n *node) Shutdown(ctx context.Context) error {
	var errs []error
	if err := n.httpSrv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("HTTP shutdown: %w", err))
		n.httpSrv.Close()
	}
	n.cancel()
	n.wg.Wait()
	errs = append(errs, n.closeAll())
	n.logger.Info("node stopped")
	return errors.Join(errs...)
}

// closeAll closes what startNode opened, in reverse order; the roles must
// have stopped.
func (n *node) closeAll() error {
	var errs []error
	if n.httpLn != nil && n.cancel == nil {
		errs = append(errs, n.httpLn.Close()) // never served: Shutdown does not close it
	}
	if n.client != nil {
		errs = append(errs, n.client.Close())
	}
	if n.tcpSrv != nil {
		errs = append(errs, n.tcpSrv.Close())
	}
	if n.dialer != nil {
		errs = append(errs, n.dialer.Close())
	}
	if n.db != nil {
		errs = append(errs, n.db.Close())
	}
	return errors.Join(errs...)
}

// monitor samples the leader (to count leader changes) and probes the
// peers (for /status and /metrics) until ctx ends.
func (n *node) monitor(ctx context.Context) {
	conns := make(map[paxos.NodeID]transport.Conn)
	for _, m := range n.cfg.members {
		if m.ID == n.cfg.id {
			continue
		}
		c, err := n.dialer.Dial(ctx, m.Addr)
		if err != nil {
			n.logger.Error("dialing peer", "peer", m.ID, "err", err)
			continue
		}
		defer c.Close()
		conns[m.ID] = c
	}
	sample := time.NewTicker(leaderSampleEvery)
	defer sample.Stop()
	probe := time.NewTimer(0)
	defer probe.Stop()
	var probes sync.WaitGroup
	defer probes.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sample.C:
			id, ok := n.paxos.Leader()
			if !ok {
				id = 0
			}
			n.api.peers.observeLeader(id)
		case <-probe.C:
			for id, c := range conns {
				probes.Go(func() {
					pctx, cancel := context.WithTimeout(ctx, probeEvery/2)
					defer cancel()
					_, err := c.Call(pctx, pingRoute, nil)
					if ctx.Err() == nil {
						n.api.peers.setReachable(id, err == nil)
					}
				})
			}
			probes.Wait()
			probe.Reset(probeEvery)
		}
	}
}

// status gathers what GET /status reports.
func (n *node) status() nodeStatus {
	st := n.kv.Stats()
	leader, ok := n.paxos.Leader()
	if !ok {
		leader = 0
	}
	pm := n.paxos.Metrics()
	s := nodeStatus{
		ID: n.cfg.id, Leader: leader, IsLeader: n.paxos.IsLeader(),
		Min: n.paxos.Min(), Max: n.paxos.Max(), Applied: st.Applied,
		Keys: st.Keys, Sessions: st.Sessions, SnapshotSlot: st.SnapshotSlot,
		Peers: n.api.peers.list(),
	}
	s.ApplyLag = applyLag(s.Max, s.Applied)
	ds := n.db.Stats()
	s.Metrics = statusMetrics{
		Campaigns: pm.Campaigns, Elected: pm.Elected, Proposed: pm.Proposed, Batches: pm.Batches, Chosen: pm.Chosen,
		LeaderChanges: n.api.peers.leaderChanges(),
		StorageWrites: ds.Writes, StorageSyncs: ds.Syncs,
	}
	s.Metrics.HTTPRequests, s.Metrics.HTTPErrors = n.api.metrics.totals()
	return s
}

// applyLag is how many slots the node knows of but has not applied: max is
// the highest slot known (0 if none), applied the first not applied.
func applyLag(max, applied paxos.Slot) uint64 {
	if max+1 > applied && (max > 0 || applied > 0) {
		return uint64(max + 1 - applied)
	}
	return 0
}

// writeMetrics writes the node's own metrics (the API adds the HTTP ones).
func (n *node) writeMetrics(p *promWriter) {
	s := n.status()
	pm := n.paxos.Metrics()
	p.counter("synod_paxos_campaigns_total", "Phase 1 rounds this node started.", float64(pm.Campaigns))
	p.counter("synod_paxos_elected_total", "Phase 1 rounds this node won (leaderships).", float64(pm.Elected))
	p.counter("synod_paxos_proposed_total", "Values this node gave a slot while leading, re-proposals included.", float64(pm.Proposed))
	p.counter("synod_paxos_batches_total", "Accepts carrying values this node sent while leading (proposed/batches is the mean batch size).", float64(pm.Batches))
	p.counter("synod_paxos_chosen_total", "Slots this node saw chosen while leading.", float64(pm.Chosen))
	mean := 0.0
	if pm.Batches > 0 {
		mean = float64(pm.Proposed) / float64(pm.Batches)
	}
	p.gauge("synod_paxos_batch_size_mean", "Mean values per Accept batch since start.", mean)
	p.counter("synod_paxos_leader_changes_total", "Changes of the leader this node believes in, sampled every 50ms.", float64(s.Metrics.LeaderChanges))
	p.gauge("synod_paxos_leader_id", "The leader this node believes in (0: none known).", float64(s.Leader))
	p.gauge("synod_paxos_is_leader", "1 if this node leads.", b2f(s.IsLeader))
	p.gauge("synod_paxos_min_slot", "Min: slots below it are forgotten on every peer.", float64(s.Min))
	p.gauge("synod_paxos_max_slot", "The highest slot this node knows of.", float64(s.Max))
	p.gauge("synod_kv_applied_slot", "The first slot the store has not applied.", float64(s.Applied))
	p.gauge("synod_kv_apply_lag_slots", "Slots known to this node but not applied yet.", float64(s.ApplyLag))
	p.gauge("synod_kv_keys", "Keys in the store.", float64(s.Keys))
	p.gauge("synod_kv_sessions", "Client sessions the store tracks.", float64(s.Sessions))
	p.gauge("synod_kv_snapshot_slot", "The slot the newest snapshot covers up to (exclusive).", float64(s.SnapshotSlot))
	st := n.kv.Stats()
	p.counter("synod_kv_snapshots_taken_total", "Snapshots this node wrote.", float64(st.SnapshotsTaken))
	p.counter("synod_kv_snapshots_installed_total", "Snapshots this node fetched from peers and installed.", float64(st.SnapshotsInstalled))
	p.counter("synod_kv_snapshot_fetch_failures_total", "Snapshot transfers from peers that failed.", float64(st.FetchFailures))
	ds := n.db.Stats()
	p.counter("synod_storage_writes_total", "Log writes and truncations that reached Badger.", float64(ds.Writes))
	p.counter("synod_storage_syncs_total", "fsync rounds (group commits) of the node's database.", float64(ds.Syncs))
	p.counter("synod_storage_gc_runs_total", "Value-log garbage collections completed.", float64(ds.GCRuns))
	bounds := make([]float64, log.SyncBuckets)
	for i := range bounds {
		bounds[i] = log.SyncBucket(i).Seconds()
	}
	p.header("synod_storage_sync_duration_seconds", "Duration of the database's fsync rounds (the write and fsync of one group commit).", "histogram")
	p.bucketSamples("synod_storage_sync_duration_seconds", nil, bounds, ds.SyncLatency[:], ds.SyncTime.Seconds())
	if lsm, vlog, err := n.db.DiskSize(); err == nil {
		p.gaugeVec("synod_storage_bytes", "Apparent size of the database files.", []sample{
			{labels: []string{"kind", "lsm"}, value: float64(lsm)},
			{labels: []string{"kind", "vlog"}, value: float64(vlog)},
		})
	}
	var up []sample
	for _, ps := range s.Peers {
		up = append(up, sample{labels: []string{"peer", fmt.Sprint(ps.ID), "addr", ps.Addr}, value: b2f(ps.Reachable)})
	}
	p.gaugeVec("synod_peer_up", "1 if the peer answered the last probe (every second).", up)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// nodeDir returns the data directory of node id in a local cluster.
func nodeDir(dataDir string, id paxos.NodeID) string {
	return filepath.Join(dataDir, fmt.Sprintf("node%d", id))
}
