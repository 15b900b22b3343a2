package log

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by Get and Last when the requested record does not
// exist (it was never written, or it was truncated away). Callers treat it as
// an ordinary "absent" answer, not as a failure of the log.
var ErrNotFound = errors.New("log: not found")

// ErrClosed is returned by every method of a Log after Close. The caller
// should give up: the Log will not work again (open a new one).
var ErrClosed = errors.New("log: closed")

// Record is one entry of a Log: the bytes stored at a slot.
type Record struct {
	Slot  uint64
	Value []byte
}

// Log is an ordered map from slot (uint64) to bytes. It is what the paxos
// roles persist their state in: the acceptor's promise and accepted entries,
// and the observer's recorded (chosen) values each live in one Log.
//
// All methods are safe for concurrent use. Byte slices passed in are not
// retained after the method returns (the Log copies what it keeps); byte
// slices handed out (by Get, Last and Range) belong to the caller, who may
// keep and modify them.
//
// Durability: when the backend is durable (see Durable), Write returns only
// after every record of the batch is on stable storage (fsynced), and a Write
// is atomic: after a crash either all of its records are present or none.
// A concurrent reader may observe a Write's records shortly before that Write
// returns; only a returned Write is promised to survive a crash, so reply to
// the network only after your own Write has returned.
//
// Contexts: every method returns the context's error (errors.Is(err,
// ctx.Err()) holds) if ctx is already done when it is called, and then does
// nothing. If ctx ends while a Write or TruncateBelow is waiting for storage,
// the method may return the context's error although the change was (or will
// still be) applied: the outcome is unknown, as after a crash.
//
// Errors: ErrNotFound and ErrClosed as documented below, the context's error,
// and backend errors (I/O failures, corruption), which the caller should treat
// as fatal for the Log.
type Log interface {
	// Write stores every record of recs, replacing any record already at the
	// same slot, atomically and, for a durable backend, durably. If recs holds
	// the same slot twice, the later record wins. Records with a slot below
	// the truncation point (see TruncateBelow) are ignored. A Write of no
	// records returns nil at once. Concurrent Writes may share one underlying
	// write and one fsync (group commit). A backend may bound the size of a
	// single Write (see its documentation).
	Write(ctx context.Context, recs ...Record) error

	// Get returns the value at slot, or ErrNotFound.
	Get(ctx context.Context, slot uint64) ([]byte, error)

	// Range calls fn for each record with from <= Slot < to, in ascending slot
	// order, stopping at the first error fn returns (which Range returns
	// unchanged, so errors.Is works on it). to == 0 means no upper bound.
	// fn must not call methods of the same Log.
	Range(ctx context.Context, from, to uint64, fn func(Record) error) error

	// Last returns the record with the highest slot, or ErrNotFound if the
	// log holds no record.
	Last(ctx context.Context) (Record, error)

	// TruncateBelow deletes every record with a slot below slot and releases
	// its memory (and, for a persistent backend, eventually its disk space).
	// The truncation point only moves up: a smaller slot than a previous call
	// is a no-op. It is durable on return like Write.
	TruncateBelow(ctx context.Context, slot uint64) error

	// First returns the truncation point: the lowest slot that may still hold
	// a record (0 for a log never truncated).
	First(ctx context.Context) (uint64, error)

	// Close releases the Log's resources. Further calls, Close included,
	// return ErrClosed.
	Close() error
}

// Durable is implemented by Logs that can report whether a successful Write
// is on stable storage. A Log that does not implement it is treated as not
// durable. The paxos acceptor refuses to restart from a non-durable log as if
// it remembered its promises.
type Durable interface {
	Durable() bool
}

// LazyWriter is implemented by Logs that can take a write without paying a
// sync of its own. WriteLazy is Write, with one difference: the records may
// wait, for a bounded time, to be committed together with the next Write of
// the same database, and become durable with it; a crash before then may
// lose them, but never tears a WriteLazy apart, and never loses a record
// another Write made durable. When WriteLazy returns, the records are
// readable. Writes and truncations of one Log keep their order.
//
// The paxos observer uses it for the recorded log, a copy of values already
// on a majority of acceptors' disks.
type LazyWriter interface {
	WriteLazy(ctx context.Context, recs ...Record) error
}

// WriteLazy writes recs with l's WriteLazy if it has one, and with Write
// otherwise.
func WriteLazy(ctx context.Context, l Log, recs ...Record) error {
	if lw, ok := l.(LazyWriter); ok {
		return lw.WriteLazy(ctx, recs...)
	}
	return l.Write(ctx, recs...)
}

// IsDurable reports whether l declares itself durable.
func IsDurable(l Log) bool {
	d, ok := l.(Durable)
	return ok && d.Durable()
}

// Stats counts the storage work behind a Log. For Logs that share one
// database (see BadgerDB.Log), the counters are those of the whole database.
type Stats struct {
	// Writes is the number of Write and TruncateBelow calls whose changes
	// reached storage.
	Writes uint64
	// Syncs is the number of times the backend made a group of changes
	// durable (one fsync round). With group commit, Syncs < Writes under
	// concurrency.
	Syncs uint64
	// GCRuns is the number of garbage collections that reclaimed disk
	// space after truncations and completed (BadgerDB.CollectGarbage,
	// called by its owner or every BadgerOptions.GCInterval by the
	// database itself). 0 for backends that free space at once.
	GCRuns uint64
	// SyncLatency counts the fsync rounds by how long each took (the write
	// and the fsync of one group commit): SyncLatency[i] counts those that
	// took at most SyncBucket(i), the last those that took longer.
	// SyncTime is their total duration. Zero for backends that do not sync.
	SyncLatency [SyncBuckets + 1]uint64
	SyncTime    time.Duration
}

// SyncBuckets is the number of bounded buckets of Stats.SyncLatency.
const SyncBuckets = 12

// SyncBucket returns the upper bound of bucket i of Stats.SyncLatency, for
// 0 <= i < SyncBuckets: 100µs, 250µs, 500µs, 1ms, 2.5ms, … 500ms.
func SyncBucket(i int) time.Duration {
	base := [3]time.Duration{100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond}
	d := base[i%3]
	for range i / 3 {
		d *= 10
	}
	return d
}

// syncBucketOf returns the bucket of Stats.SyncLatency that d falls in.
func syncBucketOf(d time.Duration) int {
	for i := range SyncBuckets {
		if d <= SyncBucket(i) {
			return i
		}
	}
	return SyncBuckets
}

// StatsReporter is an optional capability of a Log: it reports counters of
// the storage work done so far. Detect it by type assertion.
type StatsReporter interface {
	Stats() Stats
}
