package paxos

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/synod-go/synod/log"
)

// Recording is off the critical path. A slot the observer decides is
// delivered (Learn, Status, the watermark) at once from an in-memory cache,
// and written to the recorded log by one background writer that batches
// whatever queued while its previous write was on its way to disk. The
// recorded log is a local copy of values already durable on a majority of
// acceptors, which keep them until Min (or a compaction) passes them: a
// crash that loses its unwritten tail only makes the restarted observer
// learn those slots again from the acceptors. Waiting for its fsync before
// delivering would add a second, sequential fsync to every Propose; the
// writes are lazy (log.WriteLazy), so on a Badger log they ride along with
// the acceptor's next fsync instead of costing rounds of their own.
const (
	// recordCacheBytes bounds the written entries kept in memory for Learn
	// (an application that keeps up never reads the recorded log).
	recordCacheBytes = 4 << 20
	// recordQueueBytes bounds the entries decided but not yet written: past
	// it, deciding waits for the writer (backpressure to the acceptors'
	// streams) instead of growing without limit.
	recordQueueBytes = 64 << 20
	// entryOverhead is what an entry costs beyond its value, as counted
	// against the two bounds above.
	entryOverhead = 64
	// recordLinger: woken with less than recordLingerBytes queued, the
	// writer waits this long (on the node's Clock) for more before it
	// writes, so that a slow trickle of decisions (one value at a time)
	// costs one write per millisecond rather than one per value.
	recordLinger      = time.Millisecond
	recordLingerBytes = 256 << 10
)

// cachedEntry is a decided entry held in memory.
type cachedEntry struct {
	e       Entry
	written bool // on the recorded log (it may be evicted from the cache)
}

func entrySize(e Entry) int { return len(e.Value) + entryOverhead }

// cacheLocked holds decided entries: every one not yet written, and
// written ones up to recordCacheBytes. Callers hold o.mu.
func (o *Observer) cacheLocked(entries []Entry) {
	for _, e := range entries {
		o.cache.put(e.Slot, cachedEntry{e: e})
		n := entrySize(e)
		o.cacheBytes += n
		o.queuedBytes += n
		o.queue = append(o.queue, e)
	}
	o.enqueued += uint64(len(entries))
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// evictLocked drops written entries below the watermark, lowest first,
// while the cache is over its bound, and every entry below min.
func (o *Observer) evictLocked() {
	for o.cacheLow < o.st.min {
		if c, ok := o.cache.get(o.cacheLow); ok {
			o.cache.del(o.cacheLow)
			o.cacheBytes -= entrySize(c.e)
			if !c.written {
				o.queuedBytes -= entrySize(c.e) // forgotten before it was written
			}
		}
		o.cacheLow++
	}
	for o.cacheBytes-o.queuedBytes > recordCacheBytes && o.cacheLow < o.st.watermark {
		if c, ok := o.cache.get(o.cacheLow); ok {
			if !c.written {
				return
			}
			o.cache.del(o.cacheLow)
			o.cacheBytes -= entrySize(c.e)
		}
		o.cacheLow++
	}
}

// cachedRun returns the cached entries from slot from up to (not
// including) to, stopping at the first one not cached. Callers hold o.mu.
func (o *Observer) cachedRunLocked(from, to Slot) []Chosen {
	var out []Chosen
	for s := from; s < to; s++ {
		c, ok := o.cache.get(s)
		if !ok {
			break
		}
		if out == nil {
			out = make([]Chosen, 0, int(to-from))
		}
		out = append(out, Chosen{Slot: s, NoOp: c.e.NoOp, Value: c.e.Value})
	}
	return out
}

// record writes decided entries to the recorded log, and applies
// truncations, in order, until ctx ends; then it writes what is still
// queued (bounded by a timeout) and returns.
func (o *Observer) record(ctx context.Context) {
	backoff := 10 * time.Millisecond
	for {
		select {
		case <-o.wake:
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			for fctx.Err() == nil && o.writeQueued(fctx, true) == nil && o.hasQueued() {
			}
			cancel()
			return
		}
		o.mu.Lock()
		small := o.queuedBytes < recordLingerBytes
		o.mu.Unlock()
		if small {
			select {
			case <-o.clock.After(recordLinger):
			case <-ctx.Done():
			}
			select {
			case <-o.wake: // what it was woken for meanwhile is written now
			default:
			}
		}
		if err := o.writeQueued(ctx, false); err != nil {
			if ctx.Err() != nil {
				continue // the shutdown flush above retries
			}
			o.logger.Error("recording chosen values failed; retrying", "err", err, "retry_in", backoff)
			select {
			case <-o.clock.After(backoff):
			case <-ctx.Done():
			}
			backoff = min(2*backoff, time.Second)
			select {
			case o.wake <- struct{}{}:
			default:
			}
			continue
		}
		backoff = 10 * time.Millisecond
	}
}

func (o *Observer) hasQueued() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.queue) > 0 || o.truncateTo > o.truncated
}

// writeQueued writes what is queued in one go, then applies a pending
// truncation. On error the entries go back to the head of the queue.
//
// A slot whose chosen entry this node's accepted log already holds on disk
// is written as a reference to it, not a copy: consecutive such slots
// share one small references record, so recording costs the disk a few
// bytes per batch instead of every value a second time. A slot the
// accepted log will hold once its queued writes land waits in the queue
// for that (unless final), rather than being copied now: on the leader the
// observer learns a slot chosen before its own acceptor's write of it is
// on disk.
func (o *Observer) writeQueued(ctx context.Context, final bool) error {
	o.mu.Lock()
	batch := o.queue
	o.queue = nil
	min := o.st.min
	trunc := o.truncateTo
	o.mu.Unlock()

	var view heldView
	if o.held != nil && len(batch) > 0 {
		lo, hi := batch[0].Slot, batch[0].Slot
		for _, e := range batch {
			lo, hi = min2(lo, e.Slot), max(hi, e.Slot)
		}
		view = o.held(lo, hi+1)
	}
	// Sized for the batch: most entries land in written, and on a node
	// whose acceptor holds them, in refSlots.
	recs := make([]log.Record, 0, len(batch))
	refSlots := make([]Slot, 0, len(batch))
	written := make([]Entry, 0, len(batch))
	var deferred []Entry
	for _, e := range batch {
		switch {
		case e.Slot < min:
			written = append(written, e) // forgotten: nothing to write
		case o.held != nil && view.holds(e.Slot, view.durable):
			refSlots = append(refSlots, e.Slot)
			written = append(written, e)
		case o.held != nil && !final && view.holds(e.Slot, view.pending):
			deferred = append(deferred, e)
		default:
			recs = append(recs, entryRecord(e))
			written = append(written, e)
		}
	}
	slices.Sort(refSlots)
	var runs []span
	for _, s := range refSlots {
		if n := len(runs); n > 0 && runs[n-1].to == s && s-runs[n-1].from < maxRefSpan {
			runs[n-1].to++
			continue
		}
		runs = append(runs, span{s, s + 1})
	}
	for _, r := range runs {
		recs = append(recs, log.Record{Slot: uint64(r.from), Value: encodeRefs(r.to)})
	}
	if len(recs) > 0 {
		lazy := func(ctx context.Context, recs ...log.Record) error { return log.WriteLazy(ctx, o.recorded, recs...) }
		if err := chunked(ctx, lazy, recs); err != nil {
			o.mu.Lock()
			o.queue = append(batch, o.queue...)
			o.mu.Unlock()
			return fmt.Errorf("writing %d records: %w", len(recs), err)
		}
	}
	o.mu.Lock()
	for _, r := range runs {
		if r.from >= o.st.min {
			o.refs.add(r.from, r.to)
		}
	}
	o.mu.Unlock()
	// After the write: an entry written below the truncation point (it was
	// queued before min moved) is removed with the rest.
	var terr error
	if trunc > o.truncatedSnapshot() {
		if terr = o.truncateRecorded(ctx, trunc); terr == nil {
			o.mu.Lock()
			o.truncated = max(o.truncated, trunc)
			o.mu.Unlock()
		}
	}

	o.mu.Lock()
	o.queue = append(deferred, o.queue...)
	for _, e := range written {
		if c, ok := o.cache.get(e.Slot); ok && !c.written {
			c.written = true
			o.cache.put(e.Slot, c)
			o.queuedBytes -= entrySize(e)
		}
	}
	o.written += uint64(len(written))
	o.evictLocked()
	close(o.wroteCh)
	o.wroteCh = make(chan struct{})
	o.mu.Unlock()
	if terr != nil {
		return fmt.Errorf("truncating below %d: %w", trunc, terr)
	}
	return nil
}

// truncateRecorded truncates the recorded log below trunc. A references
// record that starts below trunc and reaches past it would go with the
// rest, so the part above is first written again as a record of its own
// at trunc. (A record covers at most maxRefSpan slots, so the one written
// covers every record it replaces.)
func (o *Observer) truncateRecorded(ctx context.Context, trunc Slot) error {
	o.mu.Lock()
	sp, ok := o.refs.find(trunc)
	o.mu.Unlock()
	if ok && sp.from < trunc {
		end := min(sp.to, trunc+maxRefSpan)
		if err := o.recorded.Write(ctx, log.Record{Slot: uint64(trunc), Value: encodeRefs(end)}); err != nil {
			return err
		}
	}
	if err := o.recorded.TruncateBelow(ctx, uint64(trunc)); err != nil {
		return err
	}
	o.mu.Lock()
	o.refs.trimBelow(trunc)
	o.mu.Unlock()
	return nil
}

// kick wakes the writer: the acceptor's durable prefix moved, so entries
// it deferred may be written as references now.
func (o *Observer) kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *Observer) truncatedSnapshot() Slot {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.truncated
}

// waitQueueLocked blocks while the entries waiting for the writer exceed
// recordQueueBytes. Callers hold o.mu; it is released while waiting.
func (o *Observer) waitQueueLocked(ctx context.Context) {
	for o.queuedBytes > recordQueueBytes && ctx.Err() == nil {
		ch := o.wroteCh
		o.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		o.mu.Lock()
	}
}

// flush waits until every entry decided so far is on the recorded log.
func (o *Observer) flush(ctx context.Context) error {
	o.mu.Lock()
	target := o.enqueued
	for o.written < target {
		if !o.running {
			o.mu.Unlock()
			return fmt.Errorf("paxos: observer not running")
		}
		ch := o.wroteCh
		o.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		o.mu.Lock()
	}
	o.mu.Unlock()
	return nil
}
