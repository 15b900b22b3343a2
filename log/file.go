package log

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
)

// DefaultSegmentSize is the default of FileOptions.SegmentSize.
const DefaultSegmentSize = 64 << 20

// MaxFileWrite bounds the encoded size of one Write (or WriteLazy) on a
// FileDB's Log: about the sum of its values' sizes plus a few bytes per
// record. A larger Write fails with ErrTooLarge and writes nothing.
const MaxFileWrite = 16 << 20

// maxGroupBytes bounds the requests the FileDB writes as one frame.
const maxGroupBytes = 32 << 20

// fileLazyDelay and fileLazyMax bound how long, and how many bytes of, lazy
// writes wait for a Write to share its fsync.
const (
	fileLazyDelay = 5 * time.Millisecond
	fileLazyMax   = 1 << 20
)

// FileOptions configures OpenFile. The zero value is valid: every zero field
// takes its documented default.
type FileOptions struct {
	// SegmentSize is the size of each segment file, preallocated (written
	// with zeros) in the background before it is needed. A segment that
	// fills up is replaced by a new one that starts with a snapshot of every
	// Log's live records; the old one is then deleted. A segment is made
	// larger than SegmentSize when twice the snapshot does not fit. Default
	// DefaultSegmentSize (64 MiB); at least 1 MiB.
	SegmentSize int64

	// Logger receives the database's warnings (a torn write repaired at
	// open, a failed write). Nil discards them.
	Logger *slog.Logger

	// Clock times the lazy writes' wait (see LazyWriter). Default: the
	// real clock.
	Clock clockwork.Clock
}

func (o FileOptions) withDefaults() (FileOptions, error) {
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.SegmentSize < 1<<20 || o.SegmentSize > 1<<40 {
		return o, fmt.Errorf("log: FileOptions.SegmentSize %d is not in [1 MiB, 1 TiB]", o.SegmentSize)
	}
	return o, nil
}

// FileDB is a write-ahead log on local files holding any number of Logs,
// each under its own name; all of them share one file and one group commit.
// Open it with OpenFile, get Logs with Log, and Close it when done.
//
// Every Log's records are kept in memory as well as on disk (reads never
// touch the disk), so a FileDB suits Logs whose owner truncates them
// regularly, as the paxos roles do once every peer is Done: memory and disk
// hold the records between the truncation point and the head. For Logs that
// keep gigabytes live, use a BadgerDB.
//
// A Write appends one checksummed frame to the current segment file and
// fdatasyncs it before it returns; Writes that arrive while one is being
// written share the next frame and fsync (group commit, run by the first
// waiting writer, without a goroutine hop). Segment files are preallocated,
// so an fdatasync flushes data only, not file metadata.
type FileDB struct {
	dir    string
	opts   FileOptions
	logger *slog.Logger
	lock   *os.File // held open for the directory lock; nil where locks are unsupported

	mu   sync.Mutex
	mems map[string]*Memory  // every Log's records, open or not
	open map[string]*fileLog // open handles by name
	// durableFirst is each Log's truncation point as of the frames synced
	// so far (mems may be ahead: changes are applied when queued).
	durableFirst map[string]uint64
	queue        []*fileReq      // encoded, applied to mems, not yet written
	lazy         int             // bytes of lazy requests in queue
	writing      bool            // a writer owns the file fields below
	idle         *sync.Cond      // signalled when writing goes false
	timer        clockwork.Timer // the lazy writes' deadline; nil if not armed
	timerGen     uint64          // identifies the armed timer to its callback
	closed       bool
	err          atomic.Pointer[error] // set once a write failed: the database is unusable

	// Owned by the writer (writing set), or by OpenFile and Close.
	seg     *os.File
	segNo   uint64
	segSize int64
	off     int64  // where the next frame goes
	seq     uint64 // sequence number of the last frame written
	buf     []byte // frame being built

	spare *spareFile // the next segment, being prepared or ready

	writes, syncs, syncNanos atomic.Uint64
	syncHist                 [SyncBuckets + 1]atomic.Uint64
}

var (
	_ StatsReporter = (*FileDB)(nil)
	_ LazyWriter    = (*fileLog)(nil)
	_ Durable       = (*fileLog)(nil)
)

// fileReq is one Write, WriteLazy or TruncateBelow, encoded.
type fileReq struct {
	ops      []byte
	lazy     bool
	name     string     // the Log
	truncate uint64     // a TruncateBelow's slot, or 0
	done     chan error // capacity 1; nil for lazy requests
}

// OpenFile opens, creating it if needed, the FileDB in dir. It replays the
// newest segment, repairing a torn write at its end (a frame that a crash
// cut short, which was never acknowledged: it is dropped, and the drop is
// logged). It reads the segment whole, so it needs about a segment's size
// of memory for a moment (the larger of SegmentSize and twice the live
// records). It fails with an error wrapping ErrLocked if another open
// database holds dir, ErrNotLog if dir holds other files, and ErrCorrupt if
// a segment cannot be read back (a bad frame followed by good ones is
// damage, not a torn write; the error names the file and offset).
func OpenFile(dir string, opts FileOptions) (*FileDB, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("log: file directory: %w", err)
	}
	db := &FileDB{
		dir:          dir,
		opts:         o,
		logger:       o.Logger.With("dir", dir),
		mems:         make(map[string]*Memory),
		open:         make(map[string]*fileLog),
		durableFirst: make(map[string]uint64),
	}
	db.idle = sync.NewCond(&db.mu)
	if db.lock, err = lockDir(dir); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			if db.seg != nil {
				db.seg.Close()
			}
			unlockDir(db.lock)
		}
	}()
	if err := db.recover(); err != nil {
		return nil, err
	}
	db.prepareSpare(o.SegmentSize)
	ok = true
	return db, nil
}

// Log returns the Log stored under name (1 to 255 bytes). One name can be
// open only once at a time: Close the Log to open it again. Closing the Log
// does not close the database, nor drop its records.
func (db *FileDB) Log(name string) (Log, error) {
	if name == "" || len(name) > 255 {
		return nil, fmt.Errorf("log: file log name of %d bytes, want 1 to 255", len(name))
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil, ErrClosed
	}
	if _, ok := db.open[name]; ok {
		return nil, fmt.Errorf("log: %q is already open in file database %q", name, db.dir)
	}
	m := db.mems[name]
	if m == nil {
		m = NewMemory()
		db.mems[name] = m
	}
	l := &fileLog{db: db, name: name, mem: m}
	db.open[name] = l
	return l, nil
}

// Stats implements StatsReporter for the whole database.
func (db *FileDB) Stats() Stats {
	st := Stats{Writes: db.writes.Load(), Syncs: db.syncs.Load(), SyncTime: time.Duration(db.syncNanos.Load())}
	for i := range st.SyncLatency {
		st.SyncLatency[i] = db.syncHist[i].Load()
	}
	return st
}

// Close writes what lazy writes left queued, closes every Log of the
// database, waits for the write in progress, and releases the directory.
// Further calls return ErrClosed.
func (db *FileDB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return ErrClosed
	}
	db.closed = true
	for _, l := range db.open {
		l.closed.Store(true)
	}
	clear(db.open)
	if db.timer != nil {
		db.timer.Stop()
		db.timer = nil
	}
	for db.writing {
		db.idle.Wait()
	}
	var err error
	if len(db.queue) > 0 && db.failed() == nil {
		db.writing = true
		db.mu.Unlock()
		db.lead(nil)
		db.mu.Lock()
		if e := db.failed(); e != nil {
			err = e
		}
	}
	db.mu.Unlock()
	if db.spare != nil {
		if e := db.spare.discard(); e != nil {
			db.logger.Warn("log: removing the spare segment", "err", e)
		}
	}
	if e := db.seg.Close(); e != nil && err == nil {
		err = e
	}
	unlockDir(db.lock)
	return err
}

// failed returns the error that made the database unusable, or nil.
func (db *FileDB) failed() error {
	if p := db.err.Load(); p != nil {
		return *p
	}
	return nil
}

// submit applies r's change to the in-memory state and queues r for the
// disk, in one step under db.mu, so memory and disk see every change in the
// same order. A lazy request returns at once; any other returns once its
// frame is fsynced (or fails, or ctx ends).
func (db *FileDB) submit(ctx context.Context, l *fileLog, r *fileReq, apply func(m *Memory)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(r.ops) > MaxFileWrite {
		return fmt.Errorf("%w: %d bytes encoded, limit %d (MaxFileWrite)", ErrTooLarge, len(r.ops), MaxFileWrite)
	}
	db.mu.Lock()
	if db.closed || l.closed.Load() {
		db.mu.Unlock()
		return ErrClosed
	}
	if err := db.failed(); err != nil {
		db.mu.Unlock()
		return err
	}
	apply(l.mem)
	if !r.lazy {
		r.done = make(chan error, 1)
	}
	db.queue = append(db.queue, r)
	if r.lazy {
		db.lazy += len(r.ops)
		switch {
		case db.writing:
			// The writer takes it with its next frame.
		case db.lazy >= fileLazyMax:
			db.writing = true
			go db.lead(nil)
		case db.timer == nil:
			db.armLazyLocked()
		}
		db.mu.Unlock()
		return nil
	}
	if db.writing {
		db.mu.Unlock()
		select {
		case err := <-r.done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	db.writing = true
	db.mu.Unlock()
	db.lead(r)
	return <-r.done
}

// armLazyLocked starts the lazy writes' deadline. The caller holds db.mu.
func (db *FileDB) armLazyLocked() {
	db.timerGen++
	gen := db.timerGen
	db.timer = db.opts.Clock.AfterFunc(fileLazyDelay, func() { db.flushLazy(gen) })
}

// flushLazy writes lazy requests whose wait is over; gen is the timer's.
func (db *FileDB) flushLazy(gen uint64) {
	db.mu.Lock()
	if db.timerGen == gen {
		db.timer = nil // not a newer timer armed after this one fired
	}
	if db.writing || db.closed || len(db.queue) == 0 {
		db.mu.Unlock()
		return
	}
	db.writing = true
	db.mu.Unlock()
	db.lead(nil)
}

// lead is run by the writer (the caller set db.writing): it writes the
// queue, one frame per turn. With own set it returns once own is answered,
// handing what is still queued to a goroutine of its own; with own nil it
// writes until the queue is empty (or holds only lazy requests that may
// wait). It clears db.writing when it stops.
func (db *FileDB) lead(own *fileReq) {
	for {
		db.mu.Lock()
		if db.timer != nil {
			db.timer.Stop()
			db.timer = nil
		}
		n, size := 0, 0
		for n < len(db.queue) && (n == 0 || size+len(db.queue[n].ops) <= maxGroupBytes) {
			size += len(db.queue[n].ops)
			n++
		}
		group := slices.Clone(db.queue[:n])
		clear(db.queue[:n])
		db.queue = db.queue[n:]
		if len(db.queue) == 0 {
			db.queue = nil
		}
		db.lazy = 0
		for _, r := range db.queue {
			if r.lazy {
				db.lazy += len(r.ops)
			}
		}
		db.mu.Unlock()

		err := db.failed()
		if err == nil && len(group) > 0 {
			var rolled []*fileReq
			rolled, err = db.writeGroup(group)
			group = append(group, rolled...)
			if err != nil {
				err = fmt.Errorf("log: file write in %q: %w", db.dir, err)
				db.logger.Error("log: write failed; the database refuses every further call", "err", err)
				db.err.CompareAndSwap(nil, &err)
				err = db.failed()
			}
		}
		if err == nil {
			db.mu.Lock()
			for _, r := range group {
				if r.truncate > db.durableFirst[r.name] {
					db.durableFirst[r.name] = r.truncate
				}
			}
			db.mu.Unlock()
		}
		answered := own == nil
		for _, r := range group {
			if r.done != nil {
				r.done <- err
			}
			answered = answered || r == own
			if err == nil && !r.lazy {
				db.writes.Add(1)
			}
		}

		db.mu.Lock()
		if len(db.queue) == 0 || db.failed() != nil {
			for _, r := range db.queue {
				if r.done != nil {
					r.done <- db.failed()
				}
			}
			db.queue, db.lazy = nil, 0
			db.writing = false
			db.idle.Broadcast()
			db.mu.Unlock()
			return
		}
		onlyLazy := true
		for _, r := range db.queue {
			onlyLazy = onlyLazy && r.lazy
		}
		if onlyLazy && db.lazy < fileLazyMax && !db.closed {
			// Lazy requests wait for a Write to join, or for their delay.
			db.writing = false
			db.idle.Broadcast()
			if db.timer == nil {
				db.armLazyLocked()
			}
			db.mu.Unlock()
			return
		}
		db.mu.Unlock()
		if own == nil || !answered {
			continue
		}
		// Our caller's Write is done: a goroutine of our own writes the
		// rest (it inherits db.writing), so that the caller returns now.
		go db.lead(nil)
		return
	}
}

// writeGroup writes the requests as one frame and fdatasyncs it. If the
// frame does not fit in this segment, it starts a new one instead, whose
// snapshot holds the group and every request still queued: those are taken
// off the queue and returned, durable with the group.
func (db *FileDB) writeGroup(group []*fileReq) (rolled []*fileReq, err error) {
	start := time.Now()
	size := 0
	for _, r := range group {
		size += len(r.ops)
	}
	if db.off+int64(frameHeaderLen+size) > db.segSize {
		if rolled, err = db.roll(); err != nil {
			return rolled, err
		}
	} else {
		db.buf = db.buf[:0]
		db.buf = appendFrameHeader(db.buf, db.seq+1, size)
		for _, r := range group {
			db.buf = append(db.buf, r.ops...)
		}
		sealFrame(db.buf)
		if _, err := db.seg.WriteAt(db.buf, db.off); err != nil {
			return nil, err
		}
		if err := fdatasync(db.seg); err != nil {
			return nil, err
		}
		db.seq++
		db.off += int64(len(db.buf))
		if cap(db.buf) > 4<<20 {
			db.buf = nil
		}
	}
	d := time.Since(start)
	db.syncs.Add(1)
	db.syncNanos.Add(uint64(d))
	db.syncHist[syncBucketOf(d)].Add(1)
	return rolled, nil
}

// segmentName is the file name of segment n.
func segmentName(n uint64) string { return fmt.Sprintf("%016x.wal", n) }

// roll replaces the current segment with a new one that starts with a
// snapshot of every Log as of now. Requests are applied to memory when they
// are queued, so the snapshot holds every queued request too: roll takes
// them all off the queue and returns them, to be answered with the group
// that did not fit. (Writing them again after the snapshot would be wrong:
// a crash that kept only some of those frames would replay a mix of
// snapshot and older values, tearing a later Write.)
//
// The new segment is written, fdatasynced, renamed into place and the
// directory fsynced before the old one is deleted, so a crash at any point
// leaves either the old segment or the new one as the newest complete one.
func (db *FileDB) roll() (taken []*fileReq, err error) {
	db.mu.Lock()
	chunks := db.snapshotLocked()
	taken = db.queue
	db.queue, db.lazy = nil, 0
	db.mu.Unlock()

	snapLen := 0
	for _, c := range chunks {
		snapLen += frameHeaderLen + len(c)
	}
	need := 2*int64(snapLen) + int64(frameHeaderLen+segmentHeaderLen)
	size := max(db.opts.SegmentSize, need)
	size = (size + 1<<20 - 1) &^ (1<<20 - 1)
	f, err := db.takeSpare(size)
	if err != nil {
		return taken, err
	}
	no := db.segNo + 1
	seq := db.seq + 1
	snapEnd := seq + uint64(len(chunks)) // the sequence number of the last snapshot frame
	buf := appendFrameHeader(nil, seq, segmentHeaderLen)
	buf = appendSegmentHeader(buf, no, snapEnd)
	sealFrame(buf)
	for _, c := range chunks {
		seq++
		start := len(buf)
		buf = appendFrameHeader(buf, seq, len(c))
		buf = append(buf, c...)
		sealFrame(buf[start:])
	}
	tmp := f.Name()
	fail := func(err error) ([]*fileReq, error) {
		f.Close()
		os.Remove(tmp)
		return taken, err
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		return fail(err)
	}
	if err := fdatasync(f); err != nil {
		return fail(err)
	}
	path := filepath.Join(db.dir, segmentName(no))
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if err := syncDir(db.dir); err != nil {
		f.Close()
		return taken, err
	}
	old := db.seg
	oldPath := filepath.Join(db.dir, segmentName(db.segNo))
	db.seg, db.segNo, db.segSize, db.off, db.seq = f, no, size, int64(len(buf)), seq
	old.Close()
	if err := os.Remove(oldPath); err != nil {
		db.logger.Warn("log: removing an old segment", "file", oldPath, "err", err)
	}
	db.prepareSpare(db.opts.SegmentSize)
	return taken, nil
}

// snapshotLocked encodes every Log's truncation point and live records, in
// frame bodies of at most snapshotChunk bytes (more for a single larger
// record), each starting with the Log it is about. The caller holds db.mu
// (no request is being applied).
func (db *FileDB) snapshotLocked() [][]byte {
	names := make([]string, 0, len(db.mems))
	for name := range db.mems {
		names = append(names, name)
	}
	slices.Sort(names)
	var chunks [][]byte
	for _, name := range names {
		m := db.mems[name]
		m.mu.RLock()
		c := appendOpLog(nil, name)
		if m.first > 0 {
			c = appendOpTruncate(c, m.first)
		}
		for _, r := range m.live() {
			if len(c)+len(r.Value)+2*binaryMaxVarint > snapshotChunk {
				chunks = append(chunks, c)
				c = appendOpLog(nil, name)
			}
			c = appendOpSet(c, r.Slot, r.Value)
		}
		m.mu.RUnlock()
		chunks = append(chunks, c)
	}
	return chunks
}

// fileLog is one named Log of a FileDB.
type fileLog struct {
	db     *FileDB
	name   string
	mem    *Memory
	closed atomic.Bool
}

// Durable reports true: a returned Write is fdatasynced.
func (l *fileLog) Durable() bool { return true }

// check reports why l cannot be used: ctx's error first (as the Log
// contract asks), then ErrClosed, then a failed write.
func (l *fileLog) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.closed.Load() {
		return ErrClosed
	}
	return l.db.failed()
}

// Write implements Log.Write.
func (l *fileLog) Write(ctx context.Context, recs ...Record) error {
	return l.write(ctx, false, recs)
}

// WriteLazy implements LazyWriter: the records are readable at once and
// written with the next Write of the database, or within a few
// milliseconds.
func (l *fileLog) WriteLazy(ctx context.Context, recs ...Record) error {
	return l.write(ctx, true, recs)
}

func (l *fileLog) write(ctx context.Context, lazy bool, recs []Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(recs) == 0 {
		return l.check(ctx)
	}
	ops := appendOpLog(nil, l.name)
	for _, r := range recs {
		ops = appendOpSet(ops, r.Slot, r.Value)
	}
	return l.db.submit(ctx, l, &fileReq{ops: ops, lazy: lazy, name: l.name}, func(m *Memory) {
		_ = m.Write(context.Background(), recs...)
	})
}

// TruncateBelow implements Log.TruncateBelow. Memory is released at once;
// disk space when the segment is next replaced.
func (l *fileLog) TruncateBelow(ctx context.Context, slot uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := l.check(ctx); err != nil {
		return err
	}
	l.db.mu.Lock()
	durable := slot <= l.db.durableFirst[l.name]
	l.db.mu.Unlock()
	if durable {
		return nil
	}
	// Submitted even if memory's truncation point is already at slot: the
	// request that moved it may not be synced yet, and this one's sync
	// covers it.
	ops := appendOpTruncate(appendOpLog(nil, l.name), slot)
	return l.db.submit(ctx, l, &fileReq{ops: ops, name: l.name, truncate: slot}, func(m *Memory) {
		_ = m.TruncateBelow(context.Background(), slot)
	})
}

// Get implements Log.Get.
func (l *fileLog) Get(ctx context.Context, slot uint64) ([]byte, error) {
	if err := l.check(ctx); err != nil {
		return nil, err
	}
	return l.mem.Get(ctx, slot)
}

// Range implements Log.Range.
func (l *fileLog) Range(ctx context.Context, from, to uint64, fn func(Record) error) error {
	if err := l.check(ctx); err != nil {
		return err
	}
	return l.mem.Range(ctx, from, to, fn)
}

// Last implements Log.Last.
func (l *fileLog) Last(ctx context.Context) (Record, error) {
	if err := l.check(ctx); err != nil {
		return Record{}, err
	}
	return l.mem.Last(ctx)
}

// First implements Log.First.
func (l *fileLog) First(ctx context.Context) (uint64, error) {
	if err := l.check(ctx); err != nil {
		return 0, err
	}
	return l.mem.First(ctx)
}

// Close implements Log.Close. The records stay in the database.
func (l *fileLog) Close() error {
	db := l.db
	db.mu.Lock()
	defer db.mu.Unlock()
	if l.closed.Swap(true) {
		return ErrClosed
	}
	if db.open[l.name] == l {
		delete(db.open, l.name)
	}
	return nil
}
