package kvstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/transport"
)

// learnBatch is the most chosen values one Learn call returns.
const learnBatch = 256

// Server is one replica of the key/value store: it proposes the clients'
// operations to its paxos node, applies the chosen ones in slot order, and
// answers. Build it with NewServer, serve it with Register, run it with
// Run. Its methods are safe for concurrent use.
type Server struct {
	p      *paxos.Paxos
	cfg    Config
	clock  clockwork.Clock
	logger *slog.Logger
	store  *snapshotStore
	ttl    int64

	mu sync.Mutex
	m  *machine // Invariant: m.next only grows
	// changed is closed and replaced whenever m.next moves.
	changed chan struct{}
	// waiters are the requests this server proposed, by client and seq,
	// waiting for their result.
	waiters map[reqKey][]chan result
	// snapNext is m.next when the last snapshot was started (or loaded);
	// sinceBytes counts the bytes of chosen values applied since.
	snapNext paxos.Slot
	// durable is the point of the newest snapshot in the snapshot log that
	// this server wrote or installed; the paxos log is compacted at the
	// point of the one before it (see writeSnapshot).
	durable    paxos.Slot
	sinceBytes int64
	running    bool
	// pending and pendingBytes count the proposals in flight.
	pending      int
	pendingBytes int64
	stopping     bool // Run is returning: no new proposals
	snapshotting bool // a snapshot is being written

	// life is cancelled when Run returns; proposals run under it.
	life      context.Context
	stop      context.CancelFunc
	proposals sync.WaitGroup
	started   chan struct{} // closed when Run starts
	done      chan struct{} // closed when Run returns

	fetchNext int // the peer to fetch a snapshot from first (Run's goroutine only)

	taken, installed, fetchFailures atomic.Uint64
}

type reqKey struct {
	client, seq uint64
}

// Stats is a snapshot of a server's state and counters.
type Stats struct {
	// Applied is the first slot not applied yet.
	Applied paxos.Slot
	// Keys and Sessions are the sizes of the map and the session table.
	Keys, Sessions int
	// LogTime is the largest stamp applied (see Config.SessionTTL).
	LogTime time.Time
	// SnapshotSlot is the slot the newest complete snapshot in the snapshot
	// log covers up to (exclusive), 0 if none.
	SnapshotSlot paxos.Slot
	// SnapshotsTaken counts the snapshots this server wrote of its own
	// state, SnapshotsInstalled those it fetched from peers and installed,
	// and FetchFailures the transfers from peers that failed or offered
	// nothing newer.
	SnapshotsTaken, SnapshotsInstalled, FetchFailures uint64
}

// NewServer builds a server for node p from cfg (after cfg.Validate),
// loading the newest complete snapshot from cfg.Snapshots. It fails with
// an error wrapping ErrCorruptSnapshot if that snapshot cannot be read
// back. p must not be shared with another Server.
func NewServer(p *paxos.Paxos, cfg Config) (*Server, error) {
	if p == nil {
		return nil, errors.New("kvstore: nil paxos node")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	s := &Server{
		p:       p,
		cfg:     c,
		clock:   c.Clock,
		logger:  c.Logger,
		ttl:     int64(c.SessionTTL),
		changed: make(chan struct{}),
		waiters: make(map[reqKey][]chan result),
		started: make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.life, s.stop = context.WithCancel(context.Background())
	var err error
	s.store, s.m, err = openSnapshotStore(context.Background(), c.Snapshots, s.ttl)
	if err != nil {
		return nil, err
	}
	s.snapNext, s.durable = s.m.next, s.m.next
	if s.m.next > 0 {
		s.logger.Info("loaded snapshot", "slot", s.m.next, "keys", len(s.m.data), "sessions", len(s.m.sessions))
	}
	return s, nil
}

// Stats returns the server's current state and counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{Applied: s.m.next, Keys: len(s.m.data), Sessions: len(s.m.sessions), LogTime: time.Unix(0, s.m.logTime)}
	s.mu.Unlock()
	st.SnapshotSlot = s.store.point()
	st.SnapshotsTaken, st.SnapshotsInstalled, st.FetchFailures = s.taken.Load(), s.installed.Load(), s.fetchFailures.Load()
	return st
}

// Run applies chosen operations until ctx ends, then waits for the
// snapshot it may be writing and returns nil. It returns an error at once
// if it was already called. Run the paxos node (p.Start) alongside.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("kvstore: Run called twice")
	}
	s.running = true
	next := s.m.next
	s.mu.Unlock()
	close(s.started)
	defer close(s.done)
	defer s.shutdown()
	var wg sync.WaitGroup
	defer wg.Wait()
	backoff := newBackoff(s.clock, 10*time.Millisecond, time.Second)
	for ctx.Err() == nil {
		chosen, err := s.p.Learn(ctx, next, learnBatch)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, paxos.ErrForgotten):
			s.logger.Info("fell behind the log the peers hold; fetching a snapshot", "slot", next, "err", err)
			s.catchUp(ctx, next)
			next = s.applied()
			continue
		case err != nil:
			s.logger.Error("learning chosen values failed", "slot", next, "err", err)
			backoff.wait(ctx)
			continue
		}
		backoff.reset()
		next = s.apply(chosen)
		s.maybeSnapshot(ctx, &wg)
	}
	return nil
}

func (s *Server) applied() paxos.Slot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.next
}

// apply applies consecutive chosen values and returns the next slot.
func (s *Server) apply(chosen []paxos.Chosen) paxos.Slot {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range chosen {
		if c.Slot != s.m.next {
			// Learn returns consecutive slots from the one asked for; if it
			// ever does not, apply nothing out of order and ask again.
			s.logger.Error("learned an unexpected slot", "slot", c.Slot, "want", s.m.next)
			break
		}
		if !c.NoOp {
			s.sinceBytes += int64(len(c.Value))
			if o, err := decodeOp(c.Value); err != nil {
				// Every replica of this release skips it alike.
				s.logger.Error("skipping an undecodable op", "slot", c.Slot, "err", err)
			} else {
				r := s.m.apply(o)
				k := reqKey{o.Client, o.Seq}
				for _, ch := range s.waiters[k] {
					ch <- r // buffered, one result per waiter
				}
				delete(s.waiters, k)
			}
		}
		s.m.next = c.Slot + 1
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return s.m.next
}

// execute proposes o and waits for its result, or for ctx to end.
//
// The proposal itself runs under the server's lifetime, not under ctx: it
// goes on after the caller gave up (its outcome is then found by the
// client's retry, deduplicated), bounded by MaxPendingProposals and
// MaxPendingBytes. So a client's deadline never cuts the paxos node's work
// short midway (a proposal abandoned while the node looks for a leader
// would otherwise leave that search to a context that has ended).
func (s *Server) execute(ctx context.Context, o *op) *reply {
	o.Stamp = s.clock.Now().UnixNano()
	value := appendOp(make([]byte, 0, encodedOpLen(o)), o)
	if !s.admit(len(value)) {
		return &reply{Status: statusRetry, Detail: "server busy: too many proposals in flight"}
	}
	k := reqKey{o.Client, o.Seq}
	ch := make(chan result, 1)
	s.mu.Lock()
	s.waiters[k] = append(s.waiters[k], ch)
	s.mu.Unlock()
	defer s.dropWaiter(k, ch)

	type proposed struct {
		slot paxos.Slot
		err  error
	}
	pc := make(chan proposed, 1)
	go func() {
		defer s.release(len(value))
		slot, err := s.p.Propose(s.life, value)
		pc <- proposed{slot, err}
	}()
	var slot paxos.Slot
	known := false
	for {
		s.mu.Lock()
		applied, changed := s.m.next, s.changed
		s.mu.Unlock()
		select {
		case r := <-ch:
			return resultReply(r)
		default:
		}
		if known && applied > slot {
			// The slot was passed without applying it here: this server
			// installed a snapshot over it. A retry finds the outcome.
			return &reply{Status: statusRetry, Detail: fmt.Sprintf("slot %d was installed from a snapshot", slot)}
		}
		select {
		case r := <-ch:
			return resultReply(r)
		case p := <-pc:
			switch {
			case errors.Is(p.err, paxos.ErrTooLarge):
				return &reply{Status: statusBadRequest, Code: badValueTooLarge, Detail: p.err.Error()}
			case p.err != nil:
				return &reply{Status: statusRetry, Detail: p.err.Error()}
			}
			slot, known = p.slot, true
		case <-changed:
		case <-ctx.Done():
			return &reply{Status: statusRetry, Detail: ctx.Err().Error()}
		case <-s.done:
			return &reply{Status: statusRetry, Detail: "server stopped"}
		}
	}
}

// admit reserves room for a proposal of n bytes, or reports that the
// server has too many in flight or is stopping. The caller runs the
// proposal and then calls release.
func (s *Server) admit(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping || s.pending >= s.cfg.MaxPendingProposals || (s.pending > 0 && s.pendingBytes+int64(n) > s.cfg.MaxPendingBytes) {
		return false
	}
	s.pending++
	s.pendingBytes += int64(n)
	s.proposals.Add(1)
	return true
}

func (s *Server) release(n int) {
	s.mu.Lock()
	s.pending--
	s.pendingBytes -= int64(n)
	s.mu.Unlock()
	s.proposals.Done()
}

// shutdown cancels the proposals in flight and waits for them.
func (s *Server) shutdown() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.stop()
	s.proposals.Wait()
}

func (s *Server) dropWaiter(k reqKey, ch chan result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.waiters[k]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(s.waiters, k)
	} else {
		s.waiters[k] = ws
	}
}

func resultReply(r result) *reply {
	rep := &reply{Status: r.status}
	switch r.status {
	case statusOK:
		rep.Value = r.value
	case statusExpired:
		rep.Detail = "session unknown to the replicas (expired or never opened)"
	case statusStale:
		rep.Detail = "request below the acknowledged watermark; its outcome is no longer tracked"
	}
	return rep
}

// handleOp serves one client request (RouteOp).
func (s *Server) handleOp(ctx context.Context, req []byte) ([]byte, error) {
	o, err := decodeOp(req)
	if err == nil {
		err = checkRequest(o, s.cfg.MaxKeySize, s.cfg.MaxValueSize)
	}
	if err == nil && o.Kind != opRegister && o.Seq == 0 {
		err = fmt.Errorf("%w: %v numbered 0", ErrMalformed, o.Kind) // requests are numbered from 1
	}
	if err != nil {
		return appendReply(nil, &reply{Status: statusBadRequest, Code: badCodeOf(err), Detail: err.Error()}), nil
	}
	select {
	case <-s.done:
		return appendReply(nil, &reply{Status: statusRetry, Detail: "server stopped"}), nil
	case <-s.started:
	default:
		return appendReply(nil, &reply{Status: statusRetry, Detail: "server not running yet"}), nil
	}
	r := s.execute(ctx, o)
	return appendReply(make([]byte, 0, len(r.Value)+len(r.Detail)+16), r), nil
}

// maybeSnapshot starts writing a snapshot if the log grew past a threshold
// since the last one and none is being written. The writer goes on with
// the next snapshot if the threshold was crossed again meanwhile, so that
// a snapshot is not left waiting for more operations.
func (s *Server) maybeSnapshot(ctx context.Context, wg *sync.WaitGroup) {
	s.mu.Lock()
	f := s.dueLocked()
	if f != nil {
		s.snapshotting = true
	}
	s.mu.Unlock()
	if f == nil {
		return
	}
	wg.Go(func() {
		for f != nil {
			s.writeSnapshot(ctx, f)
			s.mu.Lock()
			s.snapshotting, f = false, nil
			if ctx.Err() == nil {
				f = s.dueLocked()
			}
			s.snapshotting = f != nil
			s.mu.Unlock()
		}
	})
}

// dueLocked returns a frozen copy of the state if a snapshot is due and
// none is being written, nil otherwise. s.mu is held.
func (s *Server) dueLocked() *machine {
	if s.snapshotting || (int(s.m.next-s.snapNext) < s.cfg.SnapshotEvery && s.sinceBytes < s.cfg.SnapshotBytes) {
		return nil
	}
	f := s.m.freeze()
	s.snapNext, s.sinceBytes = f.next, 0
	return f
}

// writeSnapshot writes f to the snapshot log, then lets paxos release the
// log below it.
func (s *Server) writeSnapshot(ctx context.Context, f *machine) {
	start := s.clock.Now()
	w := s.store.begin()
	err := encodeSnapshot(f, s.cfg.SnapshotChunkSize, func(chunk []byte) error { return w.add(ctx, chunk) })
	if err != nil {
		w.abort()
		s.logger.Error("writing snapshot failed", "slot", f.next, "err", err)
		return
	}
	ok, err := w.commit(ctx, f.next)
	if err != nil {
		s.logger.Error("committing snapshot failed", "slot", f.next, "err", err)
	}
	if !ok {
		return
	}
	// Release the log below the previous snapshot, not below this one: a
	// peer down for less than about a snapshot interval then catches up
	// from the log instead of needing a whole snapshot, at the cost of one
	// interval of log (SnapshotEvery slots, SnapshotBytes bytes) kept.
	// Done follows the same point, so the cluster's Min stays at or below
	// every server's newest snapshot: every server can always come back
	// from its own snapshot and its peers' logs.
	s.mu.Lock()
	prev := s.durable
	s.durable = max(s.durable, f.next)
	s.mu.Unlock()
	if prev > 0 {
		s.p.Compact(prev)
		s.p.Done(prev - 1)
	}
	s.taken.Add(1)
	s.logger.Debug("snapshot written", "slot", f.next, "keys", len(f.data), "sessions", len(f.sessions), "took", s.clock.Since(start))
}

// catchUp fetches and installs a snapshot newer than after from a peer,
// trying them in turn, until one is installed or ctx ends.
func (s *Server) catchUp(ctx context.Context, after paxos.Slot) {
	backoff := newBackoff(s.clock, 50*time.Millisecond, 2*time.Second)
	if len(s.cfg.Peers) == 0 {
		s.logger.Error("fell behind the log and has no peers to fetch a snapshot from", "slot", after)
		backoff.wait(ctx)
		return
	}
	for ctx.Err() == nil {
		for range s.cfg.Peers {
			peer := s.cfg.Peers[s.fetchNext%len(s.cfg.Peers)]
			ok, err := s.fetch(ctx, peer, after)
			if ok {
				return
			}
			s.fetchFailures.Add(1)
			if ctx.Err() != nil {
				return
			}
			s.logger.Debug("no snapshot from peer", "peer", peer, "after", after, "err", err)
			s.fetchNext++
		}
		backoff.wait(ctx)
	}
}

// install replaces the state with m, fetched from a peer and written to
// the snapshot log, and releases the paxos log below it.
func (s *Server) install(m *machine) {
	s.mu.Lock()
	if m.next <= s.m.next {
		s.mu.Unlock()
		return
	}
	s.m = m
	s.snapNext, s.sinceBytes, s.durable = m.next, 0, m.next
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	s.p.Compact(m.next)
	s.p.Done(m.next - 1)
	s.installed.Add(1)
	s.logger.Info("installed snapshot", "slot", m.next, "keys", len(m.data), "sessions", len(m.sessions))
}

// Routes under which Register serves a Server.
const (
	// RouteOp is the unary route of client requests.
	RouteOp = "kvstore/op"
	// RouteSnapshot is the stream route peers fetch snapshots from.
	RouteSnapshot = "kvstore/snapshot"
)

// Register serves s on mux: client requests (RouteOp) and snapshot
// transfers to peers (RouteSnapshot). Serve it on the same Mux as the
// server's paxos node (paxos.Register), so that a server's address is its
// node's.
func Register(mux *transport.Mux, s *Server) {
	mux.Handle(RouteOp, s.handleOp)
	mux.HandleStream(RouteSnapshot, s.serveSnapshot)
}

// backoff waits exponentially longer, with jitter, on a clock.
type backoff struct {
	clock    clockwork.Clock
	min, max time.Duration
	cur      time.Duration
}

func newBackoff(clock clockwork.Clock, min, max time.Duration) *backoff {
	return &backoff{clock: clock, min: min, max: max, cur: min}
}

func (b *backoff) reset() { b.cur = b.min }

// wait sleeps for the current delay (between half and all of it) or until
// ctx ends, and doubles the delay.
func (b *backoff) wait(ctx context.Context) {
	d := b.cur/2 + jitter(b.cur/2)
	b.cur = min(2*b.cur, b.max)
	t := b.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.Chan():
	case <-ctx.Done():
	}
}
