package log

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/jonboulle/clockwork"
)

// Defaults of BadgerOptions. They keep one open database under about 20 MB
// of memory, so that a test can open a database for each of several nodes in
// one process. For production, raise MemTableSize (64 MiB is Badger's own
// default) and ValueLogFileSize (up to 1 GiB), and give BlockCacheSize a few
// hundred MiB if reads miss the OS page cache.
const (
	DefaultMemTableSize     = 4 << 20
	DefaultNumMemtables     = 2
	DefaultValueLogFileSize = 64 << 20
	DefaultValueThreshold   = 4 << 10
)

// DefaultGCInterval is the default of BadgerOptions.GCInterval: a node that
// truncates its Logs gets their disk space back within about a minute.
const DefaultGCInterval = time.Minute

// BadgerOptions configures OpenBadger. The zero value is valid: every zero
// field takes its documented default.
type BadgerOptions struct {
	// Identity, if not empty, names the owner of the database, e.g.
	// "cluster-x/node-3". It is stored at the first open that sets it; a
	// later open with a different non-empty Identity fails with
	// ErrIdentityMismatch, so a node cannot start on another node's data.
	// An open with an empty Identity does not check.
	Identity string

	// Logger receives the database's warnings and Badger's own log lines:
	// Badger's errors and warnings at slog.LevelError and slog.LevelWarn,
	// its (chatty) info lines at slog.LevelDebug and its debug lines at
	// slog.LevelDebug-4. Nil discards everything.
	Logger *slog.Logger

	// UnsafeNoSync turns off fsync: Write returns once the records are in
	// the operating system's page cache, and Durable reports false. A
	// process crash keeps acknowledged writes; a power loss or kernel crash
	// loses them, which breaks Paxos safety. For benchmarks only.
	UnsafeNoSync bool

	// MemTableSize is the size of Badger's in-memory table; each open
	// database allocates about 1.3 × MemTableSize per memtable. It also
	// bounds one Write: its records and the values below ValueThreshold
	// must fit in 15% of MemTableSize (see ErrTooLarge). Default
	// DefaultMemTableSize (4 MiB).
	MemTableSize int64

	// NumMemtables is how many memtables may be held in memory, the active
	// one included, while older ones are flushed to disk. Default
	// DefaultNumMemtables (2); at least 1.
	NumMemtables int

	// ValueLogFileSize is the size at which Badger starts a new value-log
	// file; CollectGarbage reclaims disk one whole file at a time. Between
	// 1 MiB and 2 GiB. Default DefaultValueLogFileSize (64 MiB).
	ValueLogFileSize int64

	// ValueThreshold: values of this many bytes or more are kept in the
	// value log (and reclaimed by CollectGarbage), smaller ones in the LSM
	// tree (reclaimed by compaction). At most 1 MiB and at most 15% of
	// MemTableSize. Default DefaultValueThreshold (4 KiB).
	ValueThreshold int64

	// BlockCacheSize is Badger's cache of table blocks, in bytes. Default 0:
	// tables are read through the OS page cache (data is not compressed).
	BlockCacheSize int64

	// GCInterval is how often the database checks whether any of its Logs
	// was truncated (TruncateBelow moved a truncation point, or Log deleted
	// records a crash left below one) since the last garbage collection,
	// and if so runs CollectGarbage. The interval counts from the end of
	// the previous check, so collections never run back to back; each one
	// costs at least a memtable flush. The check itself is free. Failed
	// collections are logged (Logger, slog.LevelError) and retried at the
	// next check. Default DefaultGCInterval (1 minute); negative turns the
	// automatic collection off, leaving CollectGarbage to the owner.
	GCInterval time.Duration

	// Clock drives GCInterval. Default: the real clock. Tests pass a
	// clockwork.FakeClock and advance it.
	Clock clockwork.Clock
}

// withDefaults returns o with zero fields set to their defaults, or an error
// naming the first invalid field.
func (o BadgerOptions) withDefaults() (BadgerOptions, error) {
	if o.MemTableSize == 0 {
		o.MemTableSize = DefaultMemTableSize
	}
	if o.NumMemtables == 0 {
		o.NumMemtables = DefaultNumMemtables
	}
	if o.ValueLogFileSize == 0 {
		o.ValueLogFileSize = DefaultValueLogFileSize
	}
	if o.ValueThreshold == 0 {
		o.ValueThreshold = DefaultValueThreshold
	}
	if o.GCInterval == 0 {
		o.GCInterval = DefaultGCInterval
	}
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	switch {
	case o.MemTableSize < 1<<20:
		return o, fmt.Errorf("log: BadgerOptions.MemTableSize %d is below 1 MiB", o.MemTableSize)
	case o.NumMemtables < 1:
		return o, fmt.Errorf("log: BadgerOptions.NumMemtables %d is below 1", o.NumMemtables)
	case o.ValueLogFileSize < 1<<20 || o.ValueLogFileSize >= 2<<30:
		return o, fmt.Errorf("log: BadgerOptions.ValueLogFileSize %d is not in [1 MiB, 2 GiB)", o.ValueLogFileSize)
	case o.ValueThreshold < 1 || o.ValueThreshold > 1<<20:
		return o, fmt.Errorf("log: BadgerOptions.ValueThreshold %d is not in [1, 1 MiB]", o.ValueThreshold)
	case o.ValueThreshold > o.MemTableSize*15/100:
		return o, fmt.Errorf("log: BadgerOptions.ValueThreshold %d is above 15%% of MemTableSize (%d)",
			o.ValueThreshold, o.MemTableSize*15/100)
	case o.BlockCacheSize < 0:
		return o, fmt.Errorf("log: BadgerOptions.BlockCacheSize %d is negative", o.BlockCacheSize)
	}
	return o, nil
}

// badger returns the Badger options for a database in dir.
func (o BadgerOptions) badger(dir string) badger.Options {
	var logger badger.Logger
	if o.Logger != nil {
		logger = slogAdapter{o.Logger}
	}
	return badger.DefaultOptions(dir).
		WithLogger(logger).
		WithSyncWrites(!o.UnsafeNoSync).
		WithMemTableSize(o.MemTableSize).
		WithNumMemtables(o.NumMemtables).
		WithValueLogFileSize(o.ValueLogFileSize).
		WithValueThreshold(o.ValueThreshold).
		WithBlockCacheSize(o.BlockCacheSize).
		WithIndexCacheSize(0).
		WithCompression(options.None).
		WithVerifyValueChecksum(true).
		WithChecksumVerificationMode(options.OnBlockRead).
		WithNumCompactors(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(12).
		WithNumGoroutines(2).
		WithMetricsEnabled(false).
		WithDetectConflicts(false).
		WithNumVersionsToKeep(1).
		WithExternalMagic(badgerMagic)
}

// slogAdapter sends Badger's log lines to a *slog.Logger.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) log(level slog.Level, format string, args ...any) {
	ctx := context.Background()
	if !a.l.Enabled(ctx, level) {
		return
	}
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	a.l.Log(ctx, level, msg, "component", "badger")
}

func (a slogAdapter) Errorf(format string, args ...any) { a.log(slog.LevelError, format, args...) }

func (a slogAdapter) Warningf(format string, args ...any) { a.log(slog.LevelWarn, format, args...) }

func (a slogAdapter) Infof(format string, args ...any) { a.log(slog.LevelDebug, format, args...) }

func (a slogAdapter) Debugf(format string, args ...any) { a.log(slog.LevelDebug-4, format, args...) }
