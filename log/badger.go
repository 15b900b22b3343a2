package log

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Errors of OpenBadger and OpenFile, of their Log methods, and of Write on
// their Logs. They are wrapped with details (the directory, what was
// found); test with errors.Is.
var (
	// ErrLocked: the directory is in use by another open database (BadgerDB
	// or FileDB), in this process or another. Close that one first; do not
	// remove its lock file while it runs.
	ErrLocked = errors.New("log: directory locked by another open database")

	// ErrCorrupt: the directory looks like a Synod log but its files or its
	// metadata cannot be read back. Nothing was written to it. Restore the
	// node from a backup or from its peers.
	ErrCorrupt = errors.New("log: database corrupt")

	// ErrNotLog: the directory holds something else (other files, a
	// database of another application, or a format this build does not
	// read). Nothing was written to it. Pick another directory.
	ErrNotLog = errors.New("log: not a Synod log")

	// ErrIdentityMismatch: the database belongs to another node or cluster
	// (see BadgerOptions.Identity). The error names both identities.
	ErrIdentityMismatch = errors.New("log: badger database identity mismatch")

	// ErrTooLarge: one Write holds more than the backend writes atomically
	// (one Badger transaction, see BadgerOptions.MemTableSize; MaxFileWrite
	// for a FileDB). Nothing was written; split the batch into several
	// Writes if atomicity allows.
	ErrTooLarge = errors.New("log: write too large")
)

// BadgerDB is one Badger database holding any number of Logs, each under its
// own prefix (a node keeps its "promise", "accepted" and "recorded" logs in
// one database). Open it with OpenBadger, get Logs with Log, and Close it
// when done: closing the Logs does not close the database.
//
// Durability: unless BadgerOptions.UnsafeNoSync is set, every Write and
// TruncateBelow is fsynced before it returns. Concurrent Writes, from any of
// the database's Logs, are committed together by one goroutine in one Badger
// transaction and one fsync round (group commit); Stats counts both.
//
// Disk space: truncated records are deleted at once, but Badger reclaims the
// value-log space of large values (BadgerOptions.ValueThreshold and above)
// only when CollectGarbage runs. The database runs it itself, every
// BadgerOptions.GCInterval (1 minute by default) if a Log was truncated
// since the last collection; an owner who turns that off calls it now and
// then, e.g. after truncating many slots.
//
// All methods are safe for concurrent use.
type BadgerDB struct {
	bdb    *badger.DB
	dir    string
	opts   BadgerOptions
	logger *slog.Logger

	// Limits of one Badger transaction, with a margin (see badger_commit.go).
	maxTxnCount, maxTxnSize int64

	reqs          chan *commitReq
	stop          chan struct{} // closed by Close to end the committer
	committerDone chan struct{}

	// Garbage collection (badger_gc.go).
	gcMu sync.Mutex // one CollectGarbage at a time
	// truncations counts the commits that moved a truncation point or
	// deleted records.
	truncations atomic.Uint64
	// collected is truncations as read when the last successful collection
	// began. Guarded by gcMu.
	// Invariant: collected <= truncations.
	collected uint64
	// gcCancel ends the context of the automatic collector, gcDone is
	// closed when it has returned; both nil when GCInterval < 0.
	gcCancel context.CancelFunc
	gcDone   chan struct{}

	writes, syncs, gcRuns atomic.Uint64
	syncHist              [SyncBuckets + 1]atomic.Uint64
	syncNanos             atomic.Int64

	mu sync.Mutex
	// Invariant: once closed is true, inflight is never incremented again.
	closed   bool
	inflight sync.WaitGroup
	logs     map[string]*badgerLog // open Logs by prefix
}

var _ StatsReporter = (*BadgerDB)(nil)

// OpenBadger opens the Synod Badger database in dir, creating dir and the
// database if dir is missing or empty.
//
// It fails, without writing anything, with an error wrapping ErrLocked if
// another BadgerDB has dir open, ErrNotLog if dir holds anything but a Synod
// Badger log, ErrCorrupt if it holds one that cannot be read back, and
// ErrIdentityMismatch if opts.Identity differs from the stored identity;
// errors reading dir wrap the os error (errors.Is(err, fs.ErrPermission)).
//
// Before Badger opens the files, OpenBadger reads every table of the LSM
// tree once and verifies its checksums, because Badger panics, in goroutines
// no caller can recover, on a damaged table. Afterwards, every record value
// carries a CRC-32C, so damage found later (Badger returns an unreadable
// value as empty) surfaces as ErrCorrupt from the read, never as wrong bytes.
//
// The caller must Close the BadgerDB.
func OpenBadger(dir string, opts BadgerOptions) (*BadgerDB, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	bdb, err := openBadger(opts.badger(dir))
	if err != nil {
		return nil, classifyOpenError(dir, err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db := &BadgerDB{
		bdb:           bdb,
		dir:           dir,
		opts:          opts,
		logger:        logger.With("component", "log.BadgerDB", "dir", dir),
		maxTxnCount:   bdb.MaxBatchCount() * 9 / 10,
		maxTxnSize:    bdb.MaxBatchSize() * 9 / 10,
		reqs:          make(chan *commitReq, 1024),
		stop:          make(chan struct{}),
		committerDone: make(chan struct{}),
		logs:          make(map[string]*badgerLog),
	}
	if err := db.checkFormat(opts.Identity); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	go db.commitLoop()
	db.startCollector()
	return db, nil
}

// Dir returns the directory the database lives in.
func (db *BadgerDB) Dir() string { return db.dir }

// Durable reports whether Writes are fsynced before they return (true unless
// BadgerOptions.UnsafeNoSync is set).
func (db *BadgerDB) Durable() bool { return !db.opts.UnsafeNoSync }

// Stats returns counters of the database's work so far: Writes counts the
// Write and TruncateBelow calls of all its Logs that reached Badger, Syncs
// the fsync rounds (one per group commit; 0 with UnsafeNoSync), GCRuns the
// garbage collections that completed, automatic ones and CollectGarbage
// calls alike, and SyncLatency and SyncTime how long the fsync rounds took.
func (db *BadgerDB) Stats() Stats {
	st := Stats{Writes: db.writes.Load(), Syncs: db.syncs.Load(), GCRuns: db.gcRuns.Load(), SyncTime: time.Duration(db.syncNanos.Load())}
	for i := range st.SyncLatency {
		st.SyncLatency[i] = db.syncHist[i].Load()
	}
	return st
}

// acquire registers an operation that must finish before Close tears the
// database down; it reports false once the database is closed.
func (db *BadgerDB) acquire() bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return false
	}
	db.inflight.Add(1)
	return true
}

func (db *BadgerDB) release() { db.inflight.Done() }

// Log returns the Log stored under prefix. A prefix is 1 to 128 bytes, holds
// no 0x00 byte and does not start with "!badger". One prefix can be open only
// once at a time: Close the Log to open it again. Closing the Log does not
// close the database.
func (db *BadgerDB) Log(prefix string) (Log, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, err
	}
	l := &badgerLog{db: db, prefix: prefix, kp: keyPrefix(prefix)}
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil, ErrClosed
	}
	if _, ok := db.logs[prefix]; ok {
		db.mu.Unlock()
		return nil, fmt.Errorf("log: prefix %q is already open in badger database %q", prefix, db.dir)
	}
	db.logs[prefix] = l
	db.inflight.Add(1) // as in acquire
	db.mu.Unlock()
	defer db.release()
	ok := false
	defer func() {
		if !ok {
			db.forget(l)
		}
	}()

	first, err := db.readFirst(prefix)
	if err != nil {
		return nil, err
	}
	l.first.Store(first)
	// Delete what a crash may have left below the truncation point.
	n, err := l.deleteBelow(context.Background(), first)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		db.logger.Info("deleted records left below the truncation point", "prefix", prefix, "first", first, "records", n)
	}
	ok = true
	return l, nil
}

// forget unregisters l, so that its prefix may be opened again.
func (db *BadgerDB) forget(l *badgerLog) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.logs[l.prefix] == l {
		delete(db.logs, l.prefix)
	}
}

// Close closes every Log of the database, cancels an automatic garbage
// collection in progress (it stops once the value-log file it is rewriting,
// if any, is done), waits for the calls in progress and for the collector
// goroutine, and closes Badger. Further calls return ErrClosed.
func (db *BadgerDB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return ErrClosed
	}
	db.closed = true
	for _, l := range db.logs {
		l.closed.Store(true)
	}
	clear(db.logs)
	db.mu.Unlock()

	if db.gcCancel != nil {
		db.gcCancel()
	}
	db.inflight.Wait()
	if db.gcDone != nil {
		<-db.gcDone
	}
	close(db.stop)
	<-db.committerDone
	if err := db.bdb.Close(); err != nil {
		return fmt.Errorf("log: closing badger database %q: %w", db.dir, err)
	}
	return nil
}

// DiskSize returns the apparent sizes of Badger's files in the directory: the
// LSM tree (tables) and the value log. The value-log file being written is
// preallocated (sparsely) to twice BadgerOptions.ValueLogFileSize.
func (db *BadgerDB) DiskSize() (lsm, vlog int64, err error) {
	return dirSizes(db.dir)
}
