package paxos

import (
	"context"
	"fmt"
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
			for fctx.Err() == nil && o.writeQueued(fctx) == nil && o.hasQueued() {
			}
			cancel()
			return
		}
		if err := o.writeQueued(ctx); err != nil {
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

// writeQueued writes everything queued in one go, then applies a pending
// truncation. On error the entries go back to the head of the queue.
func (o *Observer) writeQueued(ctx context.Context) error {
	o.mu.Lock()
	batch := o.queue
	o.queue = nil
	min := o.st.min
	trunc := o.truncateTo
	o.mu.Unlock()

	recs := make([]log.Record, 0, len(batch))
	for _, e := range batch {
		if e.Slot >= min {
			recs = append(recs, entryRecord(e))
		}
	}
	if len(recs) > 0 {
		lazy := func(ctx context.Context, recs ...log.Record) error { return log.WriteLazy(ctx, o.recorded, recs...) }
		if err := chunked(ctx, lazy, recs); err != nil {
			o.mu.Lock()
			o.queue = append(batch, o.queue...)
			o.mu.Unlock()
			return fmt.Errorf("writing %d entries: %w", len(recs), err)
		}
	}
	// After the write: an entry written below the truncation point (it was
	// queued before min moved) is removed with the rest.
	var terr error
	if trunc > o.truncatedSnapshot() {
		if terr = o.recorded.TruncateBelow(ctx, uint64(trunc)); terr == nil {
			o.mu.Lock()
			o.truncated = max(o.truncated, trunc)
			o.mu.Unlock()
		}
	}

	o.mu.Lock()
	for _, e := range batch {
		if c, ok := o.cache.get(e.Slot); ok && !c.written {
			c.written = true
			o.cache.put(e.Slot, c)
			o.queuedBytes -= entrySize(e)
		}
	}
	o.written += uint64(len(batch))
	o.evictLocked()
	close(o.wroteCh)
	o.wroteCh = make(chan struct{})
	o.mu.Unlock()
	if terr != nil {
		return fmt.Errorf("truncating below %d: %w", trunc, terr)
	}
	return nil
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
