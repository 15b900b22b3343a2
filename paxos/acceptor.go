package paxos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/synod-go/synod/log"
)

// Acceptor is the Paxos acceptor role: it owns the durable promise and the
// accepted entries of one node, answers Prepare and Accept, and streams
// what it accepts (and knows chosen) to observers.
//
// Every state change is persisted, in the order it was decided, before the
// reply that depends on it is returned: requests that arrive together share
// one log write (group commit). The first request to find no write in
// progress writes everything queued, on its own goroutine if it waits for
// its reply, or on a new one if it must not block (an asynchronous Accept
// on a log that may block) or nobody waits; a writer hands what queued
// meanwhile to a goroutine of its own once its batch is answered. No lock
// is held across I/O.
type Acceptor struct {
	logger      *slog.Logger
	promiseLog  log.Log
	acceptedLog log.Log
	hooks       acceptorHooks
	// inline: both logs are log.Memory, whose writes never block, so a
	// caller that must not block may still write its own job (acceptAsync).
	inline bool
	// pageBytes bounds the value bytes (see pageCost) of one Promise and
	// one replayed event (one entry may pass it alone): a candidate asks
	// for the rest page by page (Promise.Next), so a long accepted tail
	// never makes a reply larger than a transport carries. 0: no bound
	// but the count (see pageFull).
	pageBytes int

	mu      sync.Mutex
	st      *acceptorState
	running bool
	runCtx  context.Context // run's; the writes' context
	pending []*writeJob     // decided, in order, not yet taken by a writer
	taking  []*writeJob     // the writer's batch (its backing array reused)
	writing bool            // a goroutine is writing (see commit)
	idle    *sync.Cond      // on mu: broadcast when writing goes false

	// failed: a write failed, so the state may be ahead of the disk; the
	// acceptor never replies again.
	failed atomic.Bool

	// durablePrefix is st.chosenPrefix as of the last persisted job: every
	// slot below it that the log holds (all but st.holes, from forgotten)
	// has its chosen entry on disk. Observe replays trust the log's entries
	// as chosen only below it (a slot above may still hold an older value
	// on disk while its new one waits for fsync), and the observer records
	// such slots as references to the log instead of copies (see held).
	durablePrefix atomic.Uint64

	// The accepted log is truncated in the background (truncator): a
	// truncation deletes many records, and must not hold up the writes
	// that replies wait for. truncateTo is the point it should reach.
	truncateTo atomic.Uint64
	truncKick  chan struct{} // capacity 1

	subsMu     sync.Mutex
	subs       map[*observeSub]struct{}
	subsClosed bool // the acceptor stopped; no new subscriptions

	// fault, when set (by tests only, see export_test.go), is asked at each
	// stage of a request; an error makes the request fail there without a
	// reply, as if the process died at that point.
	fault atomic.Pointer[func(stage string) error]
}

// Stages at which a test may inject a crash.
const (
	stageReceived  = "received"  // the request arrived; nothing persisted
	stagePersisted = "persisted" // the state is on disk; no reply has left
)

func (a *Acceptor) inject(stage string) error {
	if f := a.fault.Load(); f != nil {
		return (*f)(stage)
	}
	return nil
}

// acceptorHooks connect the acceptor to the rest of its node.
type acceptorHooks struct {
	done    func() Slot                 // the node's done watermark, reported in Accepted
	contact func(b Ballot, leader bool) // a leader (Accept) or candidate (Prepare) with ballot b reached us
	forget  func(min Slot)              // the cluster Min moved up to min
	commit  func(commit Slot)           // the highest commit heard moved up
	durable func()                      // durablePrefix moved up, or the acceptor failed
}

type writeJob struct {
	prefix   Slot // st.chosenPrefix once this job's changes are on disk
	promise  Ballot
	done     Slot
	entries  []Entry
	truncate Slot
	event    *ObserveEvent
	errc     chan error // nil: nobody waits
	// reply, if set, is called instead (errc is then nil) by whoever
	// writes the job: an Accept answered without a waiting goroutine
	// (acceptAsync), finished as outcome says.
	reply   func(*Accepted, error)
	outcome acceptOutcome
	taken   bool // a writer took it (under the acceptor's mu)
}

// acceptOutcome is what an Accept does once its job is written.
type acceptOutcome struct {
	ballot                  Ballot
	done                    Slot // the node's done watermark, for the reply
	oldCommit, commit       Slot
	oldForgotten, forgotten Slot
}

var errAcceptorFailed = errors.New("paxos: acceptor could not persist its state")

// newAcceptor restores an acceptor from its logs.
func newAcceptor(ctx context.Context, promiseLog, acceptedLog log.Log, logger *slog.Logger, hooks acceptorHooks) (*Acceptor, Slot, error) {
	a := &Acceptor{
		logger:      logger,
		promiseLog:  promiseLog,
		acceptedLog: acceptedLog,
		hooks:       hooks,
		inline:      isMemory(promiseLog) && isMemory(acceptedLog),
		st:          newAcceptorState(),
		subs:        make(map[*observeSub]struct{}),
		truncKick:   make(chan struct{}, 1),
	}
	a.idle = sync.NewCond(&a.mu)
	var promised Ballot
	var done Slot
	if v, err := promiseLog.Get(ctx, uint64(metaPromised)); err == nil {
		p, err := decodeUint(metaPromised, v)
		if err != nil {
			return nil, 0, err
		}
		promised = Ballot(p)
	} else if !errors.Is(err, log.ErrNotFound) {
		return nil, 0, fmt.Errorf("paxos: reading promise: %w", err)
	}
	if v, err := promiseLog.Get(ctx, uint64(metaDone)); err == nil {
		d, err := decodeUint(metaDone, v)
		if err != nil {
			return nil, 0, err
		}
		done = Slot(d)
	} else if !errors.Is(err, log.ErrNotFound) {
		return nil, 0, fmt.Errorf("paxos: reading done watermark: %w", err)
	}
	first, err := acceptedLog.First(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("paxos: reading accepted log: %w", err)
	}
	a.st.restore(promised, Slot(first), Entry{})
	err = acceptedLog.Range(ctx, first, 0, func(r log.Record) error {
		e, err := decodeEntry(Slot(r.Slot), r.Value)
		if err != nil {
			return err
		}
		a.st.restore(0, 0, e)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("paxos: restoring accepted entries: %w", err)
	}
	return a, done, nil
}

// run lets the acceptor take requests until ctx ends. Writes run on the
// goroutines of the requests (commit); run only starts and stops.
func (a *Acceptor) run(ctx context.Context) {
	a.mu.Lock()
	a.runCtx = ctx
	a.running = true
	a.durablePrefix.Store(uint64(a.st.chosenPrefix))
	a.mu.Unlock()
	truncCtx, stopTruncator := context.WithCancel(ctx)
	truncatorDone := make(chan struct{})
	go func() {
		defer close(truncatorDone)
		a.truncator(truncCtx)
	}()
	defer func() {
		stopTruncator()
		<-truncatorDone
	}()
	<-ctx.Done()
	a.mu.Lock()
	a.running = false
	for a.writing {
		a.idle.Wait()
	}
	rest := a.pending
	a.pending = nil
	a.mu.Unlock()
	// A clean stop: persist what is still queued (no more is queued now),
	// so the last done watermark survives; but reply to nobody.
	if len(rest) > 0 && !a.failed.Load() {
		if err := a.persist(context.WithoutCancel(ctx), rest); err != nil {
			a.logger.Warn("persisting queued state at stop failed", "err", err)
		}
	}
	for _, j := range rest {
		a.answer(j, ErrStopped)
	}
	a.closeSubs()
}

// maxCommitBatch bounds the jobs one write takes.
const maxCommitBatch = 64

// commit is run by the writer (the caller set a.writing under a.mu): it
// persists the pending jobs in order, a batch per turn. With own set (the
// caller's job), it returns once own is answered, handing what is still
// pending to a goroutine of its own, so that the caller replies now.
func (a *Acceptor) commit(own *writeJob) {
	answered := own == nil
	for {
		a.mu.Lock()
		if len(a.pending) == 0 || !a.running {
			// Stopping: run persists what is left.
			a.writing = false
			a.idle.Broadcast()
			a.mu.Unlock()
			return
		}
		if answered && own != nil {
			a.mu.Unlock()
			go a.commit(nil) // inherits a.writing
			return
		}
		// The batch is copied out and pending shifted down in place, so
		// neither backing array is reallocated for every job.
		n := min(len(a.pending), maxCommitBatch)
		batch := append(a.taking[:0], a.pending[:n]...)
		a.taking = nil // this writer's until it is done with it
		for _, j := range batch {
			j.taken = true
		}
		rest := copy(a.pending, a.pending[n:])
		clear(a.pending[rest:])
		a.pending = a.pending[:rest]
		ctx := a.runCtx
		a.mu.Unlock()
		a.commitBatch(ctx, batch)
		for _, j := range batch {
			answered = answered || j == own
		}
		clear(batch)
		a.mu.Lock()
		a.taking = batch[:0]
		a.mu.Unlock()
	}
}

// commitBatch persists one batch, publishes its events and answers it.
func (a *Acceptor) commitBatch(ctx context.Context, batch []*writeJob) {
	var err error
	if a.failed.Load() {
		err = errAcceptorFailed
	} else if err = a.persist(ctx, batch); err != nil {
		// The state in memory is now ahead of the disk: this acceptor
		// must never reply again (fail-stop), or a restart could come
		// back with a lower promise than one it acknowledged.
		a.logger.Error("acceptor write failed; the acceptor stops answering", "err", err)
		err = fmt.Errorf("%w: %w", errAcceptorFailed, err)
		a.failed.Store(true)
		a.notifyDurable()
	} else {
		var prefix Slot
		for _, j := range batch {
			prefix = max(prefix, j.prefix)
			if j.event != nil {
				a.publish(j.event)
			}
		}
		if uint64(prefix) > a.durablePrefix.Load() {
			a.durablePrefix.Store(uint64(prefix))
			a.notifyDurable()
		}
	}
	for _, j := range batch {
		a.answer(j, err)
	}
}

// answer tells whoever waits for job j that it was written (err nil) or
// not.
func (a *Acceptor) answer(j *writeJob, err error) {
	switch {
	case j.errc != nil:
		j.errc <- err
	case j.reply != nil:
		if err != nil {
			j.reply(nil, err)
		} else {
			j.reply(a.finishAccept(&j.outcome))
		}
	}
}

// persist writes a batch of jobs: one write per log.
func (a *Acceptor) persist(ctx context.Context, batch []*writeJob) error {
	var promise Ballot
	var done, truncate Slot
	var n int
	for _, j := range batch {
		promise = max(promise, j.promise)
		done = max(done, j.done)
		truncate = max(truncate, j.truncate)
		n += len(j.entries)
	}
	var meta []log.Record
	if promise != 0 {
		meta = append(meta, log.Record{Slot: uint64(metaPromised), Value: encodeUint(uint64(promise))})
	}
	if done != 0 {
		meta = append(meta, log.Record{Slot: uint64(metaDone), Value: encodeUint(uint64(done))})
	}
	if len(meta) > 0 {
		if err := a.promiseLog.Write(ctx, meta...); err != nil {
			return err
		}
	}
	if n > 0 {
		recs := make([]log.Record, 0, n)
		var seen map[Slot]int
		for _, j := range batch {
			for _, e := range j.entries {
				if seen == nil && len(batch) > 1 {
					seen = make(map[Slot]int, n)
				}
				if seen != nil {
					if i, ok := seen[e.Slot]; ok {
						recs[i] = entryRecord(e) // a later decision wins
						continue
					}
					seen[e.Slot] = len(recs)
				}
				recs = append(recs, entryRecord(e))
			}
		}
		if err := writeChunked(ctx, a.acceptedLog, recs); err != nil {
			return err
		}
	}
	if truncate != 0 {
		// Not waited for: a crash before the truncation is durable only
		// brings the node back with more entries than it needed (the
		// truncation point it reports in promises is the one in memory).
		for cur := a.truncateTo.Load(); uint64(truncate) > cur; cur = a.truncateTo.Load() {
			if a.truncateTo.CompareAndSwap(cur, uint64(truncate)) {
				select {
				case a.truncKick <- struct{}{}:
				default:
				}
				break
			}
		}
	}
	return nil
}

// truncator truncates the accepted log to truncateTo whenever it moves,
// until ctx ends. A failure is logged and retried at the next move: it
// costs disk space, never safety (writes below the truncation point are
// ignored by the log either way).
func (a *Acceptor) truncator(ctx context.Context) {
	var done uint64
	for {
		select {
		case <-a.truncKick:
		case <-ctx.Done():
			return
		}
		target := a.truncateTo.Load()
		if target <= done {
			continue
		}
		if err := a.acceptedLog.TruncateBelow(ctx, target); err != nil {
			if ctx.Err() == nil {
				a.logger.Error("truncating the accepted log failed", "below", target, "err", err)
			}
			continue
		}
		done = target
	}
}

// enqueue queues a job; the caller holds a.mu and has checked usable. A
// job nobody waits for (errc nil), or one with reply if the logs may
// block, is written by the writer in progress or by a new goroutine. A job
// with errc, or one with reply when the logs never block (inline), is
// written by its caller, who must call write(j) after releasing a.mu,
// unless another writer takes it.
func (a *Acceptor) enqueue(j *writeJob) bool {
	if !a.running {
		return false
	}
	j.prefix = a.st.chosenPrefix
	a.pending = append(a.pending, j)
	if j.errc == nil && (j.reply == nil || !a.inline) && !a.writing {
		a.writing = true
		go a.commit(nil)
	}
	return true
}

// write makes sure queued job j gets written: by the caller, now, if no
// write is in progress. The caller does not hold a.mu; it then waits on
// j.errc, or (an asynchronous Accept) lets j.reply be called by whoever
// writes j.
func (a *Acceptor) write(j *writeJob) {
	a.mu.Lock()
	if a.writing || j.taken {
		a.mu.Unlock()
		return // the writer takes j with its next batch, or took it
	}
	a.writing = true
	a.mu.Unlock()
	a.commit(j)
}

// usableLocked reports why the acceptor cannot take a request, if so.
func (a *Acceptor) usableLocked() error {
	switch {
	case a.failed.Load():
		return errAcceptorFailed
	case !a.running:
		return ErrStopped
	}
	return nil
}

func wait(ctx context.Context, errc chan error) error {
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Prepare handles phase 1a.
func (a *Acceptor) Prepare(ctx context.Context, req *Prepare) (*Promise, error) {
	if err := a.inject(stageReceived); err != nil {
		return nil, err
	}
	a.mu.Lock()
	if err := a.usableLocked(); err != nil {
		a.mu.Unlock()
		return nil, err
	}
	ok, raised := a.st.prepare(req.Ballot)
	if !ok {
		p := &Promise{Promised: a.st.promised, Forgotten: a.st.forgotten}
		a.mu.Unlock()
		return p, nil
	}
	// Even without a raise, wait behind earlier writes (a barrier), so the
	// log read below sees everything accepted before this promise.
	j := &writeJob{errc: make(chan error, 1)}
	if raised {
		j.promise = req.Ballot
	}
	forgotten := a.st.forgotten
	queued := a.enqueue(j)
	a.mu.Unlock()
	if !queued {
		return nil, ErrStopped
	}
	a.write(j)
	if err := wait(ctx, j.errc); err != nil {
		return nil, err
	}
	if err := a.inject(stagePersisted); err != nil {
		return nil, err
	}
	if a.hooks.contact != nil {
		a.hooks.contact(req.Ballot, false)
	}
	// Reading the accepted log is the costly part of a Prepare (every
	// value from From on). Skip it when nobody can use the answer: the
	// caller gave up, or a higher ballot was promised meanwhile, so this
	// candidate's phase 1 has failed (the rejection tells it why).
	// Without this, a slow acceptor works through every stale Prepare of
	// a run of campaigns and falls further behind with each.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	if promised := a.st.promised; promised > req.Ballot {
		p := &Promise{Promised: promised, Forgotten: a.st.forgotten}
		a.mu.Unlock()
		return p, nil
	}
	a.mu.Unlock()
	entries, next, err := a.readPage(ctx, max(req.From, forgotten), promisePageEntries)
	if err != nil {
		return nil, fmt.Errorf("paxos: reading accepted entries: %w", err)
	}
	// A truncation (Compact, a new Min) may have run during the read and
	// removed entries it saw as missing: report the truncation point as
	// it is now, and nothing below it, so the new leader leaves those
	// chosen slots alone instead of filling them with no-ops.
	a.mu.Lock()
	forgotten = a.st.forgotten
	a.mu.Unlock()
	kept := entries[:0]
	for _, e := range entries {
		if e.Slot >= forgotten {
			kept = append(kept, e)
		}
	}
	return &Promise{OK: true, Promised: req.Ballot, Forgotten: forgotten, Next: next, Entries: kept}, nil
}

// errPageFull stops readPage's read of the accepted log when the page is
// full.
var errPageFull = errors.New("paxos: page full")

// readPage reads one page of the accepted log from slot from on (see
// pageFull; at most maxEntries entries). next is the first slot left for
// the next page, or 0 if the log holds nothing more.
func (a *Acceptor) readPage(ctx context.Context, from Slot, maxEntries int) (entries []Entry, next Slot, err error) {
	size := 0
	err = a.acceptedLog.Range(ctx, uint64(from), 0, func(r log.Record) error {
		e, err := decodeEntry(Slot(r.Slot), r.Value)
		if err != nil {
			return err
		}
		if a.pageFull(len(entries), size, e, maxEntries) {
			next = e.Slot
			return errPageFull
		}
		size += pageCost(e)
		entries = append(entries, e)
		return nil
	})
	if errors.Is(err, errPageFull) {
		err = nil
	}
	return entries, next, err
}

// promisePageEntries bounds the entries of one promise page, whatever
// their size (a long run of no-ops carries no value bytes), far below
// what a message may list (wire.MaxEntries).
const promisePageEntries = 4096

// pageCost is what entry e counts against pageBytes: its value and a
// bound on the rest of its encoding.
func pageCost(e Entry) int { return len(e.Value) + 32 }

// pageFull reports whether entry e must go to the next page of a reply
// (a promise page, a replayed event) that holds n entries costing size:
// a page holds at most maxEntries entries and pageBytes of cost, and
// always at least one entry, however large.
func (a *Acceptor) pageFull(n, size int, e Entry, maxEntries int) bool {
	if n == 0 {
		return false
	}
	return n >= maxEntries || (a.pageBytes > 0 && size+pageCost(e) > a.pageBytes)
}

// Accept handles phase 2a and heartbeats.
func (a *Acceptor) Accept(ctx context.Context, req *Accept) (*Accepted, error) {
	j, rep, err := a.beginAccept(req, nil)
	if j == nil {
		return rep, err
	}
	a.write(j)
	if err := wait(ctx, j.errc); err != nil {
		return nil, err
	}
	return a.finishAccept(&j.outcome)
}

// acceptAsync is Accept for a caller that must not block (a transport's
// reader goroutine, see transport.AsyncUnaryHandler): reply gets the
// outcome exactly once, on this goroutine if the logs never block and no
// other write is in progress, or else on the goroutine that writes the
// job. reply must not block.
func (a *Acceptor) acceptAsync(req *Accept, reply func(*Accepted, error)) {
	j, rep, err := a.beginAccept(req, reply)
	if j == nil {
		reply(rep, err)
		return
	}
	if a.inline {
		a.write(j)
	}
}

// beginAccept applies req to the state and queues its write. It returns
// the queued job, or else (nil job) the reply to send now. The job carries
// errc for a caller that waits, or reply when that is given.
func (a *Acceptor) beginAccept(req *Accept, reply func(*Accepted, error)) (*writeJob, *Accepted, error) {
	if err := a.inject(stageReceived); err != nil {
		return nil, nil, err
	}
	a.mu.Lock()
	if err := a.usableLocked(); err != nil {
		a.mu.Unlock()
		return nil, nil, err
	}
	var done Slot
	if a.hooks.done != nil {
		done = a.hooks.done()
	}
	oldCommit, oldForgotten := a.st.commit, a.st.forgotten
	r := a.st.accept(req)
	if !r.ok {
		rep := &Accepted{Promised: a.st.promised, Done: done}
		a.mu.Unlock()
		return nil, rep, nil
	}
	j := &writeJob{entries: r.stored, reply: reply}
	if reply == nil {
		j.errc = make(chan error, 1)
	}
	if r.raised {
		j.promise = req.Ballot
	}
	if req.Min > a.st.forgotten && a.st.forget(req.Min) {
		j.truncate = req.Min
	}
	j.event = a.eventLocked(r.stored, r.marked, oldCommit, oldForgotten)
	j.outcome = acceptOutcome{
		ballot: req.Ballot, done: done,
		oldCommit: oldCommit, commit: a.st.commit,
		oldForgotten: oldForgotten, forgotten: a.st.forgotten,
	}
	queued := a.enqueue(j)
	a.mu.Unlock()
	if !queued {
		return nil, nil, ErrStopped
	}
	return j, nil, nil
}

// finishAccept is the rest of an Accept once its job is written: it tells
// the node what the Accept taught it and returns the reply.
func (a *Acceptor) finishAccept(o *acceptOutcome) (*Accepted, error) {
	if err := a.inject(stagePersisted); err != nil {
		return nil, err
	}
	if a.hooks.contact != nil {
		a.hooks.contact(o.ballot, true)
	}
	if o.forgotten > o.oldForgotten && a.hooks.forget != nil {
		a.hooks.forget(o.forgotten)
	}
	if o.commit > o.oldCommit && a.hooks.commit != nil {
		a.hooks.commit(o.commit)
	}
	return &Accepted{OK: true, Promised: o.ballot, Done: o.done}, nil
}

// markChosen is the local leader telling its own acceptor what it saw
// chosen in ballot b, so the leader's node learns without a message.
func (a *Acceptor) markChosen(b Ballot, commit Slot, chosen []Slot) {
	a.mu.Lock()
	if a.usableLocked() != nil {
		a.mu.Unlock()
		return
	}
	oldCommit, oldForgotten := a.st.commit, a.st.forgotten
	marked := a.st.markChosen(b, commit, chosen)
	ev := a.eventLocked(nil, marked, oldCommit, oldForgotten)
	if ev == nil {
		a.mu.Unlock()
		return
	}
	// A mark writes nothing, so it is published now rather than behind
	// the queued writes: queued, it waited for the fsync of the next
	// batch's entries, which doubled the leader's delivery latency. The
	// marked entries are chosen (a quorum has them on disk) whether or not
	// this acceptor's own copy is durable yet, and durablePrefix, which
	// replays trust, still moves only with the jobs that pass through the
	// committer in order: an empty job carries the new chosen prefix
	// there, behind the writes queued or in progress. With none, every
	// change so far is persisted and the prefix is durable now (a job
	// would start a writer goroutine, and make the next request wait for
	// it, for nothing).
	a.publish(ev)
	moved := false
	if len(a.pending) > 0 || a.writing {
		a.pending = append(a.pending, &writeJob{prefix: a.st.chosenPrefix})
	} else if p := uint64(a.st.chosenPrefix); p > a.durablePrefix.Load() {
		a.durablePrefix.Store(p)
		moved = true
	}
	a.mu.Unlock()
	if moved {
		a.notifyDurable()
	}
}

// forget moves the truncation point up (the node learned a new Min).
func (a *Acceptor) forget(min Slot) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.usableLocked() != nil {
		return
	}
	oldCommit, oldForgotten := a.st.commit, a.st.forgotten
	if a.st.forget(min) {
		a.enqueue(&writeJob{truncate: min, event: a.eventLocked(nil, nil, oldCommit, oldForgotten)})
	}
}

// sync waits until every state change decided so far is persisted.
func (a *Acceptor) sync(ctx context.Context) error {
	a.mu.Lock()
	if err := a.usableLocked(); err != nil {
		a.mu.Unlock()
		return err
	}
	j := &writeJob{errc: make(chan error, 1)}
	queued := a.enqueue(j)
	a.mu.Unlock()
	if !queued {
		return ErrStopped
	}
	a.write(j)
	return wait(ctx, j.errc)
}

// persistDone records the node's done watermark (asynchronously).
func (a *Acceptor) persistDone(done Slot) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.usableLocked() == nil {
		a.enqueue(&writeJob{done: done})
	}
}

// eventLocked builds the observe event for a state change, or nil if there
// is nothing new to tell.
func (a *Acceptor) eventLocked(stored, marked []Entry, oldCommit, oldForgotten Slot) *ObserveEvent {
	if len(stored) == 0 && len(marked) == 0 && a.st.commit == oldCommit && a.st.forgotten == oldForgotten {
		return nil
	}
	ev := &ObserveEvent{Commit: a.st.commit, Forgotten: a.st.forgotten}
	if len(stored)+len(marked) > 0 {
		ev.Entries = make([]Entry, 0, len(stored)+len(marked))
		ev.Entries = append(ev.Entries, stored...)
		ev.Entries = append(ev.Entries, marked...)
	}
	return ev
}

func (a *Acceptor) notifyDurable() {
	if a.hooks.durable != nil {
		a.hooks.durable()
	}
}

// heldView is what an acceptor's log holds of the chosen values, as its
// node's observer needs to know it to record a slot as a reference into
// the accepted log rather than a second copy of the value.
type heldView struct {
	forgotten Slot // the log holds nothing below it
	// durable: every slot in [forgotten, durable) outside holes has its
	// chosen entry on disk; a later write there can only be a higher
	// ballot, which carries the same value.
	durable Slot
	// pending: the same holds below pending once the writes already queued
	// land (pending == durable when none will: the acceptor stopped or
	// failed).
	pending Slot
	holes   spanSet // the holes in the range asked for
}

// holds reports whether the log has slot's chosen entry below limit
// (v.durable or v.pending).
func (v *heldView) holds(slot, limit Slot) bool {
	return slot >= v.forgotten && slot < limit && !v.holes.contains(slot)
}

// held returns what the log holds of the chosen values between from and
// to.
func (a *Acceptor) held(from, to Slot) heldView {
	a.mu.Lock()
	defer a.mu.Unlock()
	// durablePrefix is read under mu: every hole below it was added (under
	// mu) before the job that carried it was queued, so it is listed here.
	v := heldView{
		forgotten: a.st.forgotten,
		durable:   Slot(a.durablePrefix.Load()),
		pending:   a.st.chosenPrefix,
		holes:     spanSet{s: a.st.holes.within(from, to)},
	}
	if !a.running || a.failed.Load() {
		v.pending = v.durable
	}
	return v
}

// status returns the promised ballot and the highest slot accepted + 1.
func (a *Acceptor) status() (promised Ballot, maxSlot Slot) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.promised, a.st.maxSlot
}
