package paxos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/synod-go/synod/log"
)

// Observer is the learner role: it subscribes to acceptors, decides which
// values are chosen, records them in the recorded log, and delivers them in
// slot order (see (*Paxos).Learn).
//
// It always follows its own node's acceptor; it opens streams to the other
// acceptors only to catch up, when it knows of chosen slots its own acceptor
// cannot vouch for (a lost message, a partition, a late start).
type Observer struct {
	logger   *slog.Logger
	clock    clockwork.Clock
	recorded log.Log
	delay    time.Duration

	// accepted is this node's accepted log, and held tells what it holds
	// of the chosen values (Acceptor.held): slots it holds are recorded as
	// references into it, not copies. Both nil: every slot is copied.
	accepted log.Log
	held     func(from, to Slot) heldView

	clients []ObserverClient // by acceptor index
	self    int

	wake chan struct{} // cap 1: the writer has work

	catchups atomic.Uint64 // times remote streams were opened (Metrics)

	mu      sync.Mutex
	st      *observerState
	changed chan struct{} // closed and replaced when the watermark or min moves

	// The recorder (observer_record.go), guarded by mu.
	running     bool // the writer goroutine runs (between run's start and end)
	cache       slotCache
	cacheLow    Slot // no entry below it is cached
	cacheBytes  int
	queue       []Entry // decided, waiting for the writer
	queuedBytes int     // of the cached entries not yet written
	enqueued    uint64  // entries ever queued
	written     uint64  // entries ever taken and written by the writer
	wroteCh     chan struct{}
	truncateTo  Slot    // the recorded log should be truncated below this
	truncated   Slot    // ... and is truncated below this
	refs        spanSet // written slots recorded as references into accepted
}

type observed struct {
	idx int
	ev  *ObserveEvent
}

func newObserver(ctx context.Context, recorded, accepted log.Log, held func(from, to Slot) heldView, logger *slog.Logger, clock clockwork.Clock, delay time.Duration) (*Observer, error) {
	o := &Observer{
		logger:   logger,
		clock:    clock,
		recorded: recorded,
		delay:    delay,
		changed:  make(chan struct{}),
		st:       newObserverState(1),
		wake:     make(chan struct{}, 1),
		wroteCh:  make(chan struct{}),
	}
	if accepted != nil && held != nil && (log.IsDurable(accepted) || !log.IsDurable(recorded)) {
		// A reference must survive whatever its record survives.
		o.accepted, o.held = accepted, held
	}
	first, err := recorded.First(ctx)
	if err != nil {
		return nil, fmt.Errorf("paxos: reading recorded log: %w", err)
	}
	start := Slot(first)
	if accepted != nil {
		// The accepted log is truncated only below a slot the observer was
		// told to forget too; a crash between the two truncations leaves
		// the accepted log's the later one, and references below it dangle.
		af, err := accepted.First(ctx)
		if err != nil {
			return nil, fmt.Errorf("paxos: reading accepted log: %w", err)
		}
		start = max(start, Slot(af))
	}
	o.st.min = start
	o.st.watermark = start
	o.cacheLow, o.truncated, o.truncateTo = start, Slot(first), start // nothing is cached yet
	err = recorded.Range(ctx, first, 0, func(r log.Record) error {
		slot := Slot(r.Slot)
		end, refs, err := decodeRecorded(slot, r.Value)
		if err != nil {
			return err
		}
		if refs {
			if o.accepted == nil {
				return fmt.Errorf("%w at slot %d: a reference into the accepted log, which this observer cannot read", errCorruptRecord, slot)
			}
			// Unclipped: if it reaches above start, the truncation the
			// writer owes below start must rewrite its upper part.
			o.refs.add(slot, end)
		}
		from := max(slot, start)
		if from >= end {
			return nil // below what the accepted log still holds
		}
		if from <= o.st.watermark {
			o.st.watermark = max(o.st.watermark, end) // records come in slot order
		} else {
			for s := from; s < end; s++ {
				o.st.recorded[s] = true
			}
		}
		o.st.maxKnown = max(o.st.maxKnown, end)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("paxos: restoring recorded log: %w", err)
	}
	o.st.record(nil)
	return o, nil
}

// catchupLinger is how many CatchupDelays remote streams stay open after
// the observer caught up.
const catchupLinger = 20

// run follows the acceptors until ctx ends.
func (o *Observer) run(ctx context.Context, clients []ObserverClient, self int, seed int64) {
	o.mu.Lock()
	o.clients = clients
	o.self = self
	old := o.st
	o.st = newObserverState(len(clients))
	o.st.min, o.st.watermark, o.st.recorded, o.st.maxKnown = old.min, old.watermark, old.recorded, old.maxKnown
	o.running = true
	o.mu.Unlock()

	var wg sync.WaitGroup
	defer wg.Wait()
	// The writer stops after everything else (its deferred Wait runs last),
	// so it writes what the last events decided.
	var writer sync.WaitGroup
	defer func() {
		writer.Wait()
		o.mu.Lock()
		o.running = false
		o.mu.Unlock()
	}()
	writer.Add(1)
	go func() {
		defer writer.Done()
		o.record(ctx)
	}()
	rng := rand.New(rand.NewSource(seed))
	// follow is started on the run goroutine only (rng is not shared).
	follow := func(ctx context.Context, idx int) {
		r := rand.New(rand.NewSource(rng.Int63()))
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.follow(ctx, idx, r)
		}()
	}
	follow(ctx, self)

	// Remote streams, open only while catching up.
	var remote struct{ cancel context.CancelFunc }
	stopRemote := func() {
		if remote.cancel != nil {
			remote.cancel()
			remote.cancel = nil
		}
	}
	defer stopRemote()
	// Catching up starts once the node is a CatchupDelay behind: at
	// laggingSince the slots below target were known chosen, and a
	// CatchupDelay later its watermark has still not reached target (a
	// hole its own acceptor will not fill, or an acceptor that falls
	// further and further behind). A node only momentarily behind, its
	// own acceptor filling the watermark while the commit point it hears
	// runs ahead (Accepts of one leader arrive out of order, and a
	// leader's queue for a slow follower drains late), passes target
	// sooner and starts over: streams from the other acceptors would only
	// cost every node CPU.
	var laggingSince, caughtUp time.Time
	var target Slot
	tick := o.clock.NewTicker(max(o.delay/2, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.Chan():
			o.mu.Lock()
			lag, wm, hint := o.st.lagging(), o.st.watermark, o.st.commitHint
			o.mu.Unlock()
			now := o.clock.Now()
			switch {
			case !lag:
				// Remote streams stay open a while after catching up: a
				// node that fell behind once (a slow disk, a long queue at
				// the leader) tends to again, and reopening costs a
				// CatchupDelay each time.
				laggingSince = time.Time{}
				if caughtUp.IsZero() {
					caughtUp = now
				}
				if now.Sub(caughtUp) >= catchupLinger*o.delay {
					stopRemote()
				}
			case remote.cancel != nil:
				caughtUp = time.Time{} // still catching up
			case laggingSince.IsZero() || wm >= target:
				laggingSince, target = now, max(hint, wm+1)
			case remote.cancel == nil && now.Sub(laggingSince) >= o.delay && len(clients) > 1:
				var rctx context.Context
				rctx, remote.cancel = context.WithCancel(ctx)
				o.logger.Debug("observer catching up from peers")
				o.catchups.Add(1)
				for i := range clients {
					if i != self {
						follow(rctx, i)
					}
				}
			}
		}
	}
}

// follow keeps a stream to acceptor idx open until ctx ends, reconnecting
// with backoff from the observer's current watermark.
func (o *Observer) follow(ctx context.Context, idx int, rng *rand.Rand) {
	backoff := 10 * time.Millisecond
	for ctx.Err() == nil {
		o.mu.Lock()
		from := o.st.watermark
		o.mu.Unlock()
		s, err := o.clients[idx].Observe(ctx, &ObserveRequest{From: from})
		if err == nil {
			for {
				ev, rerr := s.Recv()
				if rerr != nil {
					err = rerr
					break
				}
				backoff = 10 * time.Millisecond
				// Handled here, not handed to another goroutine: one hop
				// less per event, and a full recording queue holds up
				// this stream (flow control) rather than a channel.
				o.handle(ctx, observed{idx: idx, ev: ev})
				if ctx.Err() != nil {
					break
				}
			}
			s.Close()
		}
		if ctx.Err() != nil {
			return
		}
		o.logger.Debug("observe stream ended", "acceptor", idx, "err", err)
		d := backoff + time.Duration(rng.Int63n(int64(backoff)))
		backoff = min(backoff*2, time.Second)
		select {
		case <-o.clock.After(d):
		case <-ctx.Done():
			return
		}
	}
}

// handle decides what one event settles and queues it for recording. The
// decided entries are delivered at once (see observer_record.go).
func (o *Observer) handle(ctx context.Context, m observed) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.waitQueueLocked(ctx)
	// An acceptor that forgot slots (Min, or its node's Compact) cannot
	// replay them. Forget them here too only if this node lacks some of
	// them: a node that has recorded everything below keeps it until its
	// own application is done with it.
	if f := m.ev.Forgotten; f > o.st.min && (m.idx == o.self || o.st.watermark < f) {
		o.forgetLocked(f)
	}
	o.decideLocked(m.idx, m.ev)
}

// decideLocal takes entries that this node, leading, saw chosen (each
// marked Chosen, with its value and the ballot that chose it), so that the
// leader's node delivers them at once instead of after a round trip through
// its acceptor's observe stream (which reports the same slots again; they
// are then known and skipped). It never blocks: when the recorder is behind
// it leaves the entries to the stream, whose path applies the backpressure.
func (o *Observer) decideLocal(entries []Entry) {
	if len(entries) == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.queuedBytes > recordQueueBytes {
		return
	}
	o.decideLocked(o.self, &ObserveEvent{Entries: entries})
}

// decideLocked runs one event through the vote counting and queues what it
// decides for delivery and recording. Callers hold o.mu.
func (o *Observer) decideLocked(idx int, ev *ObserveEvent) {
	decided := o.st.observe(idx, ev)
	if len(decided) == 0 {
		return
	}
	slots := make([]Slot, len(decided))
	for i, e := range decided {
		slots[i] = e.Slot
	}
	o.cacheLocked(decided)
	o.st.record(slots)
	o.broadcastLocked()
}

func (o *Observer) broadcastLocked() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// forget drops everything below min (the cluster's Min moved, or this
// node compacted).
func (o *Observer) forget(ctx context.Context, min Slot) {
	o.mu.Lock()
	forgot := o.forgetLocked(min)
	inline := forgot && !o.running
	o.mu.Unlock()
	if inline {
		// No writer runs (before Start or after it returned): truncate here.
		if err := o.truncateRecorded(ctx, min); err != nil {
			o.logger.Error("truncating recorded log failed", "err", err)
		}
	}
}

// forgetLocked moves min up, releases the cache below it, and asks the
// writer to truncate the recorded log.
func (o *Observer) forgetLocked(min Slot) bool {
	if !o.st.forget(min) {
		return false
	}
	o.evictLocked()
	o.truncateTo = max(o.truncateTo, min)
	select {
	case o.wake <- struct{}{}:
	default:
	}
	o.broadcastLocked()
	return true
}

// hint tells the observer that slots below commit, and slot want if not
// nil, are chosen somewhere.
func (o *Observer) hint(commit Slot, want *Slot) {
	o.mu.Lock()
	o.st.hint(commit, want)
	o.mu.Unlock()
}

// status returns what this node knows of slot.
func (o *Observer) status(ctx context.Context, slot Slot) (Fate, Entry, error) {
	o.mu.Lock()
	min := o.st.min
	rec := slot < o.st.watermark || o.st.recorded[slot]
	c, cached := o.cache.get(slot)
	ref := o.refs.contains(slot)
	o.mu.Unlock()
	if slot < min {
		return Forgotten, Entry{}, nil
	}
	if !rec {
		return Pending, Entry{}, nil
	}
	if cached {
		return Decided, c.e, nil
	}
	l := o.recorded
	if ref {
		l = o.accepted
	}
	v, err := l.Get(ctx, uint64(slot))
	if errors.Is(err, log.ErrNotFound) {
		return Forgotten, Entry{}, nil // truncated meanwhile
	}
	if err != nil {
		return Pending, Entry{}, err
	}
	e, err := decodeEntry(slot, v)
	if err != nil {
		return Pending, Entry{}, err
	}
	return Decided, Entry{Slot: slot, NoOp: e.NoOp, Value: e.Value}, nil
}

// positions returns the watermark, min, and the highest known slot + 1.
func (o *Observer) positions() (watermark, min, maxKnown Slot) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.st.watermark, o.st.min, o.st.maxKnown
}

// learn blocks until slot from is recorded, then returns up to limit
// consecutive recorded values starting there.
func (o *Observer) learn(ctx context.Context, from Slot, limit int) ([]Chosen, error) {
	if limit <= 0 {
		limit = 1
	}
	for {
		o.mu.Lock()
		wm, min, ch := o.st.watermark, o.st.min, o.changed
		o.mu.Unlock()
		if from < min {
			return nil, fmt.Errorf("%w: slot %d is below Min %d", ErrForgotten, from, min)
		}
		if from < wm {
			to := min2(wm, from+Slot(limit))
			o.mu.Lock()
			out := o.cachedRunLocked(from, to)
			o.mu.Unlock()
			if len(out) > 0 {
				return out, nil
			}
			// Not cached, so written (the cache keeps every entry until
			// it is): read the log, up to the first slot it lacks.
			out, err := o.readRecorded(ctx, from, to)
			if err != nil || len(out) > 0 {
				return out, err
			}
			o.mu.Lock()
			min = o.st.min
			o.mu.Unlock()
			if from < min {
				continue // forgotten meanwhile: the check above reports it
			}
			return nil, fmt.Errorf("%w: slot %d is missing from the recorded log", ErrForgotten, from)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// readRecorded reads consecutive recorded entries from slot from up to
// (not including) to, stopping at the first slot it cannot read (truncated
// meanwhile). Slots recorded as references are read from the accepted log,
// the others from the recorded log.
func (o *Observer) readRecorded(ctx context.Context, from, to Slot) ([]Chosen, error) {
	o.mu.Lock()
	refs := o.refs.within(from, to)
	o.mu.Unlock()
	out := make([]Chosen, 0, int(to-from))
	for next := from; next < to; {
		l, end := o.recorded, to
		if len(refs) > 0 && refs[0].from <= next {
			l, end = o.accepted, refs[0].to
			refs = refs[1:]
		} else if len(refs) > 0 {
			end = refs[0].from
		}
		n, err := readRun(ctx, l, next, end, &out)
		if err != nil || n < end-next {
			return out, err
		}
		next = end
	}
	return out, nil
}

// readRun appends to out the entries l holds from slot from up to (not
// including) to, stopping at the first slot it lacks, and returns how many
// it appended. The references records a recorded log holds among them are
// never asked for: their slots are read from the accepted log.
func readRun(ctx context.Context, l log.Log, from, to Slot, out *[]Chosen) (Slot, error) {
	errGap := errors.New("gap")
	n := Slot(0)
	err := l.Range(ctx, uint64(from), uint64(to), func(r log.Record) error {
		e, err := decodeEntry(Slot(r.Slot), r.Value)
		if err != nil {
			return err
		}
		if e.Slot != from+n {
			return errGap
		}
		*out = append(*out, Chosen{Slot: e.Slot, NoOp: e.NoOp, Value: e.Value})
		n++
		return nil
	})
	if err != nil && !errors.Is(err, errGap) {
		return n, err
	}
	return n, nil
}

// waitSlot blocks until slot is recorded (or forgotten) and returns it.
func (o *Observer) waitSlot(ctx context.Context, slot Slot) (Fate, Entry, error) {
	for {
		o.mu.Lock()
		ch := o.changed
		o.mu.Unlock()
		f, e, err := o.status(ctx, slot)
		if err != nil || f != Pending {
			return f, e, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return Pending, Entry{}, ctx.Err()
		}
	}
}

func min2(a, b Slot) Slot {
	if a < b {
		return a
	}
	return b
}

// knows reports whether slot is recorded here or forgotten.
func (o *Observer) knows(slot Slot) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slot < o.st.watermark || o.st.recorded[slot]
}
