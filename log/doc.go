// Package log is where Synod keeps what must survive: an ordered map from
// slot to bytes, the Log, with three implementations that pass one
// conformance suite (package logtest).
//
// # What a Log is
//
// A Log stores at most one value per slot (a uint64). It offers batched
// writes (Write), point and range reads (Get, Range), the highest slot
// (Last), and truncation of everything below a slot (TruncateBelow, with
// First reporting the truncation point). The paxos roles each keep one Log:
// the acceptor its promise and its accepted entries, the observer the chosen
// values it recorded. Paxos calls TruncateBelow once every peer is Done with
// the slots below.
//
// Byte slices cross the interface by copy: a Log keeps no slice it was given
// and keeps no reference to a slice it hands out. All methods are safe for
// concurrent use, take a context first, and return ErrClosed after Close.
// Get and Last report a missing record with ErrNotFound.
//
// # The durability contract
//
// A Log is durable when it implements Durable and Durable reports true (see
// IsDurable). For a durable Log, Write and TruncateBelow return only once
// their change is on stable storage (fsynced), and a Write is atomic: after
// a crash either all of its records are there or none. Concurrent Writes may
// share one fsync (group commit), so many concurrent writers cost about as
// much as one. A Write that fails, or whose context ends while it waits, may
// or may not have been applied. A node must not answer a peer before the
// Write carrying that answer's state has returned.
//
// A non-durable Log forgets on restart; the paxos acceptor refuses to treat
// one as remembering its promises.
//
// # Which backend
//
//   - Memory (NewMemory): in memory, not durable. Tests, simulations, and
//     processes that may lose their state on restart (an observer that
//     replays from its peers). Truncation frees memory at once.
//   - FileDB (OpenFile): on disk, durable, a write-ahead log of checksummed
//     frames in preallocated segment files, one fdatasync per group commit,
//     with every live record also kept in memory. The fastest durable
//     backend (about 1.6× Badger's fsynced appends per second from one
//     writer, 1.4× from 64, see BenchmarkFile), for Logs that are truncated
//     regularly, as the paxos logs are: memory and disk hold what lies
//     between the truncation point and the head. One database holds several
//     Logs under different names, sharing its file and group commit.
//   - BadgerDB (OpenBadger): on disk, durable, built on Badger. For Logs
//     whose live records do not fit in memory. One database holds several
//     Logs under different prefixes, and all of them share its group
//     commit.
//
// # Opening one Log per prefix
//
// A node opens one BadgerDB per data directory and one Log per role:
//
//	db, err := log.OpenBadger(dir, log.BadgerOptions{Identity: "cluster-x/node-3"})
//	if err != nil {
//		return err // ErrLocked, ErrNotLog, ErrCorrupt, ErrIdentityMismatch, or an I/O error
//	}
//	defer db.Close()
//	promise, err := db.Log("promise")
//	...
//	accepted, err := db.Log("accepted")
//	...
//	recorded, err := db.Log("recorded")
//
// A prefix may be open once at a time. OpenBadger refuses, without writing
// anything, a directory that another open BadgerDB holds, that holds
// something else, or that cannot be read back, and checks the stored
// Identity. BadgerOptions documents the memory and disk knobs: the defaults
// keep a database near 5 MB of heap (about 7 MB resident), so that tests can
// run many nodes in one process; production nodes should raise MemTableSize
// and ValueLogFileSize.
//
// # The file log's crash recovery
//
// A FileDB's directory holds one live segment file (and, briefly, the next
// one being zeroed). A Write appends one frame, with a CRC-32C and a
// sequence number, and fdatasyncs; a full segment is replaced by a new one
// that starts with a snapshot of every Log, written and synced before it is
// renamed into place. OpenFile replays the segment. What follows its last
// intact frame must be zeros, or a write a crash cut short, which was never
// acknowledged: it is dropped (and logged). A damaged frame followed by an
// intact one is damage, not a torn write, and OpenFile fails with
// ErrCorrupt naming the file and the offset, changing nothing.
//
// # Disk space after truncation
//
// A FileDB frees memory at TruncateBelow and disk space when its segment
// is next replaced (every FileOptions.SegmentSize bytes written).
//
// For a BadgerDB, TruncateBelow deletes records at once; the disk space of large values
// (BadgerOptions.ValueThreshold and above) comes back when the value-log
// garbage collector runs. A BadgerDB runs it itself: every
// BadgerOptions.GCInterval (default one minute, measured on
// BadgerOptions.Clock) a goroutine of the database checks whether any of its
// Logs was truncated since the last collection and, if so, calls
// BadgerDB.CollectGarbage, logging failures through BadgerOptions.Logger and
// retrying at the next check. Close cancels a collection in progress and
// waits for the goroutine. Set GCInterval negative to turn this off and call
// CollectGarbage yourself; Stats().GCRuns counts the collections either way.
// Garbage a previous run of the process left uncollected waits for the next
// truncation (or a CollectGarbage call).
//
// # Closing is the caller's job
//
// Whoever opens a Log or a BadgerDB closes it. Closing a Log from a BadgerDB
// releases its prefix but leaves the database open; BadgerDB.Close closes the
// database and every Log still open on it. Nothing in this package closes
// anything behind its owner's back, and code that is handed a Log (a paxos
// Config, say) should not close it either.
//
// # Optional capabilities
//
// Found by type assertion, as the design asks for later additions:
//   - Durable: whether Writes are fsynced (IsDurable).
//   - StatsReporter: counters of writes, fsyncs and garbage collections
//     (Stats), used by the benchmarks to report fsyncs per second.
package log
