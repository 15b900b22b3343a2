package log

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/jonboulle/clockwork"
)

// Garbage collection.
//
// A truncation deletes records at once, but the value-log space of their
// large values comes back only when Badger's value-log garbage collector
// rewrites the files holding them. CollectGarbage does that on demand; the
// collector goroutine (gcLoop) calls it every BadgerOptions.GCInterval when
// a truncation was committed since the last collection. Collections, manual
// or automatic, are serialized by gcMu; their memtable flush goes through
// the committer like every other change (see badger_commit.go).

// CollectGarbage reclaims the disk space of deleted and overwritten records.
// It flushes Badger's memtables and compacts the newest tables (which pauses
// the database's writes for that time), then rewrites value-log files that
// are mostly garbage and deletes them, until none is left or ctx ends. It is
// a no-op with respect to the contents of the Logs.
//
// The database calls it itself every BadgerOptions.GCInterval after a
// truncation; call it directly only with the automatic collection turned
// off, or to get the space back at once. It costs at least one memtable
// flush, so run it from time to time after TruncateBelow, not after every
// call. One collection runs at a time: a call waits for the one in
// progress, then runs its own.
//
// If ctx ends, it returns ctx's error at the next check, which comes at
// least once per value-log file rewritten; the files already rewritten stay
// reclaimed. It returns ErrClosed after Close.
func (db *BadgerDB) CollectGarbage(ctx context.Context) error {
	_, err := db.collectGarbage(ctx, false)
	return err
}

// collectGarbage runs one collection and reports whether it ran. With
// onlyIfTruncated, it returns (false, nil) without running if no truncation
// was committed since the last successful collection began.
func (db *BadgerDB) collectGarbage(ctx context.Context, onlyIfTruncated bool) (ran bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if !db.acquire() {
		return false, ErrClosed
	}
	defer db.release()
	db.gcMu.Lock()
	defer db.gcMu.Unlock()

	// Read before the flush: a truncation committed from here on may or may
	// not be collected by this run, and counts as new for the next one.
	truncations := db.truncations.Load()
	if onlyIfTruncated && truncations == db.collected {
		return false, nil
	}

	// Deleted keys count as garbage in the value log only once a compaction
	// has dropped them; force one for what sits in the memtables.
	if err := db.submit(ctx, &commitReq{flush: true}); err != nil {
		return true, err
	}
	const discardRatio = 0.5
	for rewritten := 0; ; rewritten++ {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		err := db.bdb.RunValueLogGC(discardRatio)
		switch {
		case err == nil:
			db.logger.DebugContext(ctx, "value-log file rewritten", "files", rewritten+1)
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			db.logger.DebugContext(ctx, "value-log garbage collected", "files", rewritten)
			db.collected = truncations
			db.gcRuns.Add(1)
			return true, nil
		default:
			return true, fmt.Errorf("log: value-log garbage collection in %q: %w", db.dir, err)
		}
	}
}

// startCollector starts the collector goroutine, unless GCInterval turns it
// off. The timer is armed before the goroutine starts, so that a test
// advancing a fake clock right after OpenBadger fires it.
func (db *BadgerDB) startCollector() {
	if db.opts.GCInterval < 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	db.gcCancel = cancel
	db.gcDone = make(chan struct{})
	timer := db.opts.Clock.NewTimer(db.opts.GCInterval)
	go db.gcLoop(ctx, timer)
}

// gcLoop is the collector goroutine. It runs until Close cancels ctx. The
// timer is re-armed only once a check is done, so that with a fake clock,
// BlockUntilContext(ctx, 1) after Advance returns once the check finished.
func (db *BadgerDB) gcLoop(ctx context.Context, timer clockwork.Timer) {
	defer close(db.gcDone)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.Chan():
		}
		db.collectIfTruncated(ctx)
		timer.Reset(db.opts.GCInterval)
	}
}

// collectIfTruncated is one check of the collector. Errors are logged, not
// returned: the next check retries.
func (db *BadgerDB) collectIfTruncated(ctx context.Context) {
	start := db.opts.Clock.Now()
	ran, err := db.collectGarbage(ctx, true)
	switch {
	case err == nil && !ran:
		// Nothing truncated since the last collection.
	case err == nil:
		lsm, vlog, _ := db.DiskSize() // for the log line only; 0 if unreadable
		db.logger.Debug("automatic garbage collection done", "took", db.opts.Clock.Since(start),
			"lsm_bytes", lsm, "vlog_bytes", vlog)
	case ctx.Err() != nil || errors.Is(err, ErrClosed):
		db.logger.Debug("automatic garbage collection cancelled by Close", "err", err)
	default:
		db.logger.Error("automatic garbage collection failed; retrying after GCInterval",
			"err", err, "gc_interval", db.opts.GCInterval)
	}
}
