package log_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/synod-go/synod/log"
	"github.com/synod-go/synod/log/logtest"
)

// openDB opens a BadgerDB in dir that the test closes at the end (unless the
// test closed it itself).
func openDB(t testing.TB, dir string, opts log.BadgerOptions) *log.BadgerDB {
	t.Helper()
	db, err := log.OpenBadger(dir, opts)
	if err != nil {
		t.Fatalf("OpenBadger(%q): %v", dir, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func openLog(t testing.TB, db *log.BadgerDB, prefix string) log.Log {
	t.Helper()
	l, err := db.Log(prefix)
	if err != nil {
		t.Fatalf("Log(%q): %v", prefix, err)
	}
	return l
}

// ownedLog is a Log whose Close also closes its database, for the suites
// that reopen a directory.
type ownedLog struct {
	log.Log
	db *log.BadgerDB
}

func (o ownedLog) Close() error {
	err := o.Log.Close()
	if dbErr := o.db.Close(); err == nil && !errors.Is(dbErr, log.ErrClosed) {
		err = dbErr
	}
	return err
}

func (o ownedLog) Durable() bool    { return o.db.Durable() }
func (o ownedLog) Stats() log.Stats { return o.db.Stats() }

func openOwned(t testing.TB, dir string, opts log.BadgerOptions) log.Log {
	t.Helper()
	db := openDB(t, dir, opts)
	return ownedLog{Log: openLog(t, db, "accepted"), db: db}
}

func TestBadgerConformance(t *testing.T) {
	logtest.RunPersistent(t, func(t *testing.T, dir string) log.Log {
		return openOwned(t, dir, log.BadgerOptions{})
	})
}

// TestBadgerConformanceSharedDB runs the suite on a Log that shares its
// database with Logs whose prefixes are close to its own and which hold
// records at the same slots.
func TestBadgerConformanceSharedDB(t *testing.T) {
	logtest.Run(t, func(t *testing.T) log.Log {
		db := openDB(t, t.TempDir(), log.BadgerOptions{})
		ctx := context.Background()
		for _, p := range []string{"a", "acceptedX", "accepte", "accepted/", "b"} {
			n := openLog(t, db, p)
			var recs []log.Record
			for _, s := range []uint64{0, 1, 2, 3, 5, 7, 50, 99, 300, 1000, 1 << 40, ^uint64(0)} {
				recs = append(recs, log.Record{Slot: s, Value: []byte("noise from " + p)})
			}
			if err := n.Write(ctx, recs...); err != nil {
				t.Fatal(err)
			}
			if err := n.TruncateBelow(ctx, 1); err != nil {
				t.Fatal(err)
			}
		}
		return openLog(t, db, "accepted")
	})
}

func BenchmarkBadger(b *testing.B) {
	logtest.Bench(b, func(b *testing.B) log.Log { return openOwned(b, b.TempDir(), log.BadgerOptions{}) })
}

func BenchmarkBadgerUnsafeNoSync(b *testing.B) {
	logtest.Bench(b, func(b *testing.B) log.Log {
		return openOwned(b, b.TempDir(), log.BadgerOptions{UnsafeNoSync: true})
	})
}

func TestBadgerDurable(t *testing.T) {
	db := openDB(t, t.TempDir(), log.BadgerOptions{})
	if l := openLog(t, db, "p"); !log.IsDurable(l) {
		t.Error("IsDurable = false by default, want true")
	}
	unsafe := openDB(t, t.TempDir(), log.BadgerOptions{UnsafeNoSync: true})
	l := openLog(t, unsafe, "p")
	if log.IsDurable(l) {
		t.Error("IsDurable = true with UnsafeNoSync, want false")
	}
	if err := l.Write(context.Background(), log.Record{Slot: 1, Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if st := unsafe.Stats(); st.Writes != 1 || st.Syncs != 0 {
		t.Errorf("Stats with UnsafeNoSync = %+v, want 1 write, 0 syncs", st)
	}
}

func TestBadgerPrefixes(t *testing.T) {
	db := openDB(t, t.TempDir(), log.BadgerOptions{})
	for _, bad := range []string{"", "a\x00b", "\x00", "!badger!head", string(make([]byte, 129))} {
		if l, err := db.Log(bad); err == nil {
			_ = l.Close()
			t.Errorf("Log(%q) succeeded, want an error", bad)
		}
	}
	a := openLog(t, db, "a")
	if _, err := db.Log("a"); err == nil {
		t.Error("opening prefix \"a\" twice succeeded, want an error")
	}
	ab := openLog(t, db, "ab")
	ctx := context.Background()
	for s := range uint64(10) {
		if err := a.Write(ctx, log.Record{Slot: s, Value: []byte("a")}); err != nil {
			t.Fatal(err)
		}
		if err := ab.Write(ctx, log.Record{Slot: s + 5, Value: []byte("ab")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.TruncateBelow(ctx, 8); err != nil {
		t.Fatal(err)
	}
	count := func(l log.Log, want string) int {
		n := 0
		err := l.Range(ctx, 0, 0, func(r log.Record) error {
			if string(r.Value) != want {
				return fmt.Errorf("slot %d holds %q, want %q", r.Slot, r.Value, want)
			}
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(a, "a"); n != 2 {
		t.Errorf("prefix a holds %d records, want 2", n)
	}
	if n := count(ab, "ab"); n != 10 {
		t.Errorf("prefix ab holds %d records, want 10 (truncating a must not touch ab)", n)
	}
	if last, err := a.Last(ctx); err != nil || last.Slot != 9 {
		t.Errorf("a.Last() = %d, %v; want 9", last.Slot, err)
	}
	if first, _ := ab.First(ctx); first != 0 {
		t.Errorf("ab.First() = %d, want 0", first)
	}

	// A closed Log's prefix can be opened again, with its data.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a = openLog(t, db, "a")
	if n := count(a, "a"); n != 2 {
		t.Errorf("reopened prefix a holds %d records, want 2", n)
	}
	if first, _ := a.First(ctx); first != 8 {
		t.Errorf("reopened a.First() = %d, want 8", first)
	}
}

func TestBadgerClose(t *testing.T) {
	db := openDB(t, t.TempDir(), log.BadgerOptions{})
	l := openLog(t, db, "p")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := l.Write(ctx, log.Record{Slot: 1}); !errors.Is(err, log.ErrClosed) {
		t.Errorf("Write after BadgerDB.Close = %v, want ErrClosed", err)
	}
	if _, err := l.Get(ctx, 1); !errors.Is(err, log.ErrClosed) {
		t.Errorf("Get after BadgerDB.Close = %v, want ErrClosed", err)
	}
	if _, err := db.Log("q"); !errors.Is(err, log.ErrClosed) {
		t.Errorf("Log after BadgerDB.Close = %v, want ErrClosed", err)
	}
	if err := db.CollectGarbage(ctx); !errors.Is(err, log.ErrClosed) {
		t.Errorf("CollectGarbage after BadgerDB.Close = %v, want ErrClosed", err)
	}
	if err := db.Close(); !errors.Is(err, log.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
}

func TestBadgerCloseWhileWriting(t *testing.T) {
	db := openDB(t, t.TempDir(), log.BadgerOptions{})
	l := openLog(t, db, "p")
	ctx := context.Background()
	var wg sync.WaitGroup
	started := make(chan struct{})
	var once sync.Once
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				err := l.Write(ctx, log.Record{Slot: uint64(i*8 + w), Value: []byte("v")})
				once.Do(func() { close(started) })
				if errors.Is(err, log.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
		})
	}
	// Logs opened and closed while the database closes.
	wg.Go(func() {
		for i := 0; ; i++ {
			l, err := db.Log(fmt.Sprintf("opener-%d", i))
			if errors.Is(err, log.ErrClosed) {
				return
			}
			if err != nil {
				t.Errorf("Log: %v", err)
				return
			}
			if err := l.Close(); err != nil && !errors.Is(err, log.ErrClosed) {
				t.Errorf("Log.Close: %v", err)
				return
			}
		}
	})
	<-started
	if err := db.Close(); err != nil {
		t.Fatalf("Close while writing: %v", err)
	}
	wg.Wait()
}

func TestBadgerGroupCommit(t *testing.T) {
	db := openDB(t, t.TempDir(), log.BadgerOptions{})
	const (
		writers   = 64
		perWriter = 20
	)
	logs := []log.Log{openLog(t, db, "promise"), openLog(t, db, "accepted"), openLog(t, db, "recorded")}
	before := db.Stats()
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			l := logs[w%len(logs)]
			for i := range perWriter {
				s := uint64(i*writers + w)
				if err := l.Write(ctx, log.Record{Slot: s, Value: fmt.Appendf(nil, "%d", s)}); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := db.Stats()
	writes, syncs := st.Writes-before.Writes, st.Syncs-before.Syncs
	t.Logf("%d writes, %d syncs (%.1f writes per sync)", writes, syncs, float64(writes)/float64(max(syncs, 1)))
	if writes != writers*perWriter {
		t.Errorf("Stats counted %d writes, want %d", writes, writers*perWriter)
	}
	if syncs == 0 || syncs >= writes {
		t.Errorf("%d syncs for %d concurrent writes, want fewer syncs than writes (group commit)", syncs, writes)
	}
	for w := range writers {
		l := logs[w%len(logs)]
		for i := range perWriter {
			s := uint64(i*writers + w)
			v, err := l.Get(ctx, s)
			if err != nil || string(v) != fmt.Sprint(s) {
				t.Fatalf("Get(%d) = %q, %v", s, v, err)
			}
		}
	}
}

func TestBadgerTooLarge(t *testing.T) {
	db := openDB(t, t.TempDir(), log.BadgerOptions{MemTableSize: 1 << 20})
	l := openLog(t, db, "p")
	ctx := context.Background()
	// 1 MiB memtable: about 150 KiB per transaction.
	recs := make([]log.Record, 0, 100)
	for s := range uint64(100) {
		recs = append(recs, log.Record{Slot: s, Value: bytes.Repeat([]byte{'x'}, 2000)})
	}
	err := l.Write(ctx, recs...)
	if !errors.Is(err, log.ErrTooLarge) {
		t.Fatalf("Write of 200 KB of small values = %v, want ErrTooLarge", err)
	}
	if _, err := l.Last(ctx); !errors.Is(err, log.ErrNotFound) {
		t.Fatalf("after a failed Write, Last() = %v, want ErrNotFound (nothing written)", err)
	}
	// Large values go to the value log and do not count against the limit.
	for i := range recs {
		recs[i].Value = bytes.Repeat([]byte{'y'}, 8<<10)
	}
	if err := l.Write(ctx, recs...); err != nil {
		t.Fatalf("Write of 100 values of 8 KiB: %v", err)
	}
}

func TestBadgerLargeTruncate(t *testing.T) {
	db := openDB(t, t.TempDir(), log.BadgerOptions{MemTableSize: 1 << 20})
	l := openLog(t, db, "p")
	ctx := context.Background()
	const n = 12_000
	for start := uint64(0); start < n; start += 500 {
		recs := make([]log.Record, 0, 500)
		for s := start; s < start+500; s++ {
			recs = append(recs, log.Record{Slot: s, Value: []byte{byte(s)}})
		}
		if err := l.Write(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.TruncateBelow(ctx, n-10); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	err := l.Range(ctx, 0, 0, func(r log.Record) error { got = append(got, r.Slot); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 || got[0] != n-10 {
		t.Fatalf("after truncating %d records, Range visited %v", n-10, got)
	}
}

func TestBadgerOptionsValidate(t *testing.T) {
	for _, opts := range []log.BadgerOptions{
		{MemTableSize: 1000},
		{ValueLogFileSize: 1000},
		{ValueLogFileSize: 4 << 30},
		{ValueThreshold: 2 << 20},
		{MemTableSize: 1 << 20, ValueThreshold: 512 << 10},
		{NumMemtables: -1},
		{BlockCacheSize: -1},
	} {
		if db, err := log.OpenBadger(t.TempDir(), opts); err == nil {
			_ = db.Close()
			t.Errorf("OpenBadger with %+v succeeded, want an error", opts)
		}
	}
}

// TestBadgerMemoryPerDB opens several databases at once, as a cluster test
// does, and checks the heap each one costs.
func TestBadgerMemoryPerDB(t *testing.T) {
	const dbs = 5
	base := heapInUse()
	ctx := context.Background()
	for range dbs {
		db := openDB(t, t.TempDir(), log.BadgerOptions{})
		for _, p := range []string{"promise", "accepted", "recorded"} {
			l := openLog(t, db, p)
			for s := range uint64(200) {
				if err := l.Write(ctx, log.Record{Slot: s, Value: make([]byte, 128)}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	perDB := (int64(heapInUse()) - int64(base)) / dbs
	t.Logf("heap per open BadgerDB with defaults: %.1f MiB", float64(perDB)/(1<<20))
	if perDB > 30<<20 {
		t.Errorf("each open BadgerDB holds %.1f MiB of heap, want under 30 MiB", float64(perDB)/(1<<20))
	}
	runtime.KeepAlive(t)
}

// Lazy writes are readable when WriteLazy returns, keep their order with
// the Log's other writes and truncations, survive a clean reopen, and share
// fsync rounds instead of paying one each.
func TestBadgerWriteLazy(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir, log.BadgerOptions{})
	rec, acc := openLog(t, db, "recorded"), openLog(t, db, "accepted")
	if _, ok := rec.(log.LazyWriter); !ok {
		t.Fatal("a Badger log is not a log.LazyWriter")
	}
	ctx := context.Background()
	before := db.Stats()
	const lazyWriters, perWriter = 32, 10
	var wg sync.WaitGroup
	for w := range lazyWriters {
		wg.Go(func() {
			for i := range perWriter {
				s := uint64(i*lazyWriters + w)
				if err := log.WriteLazy(ctx, rec, log.Record{Slot: s, Value: fmt.Appendf(nil, "r%d", s)}); err != nil {
					t.Errorf("WriteLazy: %v", err)
					return
				}
				if v, err := rec.Get(ctx, s); err != nil || string(v) != fmt.Sprintf("r%d", s) {
					t.Errorf("Get(%d) right after WriteLazy = %q, %v", s, v, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for s := range uint64(20) {
			if err := acc.Write(ctx, log.Record{Slot: s, Value: []byte("a")}); err != nil {
				t.Errorf("Write: %v", err)
				return
			}
		}
	})
	wg.Wait()
	st := db.Stats()
	writes, syncs := st.Writes-before.Writes, st.Syncs-before.Syncs
	t.Logf("%d writes (%d lazy), %d fsync rounds", writes, lazyWriters*perWriter, syncs)
	if syncs >= writes/2 {
		t.Errorf("%d fsync rounds for %d writes, want lazy writes to share rounds", syncs, writes)
	}

	// Order: a truncation after a lazy write removes it.
	if err := log.WriteLazy(ctx, rec, log.Record{Slot: 1000, Value: []byte("gone")}); err != nil {
		t.Fatal(err)
	}
	if err := rec.TruncateBelow(ctx, 1001); err != nil {
		t.Fatal(err)
	}
	if err := log.WriteLazy(ctx, rec, log.Record{Slot: 1001, Value: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir, log.BadgerOptions{})
	rec = openLog(t, db, "recorded")
	if _, err := rec.Get(ctx, 1000); !errors.Is(err, log.ErrNotFound) {
		t.Errorf("Get(1000) after truncation and reopen: %v, want ErrNotFound", err)
	}
	if v, err := rec.Get(ctx, 1001); err != nil || string(v) != "kept" {
		t.Errorf("Get(1001) after reopen = %q, %v, want kept", v, err)
	}
}

// WriteLazy on a Log without it is a Write.
func TestWriteLazyFallback(t *testing.T) {
	m := log.NewMemory()
	if err := log.WriteLazy(context.Background(), m, log.Record{Slot: 3, Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if v, err := m.Get(context.Background(), 3); err != nil || string(v) != "x" {
		t.Fatalf("Get = %q, %v", v, err)
	}
}

// Every fsync round is timed into exactly one SyncLatency bucket.
func TestBadgerSyncLatency(t *testing.T) {
	db := openDB(t, t.TempDir(), log.BadgerOptions{})
	l := openLog(t, db, "accepted")
	ctx := context.Background()
	before := db.Stats()
	for s := range uint64(20) {
		if err := l.Write(ctx, log.Record{Slot: s, Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	st := db.Stats()
	var counted uint64
	for i := range st.SyncLatency {
		counted += st.SyncLatency[i] - before.SyncLatency[i]
	}
	if syncs := st.Syncs - before.Syncs; counted != syncs || syncs < 20 {
		t.Fatalf("%d fsync rounds, %d in the latency buckets; want the same, at least 20", syncs, counted)
	}
	if st.SyncTime <= before.SyncTime {
		t.Fatalf("SyncTime did not grow: %v -> %v", before.SyncTime, st.SyncTime)
	}
	for i := 1; i < log.SyncBuckets; i++ {
		if log.SyncBucket(i) <= log.SyncBucket(i-1) {
			t.Fatalf("SyncBucket(%d) = %v is not above SyncBucket(%d) = %v", i, log.SyncBucket(i), i-1, log.SyncBucket(i-1))
		}
	}
}
