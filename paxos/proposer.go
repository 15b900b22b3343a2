package paxos

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/synod-go/synod/log"
)

// Proposer is the proposer role of one node. Its decisions are made by a
// proposerState owned by a single loop goroutine; calls to acceptors run on
// a fixed pool of sender goroutines per acceptor and report back to the
// loop, so no lock is ever held across I/O and no goroutine is started per
// value. Two exceptions skip the senders: the node's own acceptor when its
// logs are log.Memory (its writes never block, so the loop calls it
// directly), and a peer whose client is an AsyncAcceptorClient, to which the
// loop starts each new batch's Accept itself while that peer keeps up.
type Proposer struct {
	cfg    Config
	logger *slog.Logger
	clock  clockwork.Clock
	node   *Paxos

	// Set by run, read-only afterwards.
	members  []Member
	self     int
	clients  []AcceptorClient
	pclients []ProposerClient
	sendq    []chan sendJob
	// sendBytes counts the value bytes of the Accepts waiting in each
	// sendq: a slow peer's queue is bounded by bytes too (sendQueueBytes),
	// not only by count, since each waiting Accept pins its batch.
	sendBytes []atomic.Int64
	// sendEntries counts the entries of the Accepts waiting in each sendq.
	sendEntries []atomic.Int64

	props  chan *proposal // proposals for the loop (bounded: back-pressure)
	events chan func()    // results and timers, executed by the loop

	// Shared with other goroutines.
	leaderBallot atomic.Uint64 // the leader this node believes in (0: none)
	leading      atomic.Bool
	lastContact  atomic.Int64 // clock time (UnixNano) the election timer last restarted
	// leaderContact is when a leader or candidate itself last reached this
	// node. Only it backs "a leader is alive" in probe answers: a node that
	// merely heard from peers that a leader lives must not vouch for it, or
	// followers end up vouching for each other with no leader at all.
	leaderContact atomic.Int64
	running       atomic.Bool
	// mark is the leader's latest commit point and Min, published by the
	// loop for the senders: a queued Accept leaves with the commit point of
	// when it is sent, not of when it was queued, so a follower whose queue
	// is long still learns promptly how far the log is chosen (and its
	// observer catches up from the others instead of waiting its turn).
	mark    atomic.Pointer[commitMark]
	stopped chan struct{}   // closed when run returns
	runCtx  context.Context // the context run was called with

	metrics metrics

	explicitMu sync.Mutex
	explicit   map[Slot][]byte // explicit-slot proposals made here, until known decided
	retrying   atomic.Bool

	// Owned by the loop goroutine.
	st       *proposerState
	rng      *rand.Rand
	queue    []Entry // assigned, not yet sent
	inflight int
	waiters  map[Slot]*proposal
	lastSent []time.Time
	lastOK   []time.Time
	timeout  time.Duration // this round's randomized election timeout
	// failedCampaigns counts this node's campaigns in a row that did not
	// win (preempted, or no quorum answered in time) since it last won or
	// heard a leader's Accept. Each doubles the election timeout (up to
	// maxBackoff) and the time a campaign is given (campaignTime): when
	// phase 1 takes longer than the timeouts allow (large values, a
	// starved CPU), candidates back off instead of preempting each other
	// forever.
	failedCampaigns int
	heardLeader     atomic.Bool // an Accept reached the local acceptor since the loop last looked
	probing         bool
	campaignEnd     time.Time
	failingFrom     time.Time // forwarding to the leader has failed since
	lastFailure     time.Time // the last forwarding failure
	commitSeen      Slot      // the commit point at commitAt
	commitAt        time.Time // when the commit point last moved (or a leadership began)
	// backlog holds, per peer, the batches that found its send queue full,
	// in slot order, until there is room (drainBacklog); it is bounded
	// (maxBacklog). Sent late, even once chosen, they keep the peer's
	// acceptor free of holes, which its observer would otherwise have to
	// fill from the other acceptors.
	backlog      [][]*batch
	backlogBytes []int64
	// inlineSelf: the node's acceptor keeps its state in memory logs, so
	// the loop calls it directly instead of through a sender (two
	// goroutine hand-offs less per batch); its replies wait in
	// selfReplies until the loop is done with what it is doing.
	inlineSelf  bool
	selfReplies []selfReply
	// async[i] is set when peer i's client can start an Accept without
	// blocking (AsyncAcceptorClient): the loop then sends new batches to
	// it itself while the peer keeps up (its queue and backlog empty, at
	// most MaxInflight+1 such calls in flight), rather than through a
	// sender. The senders' own calls (at most MaxInflight+1 too) may be in
	// flight alongside, and either may overtake the other, which Paxos
	// does not mind. asyncCalls are the loop's calls, until their replies
	// are handled; onTick cancels those older than RPCTimeout.
	async      []AsyncAcceptorClient
	asyncN     []int
	asyncCalls map[uint64]asyncCall
	asyncID    uint64
}

// asyncCall is an Accept the loop started through an AsyncAcceptorClient.
type asyncCall struct {
	cancel func()
	sent   time.Time
}

// selfReply is the local acceptor's answer to an Accept the loop sent it
// directly (inlineSelf).
type selfReply struct {
	b   Ballot
	bt  *batch
	rep *Accepted
	err error
}

// commitMark is a leader's commit point in its ballot, and the Min it knew.
type commitMark struct {
	ballot      Ballot
	commit, min Slot
}

// publishMark makes the current commit point and Min visible to the
// senders. Called by the loop whenever either may have moved.
func (p *Proposer) publishMark() {
	st := p.st
	if st.role != leader {
		return
	}
	if m := p.mark.Load(); m != nil && m.ballot == st.ballot && m.commit == st.commit && m.min == st.min {
		return
	}
	p.mark.Store(&commitMark{ballot: st.ballot, commit: st.commit, min: st.min})
}

// freshen raises a to the latest commit point and Min published for its
// ballot. The commit point vouches for the entries of its own ballot only,
// so a mark of another ballot is not used. a belongs to the caller (each
// send builds its own).
func (p *Proposer) freshen(a *Accept) {
	if m := p.mark.Load(); m != nil && m.ballot == a.Ballot {
		a.Commit = max(a.Commit, m.commit)
		a.Min = max(a.Min, m.min)
	}
}

// proposal is a value waiting to be chosen.
type proposal struct {
	value    []byte
	explicit bool
	slot     Slot
	reply    chan proposeResult // nil: nobody waits
	wait     bool               // reply when chosen, not when queued
}

type proposeResult struct {
	status ProposeStatus
	slot   Slot
	// ProposeOK from the leading loop: the ballot that chose the value and
	// the commit point then (0 otherwise).
	ballot Ballot
	commit Slot
}

// batch is one Accept's worth of entries of one ballot.
type batch struct {
	ballot    Ballot
	entries   []Entry
	slots     []Slot
	remaining int
	bytes     int64 // of its values
	acked     uint64
	done      atomic.Bool
}

type jobKind int

const (
	jobAccept jobKind = iota
	jobHeartbeat
	jobPrepare
)

type sendJob struct {
	kind    jobKind
	retry   bool // a resend after a failure: skipped once the batch is chosen
	accept  *Accept
	prepare *Prepare
	timeout time.Duration // a Prepare's, RPCTimeout grown with failed campaigns
	batch   *batch
	more    []*batch // further batches whose entries accept carries
	bytes   int64    // value bytes of accept's entries, counted in sendBytes
}

func newProposer(cfg Config, node *Paxos) *Proposer {
	return &Proposer{
		cfg:      cfg,
		logger:   cfg.Logger,
		clock:    cfg.Clock,
		node:     node,
		props:    make(chan *proposal, cfg.MaxPending),
		stopped:  make(chan struct{}),
		events:   make(chan func(), 1024),
		explicit: make(map[Slot][]byte),
		waiters:  make(map[Slot]*proposal),
		rng:      rand.New(rand.NewSource(cfg.Seed)),
	}
}

// run drives the proposer until ctx ends.
func (p *Proposer) run(ctx context.Context, members []Member, self int, clients []AcceptorClient, pclients []ProposerClient) {
	p.members, p.self, p.clients, p.pclients = members, self, clients, pclients
	p.runCtx = ctx
	n := len(members)
	p.st = newProposerState(members[self].ID, n, self)
	promised, _ := p.node.acceptor.status()
	p.st.see(promised)
	p.lastSent = make([]time.Time, n)
	p.lastOK = make([]time.Time, n)
	p.sendq = make([]chan sendJob, n)
	p.sendBytes = make([]atomic.Int64, n)
	p.sendEntries = make([]atomic.Int64, n)
	p.backlog = make([][]*batch, n)
	p.backlogBytes = make([]int64, n)
	p.inlineSelf = p.node.acceptor.inline
	p.async = make([]AsyncAcceptorClient, n)
	p.asyncN = make([]int, n)
	p.asyncCalls = make(map[uint64]asyncCall)
	for i, c := range clients {
		if a, ok := c.(AsyncAcceptorClient); ok && i != self {
			p.async[i] = a
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range n {
		p.sendq[i] = make(chan sendJob, 4*p.cfg.MaxInflight+16)
		for range p.cfg.MaxInflight + 1 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.sender(ctx, i)
			}()
		}
	}
	p.touch()
	p.timeout = p.randomTimeout()
	p.running.Store(true)
	defer p.shutdown()
	tick := p.clock.NewTicker(p.tickEvery())
	defer tick.Stop()
	for {
		// Backpressure: while MaxPending values wait for the window, new
		// proposals stay in p.props (and, once it is full, their callers
		// block in Propose until their context ends).
		props := p.props
		if len(p.queue) >= p.cfg.MaxPending {
			props = nil
		}
		select {
		case <-ctx.Done():
			return
		case f := <-p.events:
			f()
		case pr := <-props:
			p.handleProposal(pr)
			p.takeProposals()
			if p.inflight == 0 && len(p.queue) < p.cfg.MaxBatch {
				// The batch would go out now, not full. Callers just
				// answered (whose values were chosen) may be about to
				// propose again: let them run first, once, so that they
				// join this batch rather than wait for the next.
				runtime.Gosched()
				p.takeProposals()
			}
			p.flush()
		case <-tick.Chan():
			p.onTick(ctx)
		}
		p.takeSelfReplies()
	}
}

// takeProposals handles the proposals waiting in p.props, up to 256, while
// the queue has room.
func (p *Proposer) takeProposals() {
	for range 256 {
		if len(p.queue) >= p.cfg.MaxPending {
			return
		}
		select {
		case pr := <-p.props:
			p.handleProposal(pr)
		default:
			return
		}
	}
}

// isMemory reports whether l is the log package's in-memory Log, whose
// writes never block.
func isMemory(l log.Log) bool {
	_, ok := l.(*log.Memory)
	return ok
}

// takeSelfReplies handles the local acceptor's replies to the Accepts the
// loop sent it directly, including those sent while handling them.
func (p *Proposer) takeSelfReplies() {
	for k := 0; k < len(p.selfReplies); k++ { // onAccepted may append
		r := p.selfReplies[k]
		p.selfReplies[k] = selfReply{}
		p.onAccepted(p.self, r.b, r.bt, r.rep, r.err)
	}
	p.selfReplies = p.selfReplies[:0]
}

func (p *Proposer) tickEvery() time.Duration {
	return max(min(p.cfg.HeartbeatInterval, p.cfg.ElectionTimeout/4), time.Millisecond)
}

func (p *Proposer) shutdown() {
	p.running.Store(false)
	close(p.stopped)
	for _, c := range p.asyncCalls {
		c.cancel() // their callbacks find the loop gone
	}
	p.leading.Store(false)
	for slot, w := range p.waiters {
		delete(p.waiters, slot)
		w.reply <- proposeResult{status: ProposeNotLeader}
	}
	for {
		select {
		case pr := <-p.props:
			if pr.reply != nil {
				pr.reply <- proposeResult{status: ProposeNotLeader}
			}
		default:
			return
		}
	}
}

// maxBackoff is the most doublings of the election timeout and of a
// campaign's time that failed campaigns bring.
const maxBackoff = 3

// backoff is the factor failed campaigns put on the election timeout and
// on a campaign's time.
func (p *Proposer) backoff() time.Duration {
	return time.Duration(1) << min(p.failedCampaigns, maxBackoff)
}

// randomTimeout draws an election timeout in [t, 2t), where t is
// ElectionTimeout times the backoff.
func (p *Proposer) randomTimeout() time.Duration {
	t := p.cfg.ElectionTimeout * p.backoff()
	return t + time.Duration(p.rng.Int63n(int64(t)))
}

// campaignTime is how long a Prepare may take, and a campaign wait for a
// quorum of promises (twice that).
func (p *Proposer) campaignTime() time.Duration {
	return p.cfg.RPCTimeout * p.backoff()
}

// campaignFailed notes a campaign that did not win.
func (p *Proposer) campaignFailed() {
	p.failedCampaigns++
	p.touch()
	p.timeout = p.randomTimeout()
}

// touch records contact with a leader or candidate now.
func (p *Proposer) touch() { p.lastContact.Store(p.clock.Now().UnixNano()) }

// postNow is post for callers that must not block, such as a transport's
// reader goroutine or the loop itself (a cancel may call back at once):
// if the loop's queue is full, a goroutine waits to post f.
func (p *Proposer) postNow(f func()) {
	select {
	case p.events <- f:
	default:
		go p.post(p.runCtx, f)
	}
}

// post runs f on the loop goroutine (dropped if the loop is gone).
func (p *Proposer) post(ctx context.Context, f func()) {
	select {
	case p.events <- f:
	case <-ctx.Done():
	case <-p.stopped:
	}
}

// contact is called by the local acceptor when a leader or candidate with
// ballot b reached it.
func (p *Proposer) contact(b Ballot, leader bool) {
	p.touch()
	if leader {
		p.heardLeader.Store(true)
	}
	p.leaderContact.Store(p.clock.Now().UnixNano())
	if b > Ballot(p.leaderBallot.Load()) {
		p.leaderBallot.Store(uint64(b))
	}
}

// leaderIndex returns the index in members of the member believed to
// lead, or -1. It is safe to call from any goroutine.
func (p *Proposer) leaderIndex(members []Member) int {
	b := Ballot(p.leaderBallot.Load())
	if b == 0 {
		return -1
	}
	for i, m := range members {
		if m.ID == b.Proposer() {
			return i
		}
	}
	return -1
}

// handleProposal assigns a slot to a proposal (leader only).
func (p *Proposer) handleProposal(pr *proposal) {
	st := p.st
	if st.role != leader {
		if pr.reply != nil {
			pr.reply <- proposeResult{status: ProposeNotLeader}
		}
		return
	}
	if pr.explicit {
		if st.taken(pr.slot) || pr.slot < p.node.Min() || p.node.observer.knows(pr.slot) {
			if pr.reply != nil {
				pr.reply <- proposeResult{status: ProposeTaken, slot: pr.slot}
			}
			return
		}
	}
	e := st.assign(Entry{Slot: pr.slot, Value: pr.value}, pr.explicit)
	p.metrics.proposed.Add(1)
	p.queue = append(p.queue, e)
	if pr.reply != nil {
		if pr.wait {
			p.waiters[e.Slot] = pr
		} else {
			pr.reply <- proposeResult{status: ProposeOK, slot: e.Slot}
		}
	}
}

// flush sends queued entries in batches while the window has room.
func (p *Proposer) flush() {
	for p.st.role == leader && p.inflight < p.cfg.MaxInflight && len(p.queue) > 0 {
		// Natural batching: while a batch is in flight, what queues behind
		// it waits to go out as one batch when a reply frees the window.
		// Only a full batch is sent at once into the pipeline.
		k, size := 0, 0
		for k < len(p.queue) && k < p.cfg.MaxBatch {
			n := len(p.queue[k].Value)
			if k > 0 && size+n > p.cfg.MaxBatchBytes {
				break
			}
			size += n
			k++
		}
		full := k == p.cfg.MaxBatch || k < len(p.queue)
		if p.inflight > 0 && !full {
			return
		}
		b := &batch{ballot: p.st.ballot, entries: p.queue[:k:k], remaining: k, bytes: int64(size)}
		b.slots = make([]Slot, k)
		for i, e := range b.entries {
			b.slots[i] = e.Slot
			if st := p.st.slots[e.Slot]; st != nil {
				st.batch = b
			} else {
				b.remaining-- // chosen meanwhile (cannot happen before sending, kept for safety)
			}
		}
		p.queue = p.queue[k:]
		if len(p.queue) == 0 {
			p.queue = nil
		}
		p.inflight++
		p.metrics.batches.Add(1)
		for i := range p.members {
			if i != p.self {
				p.sendAccept(i, b, false)
			}
		}
		p.sendAccept(p.self, b, false) // last: it may be answered at once (inlineSelf)
	}
}

func (p *Proposer) acceptMsg(b Ballot, entries []Entry) *Accept {
	return &Accept{
		Ballot:  b,
		Commit:  p.st.commit,
		Min:     p.st.min,
		Done:    p.node.doneMark(),
		Chosen:  p.st.chosenList(1024),
		Entries: entries,
	}
}

func (p *Proposer) sendAccept(i int, b *batch, retry bool) {
	p.lastSent[i] = p.clock.Now()
	if i == p.self && p.inlineSelf {
		a := p.acceptMsg(b.ballot, b.entries)
		rep, err := p.node.acceptor.Accept(p.runCtx, a)
		p.selfReplies = append(p.selfReplies, selfReply{b: b.ballot, bt: b, rep: rep, err: err})
		return
	}
	if !retry && len(p.backlog[i]) > 0 {
		p.addBacklog(i, b) // behind earlier ones: keep the order
		return
	}
	a := p.acceptMsg(b.ballot, b.entries)
	if p.async[i] != nil && p.asyncN[i] <= p.cfg.MaxInflight && len(p.sendq[i]) == 0 && len(p.backlog[i]) == 0 &&
		p.sendAsync(i, a, b) {
		return
	}
	job := sendJob{kind: jobAccept, accept: a, batch: b, retry: retry, bytes: b.bytes}
	if !p.enqueue(i, job) {
		if retry {
			p.metrics.deferred.Add(1)
			p.retryLater(i, b)
		} else {
			p.addBacklog(i, b)
		}
	}
}

// sendAsync starts Accept a for batch bt to peer i from the loop (see
// Proposer.async); false if the client could not start it without
// blocking, and the caller queues it for a sender instead.
func (p *Proposer) sendAsync(i int, a *Accept, bt *batch) bool {
	p.asyncID++
	id, b := p.asyncID, a.Ballot
	cancel, err := p.async[i].AcceptAsync(a, p.cfg.RPCTimeout, func(rep *Accepted, err error) {
		p.postNow(func() {
			delete(p.asyncCalls, id)
			p.asyncN[i]--
			p.onAccepted(i, b, bt, rep, err)
			p.drainBacklog(i)
		})
	})
	if err != nil {
		return false
	}
	p.asyncCalls[id] = asyncCall{cancel: cancel, sent: p.clock.Now()}
	p.asyncN[i]++
	return true
}

// expireAsync cancels the loop's calls that have waited RPCTimeout for a
// reply; each then reports an error, and its batch is retried.
func (p *Proposer) expireAsync(now time.Time) {
	for _, c := range p.asyncCalls {
		if now.Sub(c.sent) >= p.cfg.RPCTimeout {
			c.cancel() // idempotent: the entry goes once the error is handled
		}
	}
}

// enqueue puts job in peer i's send queue if it has room, by count and by
// bytes (sendQueueBytes).
func (p *Proposer) enqueue(i int, job sendJob) bool {
	if q := p.sendBytes[i].Load(); q > 0 && q+job.bytes > p.sendQueueBytes() {
		return false
	}
	p.sendBytes[i].Add(job.bytes)
	p.sendEntries[i].Add(int64(len(job.accept.Entries)))
	select {
	case p.sendq[i] <- job:
		return true
	default:
		p.took(i, job)
		return false
	}
}

// took uncounts a job taken from peer i's queue.
func (p *Proposer) took(i int, job sendJob) {
	if job.accept != nil {
		p.sendBytes[i].Add(-job.bytes)
		p.sendEntries[i].Add(-int64(len(job.accept.Entries)))
	}
}

// sendQueueBytes bounds the value bytes queued for one peer beyond those
// in flight; an Accept that would pass it waits, as when the queue is
// full.
func (p *Proposer) sendQueueBytes() int64 { return 4 * int64(p.cfg.MaxBatchBytes) }

// maxBacklog bounds a peer's backlog in batches; in bytes, the backlog and
// the peer's queue together stay within sendQueueBytes (the bound the
// queue alone has), so a follower slow with large values lags no further
// than before there was a backlog. Past either bound the oldest batches
// are given up on: the peer's observer learns those slots from the other
// acceptors (a batch not yet chosen is retried instead, as after a failed
// call). The backlog is for many small batches, the queue's count being
// what overflows first at a high rate of small values.
func (p *Proposer) maxBacklog() int { return 4 * max(p.cfg.MaxBatch, 256) }

func (p *Proposer) addBacklog(i int, b *batch) {
	p.metrics.deferred.Add(1)
	p.backlog[i] = append(p.backlog[i], b)
	p.backlogBytes[i] += b.bytes
	for len(p.backlog[i]) > 0 && (len(p.backlog[i]) > p.maxBacklog() || p.backlogBytes[i]+p.sendBytes[i].Load() > p.sendQueueBytes()) {
		old := p.backlog[i][0]
		p.backlog[i][0] = nil
		p.backlog[i] = p.backlog[i][1:]
		p.backlogBytes[i] -= old.bytes
		if !old.done.Load() {
			p.retryLater(i, old)
		}
	}
}

// drainBacklog sends peer i's backlog while its queue has room, the
// batches merged into Accepts of up to MaxBatch values and MaxBatchBytes.
// Only the loop fills the queues, so room seen here stays.
func (p *Proposer) drainBacklog(i int) {
	q := p.backlog[i]
	for len(q) > 0 && len(p.sendq[i]) < cap(p.sendq[i]) {
		if p.st.role != leader || q[0].ballot != p.st.ballot {
			q = nil // of an earlier leadership: nothing to do with it
			break
		}
		k, n, size := 0, 0, int64(0)
		for k < len(q) && q[k].ballot == q[0].ballot {
			m, sz := len(q[k].entries), q[k].bytes
			if k > 0 && (n+m > p.cfg.MaxBatch || size+sz > int64(p.cfg.MaxBatchBytes)) {
				break
			}
			k, n, size = k+1, n+m, size+sz
		}
		entries := q[0].entries
		if k > 1 {
			entries = make([]Entry, 0, n)
			for _, b := range q[:k] {
				entries = append(entries, b.entries...)
			}
		}
		job := sendJob{kind: jobAccept, accept: p.acceptMsg(q[0].ballot, entries), batch: q[0], bytes: size}
		if k > 1 {
			job.more = append([]*batch(nil), q[1:k]...)
		}
		if !p.enqueue(i, job) {
			break // over the byte bound: wait for the queue to shrink
		}
		clear(q[:k])
		q = q[k:]
		p.backlogBytes[i] -= size
	}
	if len(q) == 0 {
		q = nil
		p.backlogBytes[i] = 0
	}
	p.backlog[i] = q
}

func (p *Proposer) retryLater(i int, b *batch) {
	// AfterFunc runs on its own goroutine, so it may wait for room in the
	// loop's queue: a retry is never dropped (nothing else would resend).
	p.clock.AfterFunc(p.cfg.HeartbeatInterval, func() {
		p.post(p.runCtx, func() {
			if !b.done.Load() && p.st.role == leader && p.st.ballot == b.ballot && b.acked&(1<<i) == 0 {
				p.sendAccept(i, b, true)
			}
		})
	})
}

// sender runs calls to acceptor i, one at a time. The Accepts queued for
// the peer when a sender takes one go out with it, merged into one call
// (mergeQueued): a peer that fell behind (a slow disk, a descheduled
// process) gets what it missed in a few large calls, at its own pace,
// instead of one call per batch until its queue overflows and the batches
// that find it full are chosen without it, leaving holes its observer
// must fill from the other acceptors.
func (p *Proposer) sender(ctx context.Context, i int) {
	// One deadline context serves the calls of the next tenth of
	// RPCTimeout (a timer per call cost 5% of the CPU of a small Propose),
	// so each call is bounded by between 0.9 and 1 RPCTimeout. Calls are
	// sequential: none is in flight when it is replaced.
	var cctx context.Context
	cancel := func() {}
	defer func() { cancel() }()
	var expires time.Time
	var carry sendJob // taken from the queue while merging, sent next
	for {
		job := carry
		carry = sendJob{}
		if job.accept == nil && job.prepare == nil {
			select {
			case <-ctx.Done():
				return
			case job = <-p.sendq[i]:
			}
			p.took(i, job)
		}
		if job.retry && job.batch.done.Load() {
			continue // chosen meanwhile; the peer learns it by catching up
		}
		if now := p.clock.Now(); cctx == nil || cctx.Err() != nil || expires.Sub(now) < p.cfg.RPCTimeout*9/10 {
			cancel()
			cctx, cancel = clockwork.WithTimeout(ctx, p.clock, p.cfg.RPCTimeout)
			expires = now.Add(p.cfg.RPCTimeout)
		}
		switch job.kind {
		case jobPrepare:
			pctx, pcancel := cctx, context.CancelFunc(func() {})
			if job.timeout > p.cfg.RPCTimeout {
				pctx, pcancel = clockwork.WithTimeout(ctx, p.clock, job.timeout)
			}
			rep, err := p.clients[i].Prepare(pctx, job.prepare)
			pcancel()
			b := job.prepare.Ballot
			p.post(ctx, func() { p.onPromise(i, b, rep, err) })
		case jobAccept, jobHeartbeat:
			job, carry = p.mergeQueued(i, job)
			p.freshen(job.accept)
			var rep *Accepted
			var err error
			if hb, ok := p.clients[i].(HeartbeatClient); ok && job.kind == jobHeartbeat {
				rep, err = hb.Heartbeat(cctx, job.accept)
			} else {
				rep, err = p.clients[i].Accept(cctx, job.accept)
			}
			b, bt, more := job.accept.Ballot, job.batch, job.more
			p.post(ctx, func() {
				p.onAccepted(i, b, bt, rep, err)
				for _, bt := range more {
					p.onAccepted(i, b, bt, rep, err)
				}
				p.drainBacklog(i)
			})
		}
	}
}

// mergeQueued folds into job (an Accept or heartbeat, taken from peer i's
// queue) the Accepts and heartbeats of the same ballot queued behind it,
// but only while all that is queued fits with it in MaxBatch values and
// MaxBatchBytes: a peer never gets a larger call than a full batch, and a
// job is never taken from the queue (and so from the other senders) only
// to wait for this sender's call. It returns the merged job (its batches
// in batch and more) and a job it took but could not merge (a Prepare or
// another ballot's), which the sender must send next.
func (p *Proposer) mergeQueued(i int, job sendJob) (merged sendJob, carry sendJob) {
	q := p.sendq[i]
	if len(q) == 0 {
		return job, sendJob{}
	}
	n, size := len(job.accept.Entries), job.bytes
	var entries []Entry // merged entries, once more than job's own
	for len(q) > 0 && n+int(p.sendEntries[i].Load()) <= p.cfg.MaxBatch && size+p.sendBytes[i].Load() <= int64(p.cfg.MaxBatchBytes) {
		var next sendJob
		select {
		case next = <-q:
		default:
		}
		if next.accept == nil && next.prepare == nil {
			break // another sender took it
		}
		p.took(i, next)
		if next.retry && next.batch.done.Load() {
			continue
		}
		if next.kind == jobPrepare || next.accept.Ballot != job.accept.Ballot {
			carry = next
			break
		}
		k, sz := len(next.accept.Entries), next.bytes
		// The later message carries the later commit point, Min, done
		// watermark and chosen list; the entries are the union.
		if k > 0 {
			if entries == nil {
				entries = append(make([]Entry, 0, n+k), job.accept.Entries...)
			}
			entries = append(entries, next.accept.Entries...)
			n, size = n+k, size+sz
			job.bytes = size
		}
		a := next.accept
		a.Commit = max(a.Commit, job.accept.Commit)
		a.Min = max(a.Min, job.accept.Min)
		a.Done = max(a.Done, job.accept.Done)
		if entries != nil {
			a.Entries = entries
		} else {
			a.Entries = job.accept.Entries
		}
		switch {
		case job.batch == nil:
			job.batch, job.more = next.batch, next.more
		case next.batch != nil:
			job.more = append(append(job.more, next.batch), next.more...)
		}
		if n > 0 {
			job.kind = jobAccept
		}
		job.accept = a
	}
	return job, carry
}

func (p *Proposer) onAccepted(i int, b Ballot, bt *batch, rep *Accepted, err error) {
	st := p.st
	if err != nil {
		if bt != nil {
			p.retryLater(i, bt)
		}
		return
	}
	if rep.Done != 0 || i == p.self {
		p.noteDone(i, rep.Done)
	}
	if !rep.OK {
		if st.rejected(b, rep.Promised) {
			p.logger.Info("leadership lost", "ballot", b, "promised", rep.Promised)
			p.lostLeadership(rep.Promised)
		}
		return
	}
	if st.role != leader || b != st.ballot {
		return
	}
	p.lastOK[i] = p.clock.Now()
	if bt == nil {
		return
	}
	bt.acked |= 1 << i
	chosen := st.accepted(i, b, bt.slots)
	if len(chosen) == 0 {
		return
	}
	p.metrics.chosen.Add(uint64(len(chosen)))
	for _, slot := range chosen {
		if w := p.waiters[slot]; w != nil {
			delete(p.waiters, slot)
			w.reply <- proposeResult{status: ProposeOK, slot: slot, ballot: b, commit: st.commit}
		}
	}
	bt.remaining -= len(chosen)
	if bt.remaining <= 0 && !bt.done.Load() {
		bt.done.Store(true)
		p.inflight--
	}
	p.publishMark()
	p.node.acceptor.markChosen(b, st.commit, st.chosenList(1024))
	p.node.observer.decideLocal(chosenEntries(bt.entries, chosen))
	p.flush()
}

// chosenEntries returns copies, marked chosen, of the entries of a batch
// at the slots in chosen (a subsequence of the batch's slots, in the same
// order). The batch's own entries are not touched: senders may still be
// encoding them.
func chosenEntries(entries []Entry, chosen []Slot) []Entry {
	out := make([]Entry, 0, len(chosen))
	j := 0
	for _, e := range entries {
		if j == len(chosen) {
			break
		}
		if e.Slot == chosen[j] {
			e.Chosen = true
			out = append(out, e)
			j++
		}
	}
	return out
}

func (p *Proposer) noteDone(i int, d Slot) {
	if m, moved := p.st.done(i, d); moved {
		p.node.setMin(m)
		p.publishMark()
	}
}

// lostLeadership steps down: values never sent are refused at once; values
// in flight may still be chosen, so their callers wait for the outcome
// (for a bounded time, see watch).
func (p *Proposer) lostLeadership(promised Ballot) {
	p.leading.Store(false)
	if promised > Ballot(p.leaderBallot.Load()) {
		p.leaderBallot.Store(uint64(promised))
	}
	sent := make(map[Slot]bool)
	for slot, st := range p.st.slots {
		if st.batch != nil {
			sent[slot] = true
		}
	}
	for slot, w := range p.waiters {
		delete(p.waiters, slot)
		if !sent[slot] {
			w.reply <- proposeResult{status: ProposeNotLeader}
			continue
		}
		go p.watch(slot, w, p.watchTime())
	}
	p.queue = nil
	p.inflight = 0
	for i := range p.backlog {
		p.backlog[i], p.backlogBytes[i] = nil, 0
	}
	clear(p.st.slots)
	p.touch()
	p.timeout = p.randomTimeout()
}

// watch resolves a proposal whose leader stepped down while it was in
// flight: it is ours if the slot ends up holding our value. It waits at
// most limit (see watchTime): if every Accept for the slot was lost, no
// acceptor holds it, the next leader does not know it, and nothing
// decides it until some later proposal takes it, which may never come.
// The caller is then told to retry, which Propose's contract allows (the
// value may end up chosen twice).
func (p *Proposer) watch(slot Slot, w *proposal, limit time.Duration) {
	ctx, cancel := clockwork.WithTimeout(p.runCtx, p.clock, limit)
	defer cancel()
	f, e, err := p.node.observer.waitSlot(ctx, slot)
	if err == nil && f == Decided && !e.NoOp && bytes.Equal(e.Value, w.value) {
		w.reply <- proposeResult{status: ProposeOK, slot: slot}
		return
	}
	w.reply <- proposeResult{status: ProposeNotLeader}
}

// watchTimeouts is how many election timeouts watch waits: time for a new
// leader to be elected and to finish the slots its phase 1 found.
const watchTimeouts = 3

// watchTime is how long watch waits for a slot: watchTimeouts election
// timeouts and one campaign's time, as long as this node's backoff makes
// them now. Campaigns that keep failing after that can still outlast it;
// the value is then proposed again and may be chosen twice, as Propose
// allows. (Waiting out the worst backoff instead would hold a Propose
// whose Accepts were all lost for half a minute with the defaults.)
func (p *Proposer) watchTime() time.Duration {
	return watchTimeouts*p.cfg.ElectionTimeout*p.backoff() + 2*p.campaignTime()
}

func (p *Proposer) onTick(ctx context.Context) {
	now := p.clock.Now()
	st := p.st
	switch st.role {
	case leader:
		p.noteDone(p.self, p.node.doneMark())
		p.lastOK[p.self] = now
		live := 0
		for i := range p.members {
			if now.Sub(p.lastOK[i]) < p.cfg.ElectionTimeout {
				live++
			}
		}
		if live < st.quorum {
			p.logger.Info("leader lost contact with a quorum; stepping down", "ballot", st.ballot)
			st.stepDown()
			p.lostLeadership(0)
			return
		}
		p.fillHoles(now)
		for i := range p.members {
			p.drainBacklog(i)
			if i == p.self || now.Sub(p.lastSent[i]) < p.cfg.HeartbeatInterval {
				continue
			}
			p.lastSent[i] = now
			select {
			case p.sendq[i] <- sendJob{kind: jobHeartbeat, accept: p.acceptMsg(st.ballot, nil)}:
			default:
			}
		}
	case candidate:
		if now.After(p.campaignEnd) {
			p.logger.Debug("campaign timed out", "ballot", st.ballot, "failed", p.failedCampaigns+1)
			st.stepDown()
			p.campaignFailed()
		}
	case follower:
		if p.heardLeader.Swap(false) && p.failedCampaigns > 0 {
			// A leader again: the next election starts unhurried, not
			// with the timeout drawn at the last backoff.
			p.failedCampaigns = 0
			p.timeout = p.randomTimeout()
		}
		last := time.Unix(0, p.lastContact.Load())
		if !p.probing && now.Sub(last) >= p.timeout {
			p.probing = true
			p.timeout = p.randomTimeout()
			go p.probe(ctx, MakeBallot(p.st.round+1, p.members[p.self].ID), false)
		}
	}
	p.expireAsync(now)
	p.retryExplicit(ctx)
}

// fillHoles proposes no-ops for empty slots below the highest one in use
// once the commit point has not moved for HoleTimeout.
func (p *Proposer) fillHoles(now time.Time) {
	st := p.st
	if st.commit != p.commitSeen {
		p.commitSeen, p.commitAt = st.commit, now
		return
	}
	if p.cfg.HoleTimeout < 0 || st.commit >= st.next || now.Sub(p.commitAt) < p.cfg.HoleTimeout {
		return
	}
	holes := st.holes(p.cfg.MaxBatch, p.node.observer.knows)
	for _, slot := range holes {
		p.queue = append(p.queue, st.assign(Entry{Slot: slot, NoOp: true}, true))
	}
	if len(holes) > 0 {
		p.logger.Debug("filling holes with no-ops", "from", holes[0], "count", len(holes))
		p.metrics.proposed.Add(uint64(len(holes)))
		p.commitAt = now
		p.flush()
	}
}

// probe asks the peers whether they hear a leader (pre-vote), and
// campaigns only if a quorum does not. With unreachable set (forwarding to
// the leader has failed for an election timeout) it campaigns if a quorum
// answers at all: its peers may hear a leader that cannot hear anyone (a
// deaf leader), but a node cut off from the majority gets no quorum of
// answers, so it never raises its ballot to depose, on healing, a leader
// the majority is content with.
func (p *Proposer) probe(ctx context.Context, ballot Ballot, unreachable bool) {
	type res struct {
		rep *ProbeReply
		err error
	}
	results := make(chan res, len(p.members))
	for i := range p.members {
		if i == p.self {
			continue
		}
		go func() {
			cctx, cancel := clockwork.WithTimeout(ctx, p.clock, p.cfg.RPCTimeout)
			defer cancel()
			rep, err := p.pclients[i].Probe(cctx, &Probe{Ballot: ballot})
			results <- res{rep, err}
		}()
	}
	noLeader, answered, alive := 1, 1, Ballot(0)
	var promised Ballot
	for range len(p.members) - 1 {
		r := <-results
		if r.err != nil {
			continue
		}
		answered++
		promised = max(promised, r.rep.Promised)
		if r.rep.LeaderAlive {
			alive = max(alive, r.rep.Leader)
		} else {
			noLeader++
		}
	}
	p.post(ctx, func() {
		p.probing = false
		p.st.see(promised)
		if p.st.role != follower {
			return
		}
		if unreachable && answered >= p.st.quorum {
			p.logger.Info("campaigning: the leader cannot be reached, a quorum can", "leader", alive)
			p.campaign()
			return
		}
		if alive != 0 {
			if alive >= Ballot(p.leaderBallot.Load()) {
				p.leaderBallot.Store(uint64(alive))
			}
			p.touch()
			return
		}
		if noLeader >= p.st.quorum {
			p.campaign()
			return
		}
		p.touch()
	})
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// campaign runs phase 1 for every slot this node has not recorded.
func (p *Proposer) campaign() {
	promised, _ := p.node.acceptor.status()
	p.st.see(promised)
	wm, _, _ := p.node.observer.positions()
	prep := p.st.campaign(max(wm, p.node.Min()))
	p.metrics.campaigns.Add(1)
	p.logger.Debug("campaigning", "ballot", prep.Ballot, "from", prep.From)
	p.campaignEnd = p.clock.Now().Add(2 * p.campaignTime())
	for i := range p.members {
		select {
		case p.sendq[i] <- sendJob{kind: jobPrepare, prepare: prep, timeout: p.campaignTime()}:
		default:
		}
	}
}

func (p *Proposer) onPromise(i int, b Ballot, rep *Promise, err error) {
	if err != nil {
		return
	}
	won, lost, next := p.st.promise(i, b, rep)
	if next != 0 {
		// The rest of acceptor i's promise, a page at a time. Each page
		// gives the campaign another Prepare's time, so a long tail does
		// not make every campaign time out and start over from page one.
		p.metrics.pages.Add(1)
		p.campaignEnd = later(p.campaignEnd, p.clock.Now().Add(p.campaignTime()))
		job := sendJob{kind: jobPrepare, prepare: &Prepare{Ballot: b, From: next}, timeout: p.campaignTime()}
		select {
		case p.sendq[i] <- job:
		default:
			// The queue is full (of Accepts of a leadership just lost,
			// say): wait for room rather than lose this acceptor's
			// promise, which the campaign may need (its own always).
			go func() {
				select {
				case p.sendq[i] <- job:
				case <-p.runCtx.Done():
				}
			}()
		}
		return
	}
	if lost {
		p.logger.Debug("campaign preempted", "ballot", b, "promised", rep.Promised, "failed", p.failedCampaigns+1)
		p.campaignFailed()
		return
	}
	if !won {
		return
	}
	p.failedCampaigns = 0
	re := p.st.win()
	p.metrics.elected.Add(1)
	p.logger.Info("leading", "ballot", p.st.ballot, "from", p.st.start, "reproposals", len(re))
	p.leaderBallot.Store(uint64(p.st.ballot))
	p.leading.Store(true)
	now := p.clock.Now()
	p.commitSeen, p.commitAt = p.st.commit, now
	p.publishMark()
	for i := range p.lastOK {
		p.lastOK[i] = now // a quorum just answered; give the rest time
	}
	for _, e := range re {
		p.queue = append(p.queue, p.st.assign(e, true))
	}
	p.metrics.proposed.Add(uint64(len(re)))
	// Announce the leadership at once (and the commit point) to everyone.
	for i := range p.members {
		if i != p.self {
			p.lastSent[i] = now
			select {
			case p.sendq[i] <- sendJob{kind: jobHeartbeat, accept: p.acceptMsg(p.st.ballot, nil)}:
			default:
			}
		}
	}
	p.flush()
}

// forwardFailed notes that the leader could not be reached. Only when
// forwarding has failed without a success for a whole election timeout does
// this node probe with unreachable set (see probe), and campaign if a
// quorum answers. A failure long after the previous one starts a new count.
func (p *Proposer) forwardFailed(ctx context.Context) {
	p.post(ctx, func() {
		now := p.clock.Now()
		if p.failingFrom.IsZero() || now.Sub(p.lastFailure) > p.cfg.ElectionTimeout {
			p.failingFrom = now
		}
		p.lastFailure = now
		if p.st.role == follower && !p.probing && now.Sub(p.failingFrom) >= p.cfg.ElectionTimeout {
			p.failingFrom = time.Time{}
			p.probing = true
			// Like kick's, the probe outlives the caller's context.
			go p.probe(p.runCtx, MakeBallot(p.st.round+1, p.members[p.self].ID), true)
		}
	})
}

func (p *Proposer) forwardOK(ctx context.Context) {
	p.post(ctx, func() { p.failingFrom = time.Time{} })
}

// kick asks the loop to look for a leader now (a proposal is waiting).
func (p *Proposer) kick(ctx context.Context) {
	p.post(ctx, func() {
		if p.st.role == follower && !p.probing && p.leaderIndex(p.members) < 0 {
			p.probing = true
			// The probe outlives the caller's context: it must always come
			// back to clear p.probing, or this node never probes again.
			go p.probe(p.runCtx, MakeBallot(p.st.round+1, p.members[p.self].ID), false)
		}
	})
}

// handleProbe answers a peer's pre-vote question.
func (p *Proposer) handleProbe(req *Probe) *ProbeReply {
	promised, _ := p.node.acceptor.status()
	rep := &ProbeReply{Promised: promised, Leader: Ballot(p.leaderBallot.Load())}
	if p.leading.Load() {
		rep.LeaderAlive = true
		return rep
	}
	last := time.Unix(0, p.leaderContact.Load())
	rep.LeaderAlive = rep.Leader != 0 && p.clock.Since(last) < p.cfg.ElectionTimeout
	return rep
}

// submit hands a proposal to the loop and waits for the loop's answer.
func (p *Proposer) submit(ctx context.Context, pr *proposal) (proposeResult, error) {
	pr.reply = make(chan proposeResult, 1)
	select {
	case p.props <- pr:
	case <-ctx.Done():
		return proposeResult{}, ctx.Err()
	case <-p.stopped:
		return proposeResult{}, ErrStopped
	}
	select {
	case r := <-pr.reply:
		return r, nil
	case <-ctx.Done():
		return proposeResult{}, ctx.Err()
	case <-p.stopped:
		select {
		case r := <-pr.reply:
			return r, nil
		default:
			return proposeResult{}, ErrStopped
		}
	}
}

// handlePropose serves a proposal forwarded by another node.
func (p *Proposer) handlePropose(ctx context.Context, req *ProposeRequest) *ProposeReply {
	rep := &ProposeReply{Status: ProposeNotLeader, Leader: Ballot(p.leaderBallot.Load())}
	wm, _, _ := p.node.observer.positions()
	rep.Commit = wm
	if p.leading.Load() {
		r, err := p.submit(ctx, &proposal{value: req.Value, explicit: req.HasSlot, slot: req.Slot, wait: req.Wait})
		if err == nil {
			rep.Status, rep.Slot = r.status, r.slot
			if r.status == ProposeOK && r.ballot != 0 {
				// Chosen by this leadership, with everything below its
				// commit point: the forwarder's acceptor can mark what it
				// accepted in that ballot there as chosen at once.
				rep.ChosenIn, rep.Commit = r.ballot, r.commit
			}
		}
	}
	return rep
}

// proposeAt records an explicit-slot proposal; the retry pass gets it to
// the leader until this node knows the slot is decided.
func (p *Proposer) proposeAt(ctx context.Context, slot Slot, value []byte) {
	p.explicitMu.Lock()
	if _, ok := p.explicit[slot]; !ok {
		p.explicit[slot] = value
	}
	p.explicitMu.Unlock()
	p.post(ctx, func() { p.retryExplicit(ctx) })
}

// retryExplicit starts a pass over the pending explicit-slot proposals,
// unless one is running.
func (p *Proposer) retryExplicit(ctx context.Context) {
	p.explicitMu.Lock()
	n := len(p.explicit)
	p.explicitMu.Unlock()
	if n == 0 || !p.retrying.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer p.retrying.Store(false)
		p.explicitMu.Lock()
		pending := make(map[Slot][]byte, len(p.explicit))
		for slot, v := range p.explicit {
			pending[slot] = v
		}
		p.explicitMu.Unlock()
		for slot, v := range pending {
			if ctx.Err() != nil {
				return
			}
			if slot < p.node.Min() || p.node.observer.knows(slot) {
				p.explicitMu.Lock()
				delete(p.explicit, slot)
				p.explicitMu.Unlock()
				continue
			}
			p.node.forward(ctx, &ProposeRequest{HasSlot: true, Slot: slot, Value: v})
		}
	}()
}
