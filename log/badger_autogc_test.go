package log_test

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/synod-go/synod/log"
)

// Tests of the automatic garbage collection (BadgerOptions.GCInterval).
//
// The collector re-arms its timer only after a check is done, so after
// Advance, the fake clock's BlockUntilContext(ctx, 1) returns once the
// check (and the collection it started, if any) has finished.

// waitLimit bounds every wait of these tests; none should come near it.
const waitLimit = 30 * time.Second

// gcCheck advances clock by d, firing the collector's timer, and waits for
// the check it starts to finish.
func gcCheck(t *testing.T, clock *clockwork.FakeClock, d time.Duration) {
	t.Helper()
	clock.Advance(d)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatalf("the collector did not finish its check within %v: %v", waitLimit, err)
	}
}

// writeLarge writes n values of size bytes at slots 0..n-1 and a small one
// at slot n, and returns the value-log size afterwards.
func writeLarge(t *testing.T, db *log.BadgerDB, l log.Log, n, size int) int64 {
	t.Helper()
	ctx := context.Background()
	val := make([]byte, size)
	for s := range uint64(n) {
		val[0] = byte(s)
		if err := l.Write(ctx, log.Record{Slot: s, Value: val}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Write(ctx, log.Record{Slot: uint64(n), Value: []byte("stays")}); err != nil {
		t.Fatal(err)
	}
	_, vlog, err := db.DiskSize()
	if err != nil {
		t.Fatal(err)
	}
	if vlog < int64(n*size) {
		t.Fatalf("value log holds %d MiB after writing %d MiB; the test measures the wrong thing", vlog>>20, n*size>>20)
	}
	return vlog
}

func vlogSize(t *testing.T, db *log.BadgerDB) int64 {
	t.Helper()
	_, vlog, err := db.DiskSize()
	if err != nil {
		t.Fatal(err)
	}
	return vlog
}

// TestBadgerAutoGC checks that the database collects garbage by itself,
// every GCInterval, exactly when a Log was truncated since the last
// collection.
func TestBadgerAutoGC(t *testing.T) {
	const (
		n    = 48
		size = 1 << 20
	)
	ctx := context.Background()
	clock := clockwork.NewFakeClock()
	db := openDB(t, t.TempDir(), log.BadgerOptions{ValueLogFileSize: 4 << 20, Clock: clock}) // default GCInterval
	l := openLog(t, db, "recorded")
	full := writeLarge(t, db, l, n, size)

	// Writes alone: checks find nothing to do.
	for range 3 {
		gcCheck(t, clock, log.DefaultGCInterval)
	}
	if runs := db.Stats().GCRuns; runs != 0 {
		t.Fatalf("Stats().GCRuns = %d after 3 intervals without a truncation, want 0", runs)
	}

	// A truncation: the next check collects.
	if err := l.TruncateBelow(ctx, n); err != nil {
		t.Fatal(err)
	}
	gcCheck(t, clock, log.DefaultGCInterval-1)
	if runs := db.Stats().GCRuns; runs != 0 {
		t.Fatalf("Stats().GCRuns = %d before GCInterval passed, want 0", runs)
	}
	gcCheck(t, clock, 1)
	if runs := db.Stats().GCRuns; runs != 1 {
		t.Fatalf("Stats().GCRuns = %d after a truncation and GCInterval, want 1", runs)
	}
	after := vlogSize(t, db)
	t.Logf("value log: %d MiB written, %d MiB after truncation and one GCInterval", full>>20, after>>20)
	// What may remain: the value-log file being written to (preallocated to
	// twice ValueLogFileSize) and one more.
	if after > 16<<20 {
		t.Errorf("value log still holds %d MiB after truncating all %d MiB and one GCInterval", after>>20, n)
	}
	if v, err := l.Get(ctx, n); err != nil || string(v) != "stays" {
		t.Fatalf("Get(%d) after the collection = %q, %v", n, v, err)
	}

	// Nothing truncated since: no collection.
	gcCheck(t, clock, log.DefaultGCInterval)
	if runs := db.Stats().GCRuns; runs != 1 {
		t.Fatalf("Stats().GCRuns = %d after an interval without a truncation, want still 1", runs)
	}

	// A CollectGarbage call after a truncation counts as the collection.
	if err := l.TruncateBelow(ctx, n+1); err != nil {
		t.Fatal(err)
	}
	if err := db.CollectGarbage(ctx); err != nil {
		t.Fatal(err)
	}
	gcCheck(t, clock, log.DefaultGCInterval)
	if runs := db.Stats().GCRuns; runs != 2 {
		t.Fatalf("Stats().GCRuns = %d after CollectGarbage and an interval, want 2 (no automatic run)", runs)
	}
}

// TestBadgerAutoGCOff checks that a negative GCInterval starts no collector.
func TestBadgerAutoGCOff(t *testing.T) {
	ctx := context.Background()
	clock := clockwork.NewFakeClock()
	db := openDB(t, t.TempDir(), log.BadgerOptions{GCInterval: -1, Clock: clock})
	l := openLog(t, db, "recorded")
	if err := l.Write(ctx, log.Record{Slot: 0, Value: make([]byte, 8<<10)}); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateBelow(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// Collectors of databases closed by earlier tests may still be exiting.
	waitFor(t, "no collector goroutine", func() bool { return collectors() == 0 })
	clock.Advance(24 * time.Hour)
	if runs := db.Stats().GCRuns; runs != 0 {
		t.Fatalf("Stats().GCRuns = %d with GCInterval < 0, want 0", runs)
	}
	if err := db.CollectGarbage(ctx); err != nil {
		t.Fatal(err)
	}
	if runs := db.Stats().GCRuns; runs != 1 {
		t.Fatalf("Stats().GCRuns = %d after CollectGarbage, want 1", runs)
	}
}

// TestBadgerCloseDuringAutoGC closes the database while the collector is
// between two value-log files: Close must cancel the collection, wait for
// the collector goroutine, and leave a database that opens and collects.
func TestBadgerCloseDuringAutoGC(t *testing.T) {
	const (
		n    = 32
		size = 256 << 10 // 8 MiB in 1 MiB files
	)
	ctx := context.Background()
	dir := t.TempDir()
	clock := clockwork.NewFakeClock()
	h := &pauseHandler{msg: "value-log file rewritten", paused: make(chan struct{})}
	db, err := log.OpenBadger(dir, log.BadgerOptions{
		ValueLogFileSize: 1 << 20,
		Clock:            clock,
		Logger:           slog.New(h),
	})
	if err != nil {
		t.Fatal(err)
	}
	l := openLog(t, db, "recorded")
	full := writeLarge(t, db, l, n, size)
	if err := l.TruncateBelow(ctx, n); err != nil {
		t.Fatal(err)
	}
	clock.Advance(log.DefaultGCInterval)
	select {
	case <-h.paused:
	case <-time.After(waitLimit):
		t.Fatalf("the collector rewrote no value-log file within %v (GCRuns %d)", waitLimit, db.Stats().GCRuns)
	}

	// The collector is now inside CollectGarbage, one file rewritten.
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("Close did not return within %v during a collection", waitLimit)
	}
	t.Logf("Close took %v during a collection", time.Since(start))
	if runs := db.Stats().GCRuns; runs != 0 {
		t.Errorf("Stats().GCRuns = %d: the collection completed instead of being cancelled", runs)
	}
	if !h.cancelled.Load() {
		t.Errorf("Close did not cancel the collection's context")
	}
	waitFor(t, "the collector goroutine to exit", func() bool { return collectors() == 0 })
	if err := db.CollectGarbage(ctx); !errors.Is(err, log.ErrClosed) {
		t.Errorf("CollectGarbage after Close = %v, want ErrClosed", err)
	}

	// The interrupted collection left a sound database behind.
	db = openDB(t, dir, log.BadgerOptions{ValueLogFileSize: 1 << 20, GCInterval: -1})
	l = openLog(t, db, "recorded")
	if v, err := l.Get(ctx, n); err != nil || string(v) != "stays" {
		t.Fatalf("Get(%d) after reopening = %q, %v", n, v, err)
	}
	if _, err := l.Get(ctx, n-1); !errors.Is(err, log.ErrNotFound) {
		t.Fatalf("Get(%d) after reopening = %v, want ErrNotFound", n-1, err)
	}
	if err := db.CollectGarbage(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("value log: %d MiB written, %d MiB after reopening and CollectGarbage", full>>20, vlogSize(t, db)>>20)
}

// pauseHandler is a slog.Handler that, the first time it handles a record
// with message msg, closes paused and blocks until that record's context
// ends (or waitLimit passes). Everything else it drops.
type pauseHandler struct {
	msg       string
	once      sync.Once
	paused    chan struct{}
	cancelled atomic.Bool // the record's context ended while paused
}

func (h *pauseHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *pauseHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message != h.msg {
		return nil
	}
	h.once.Do(func() {
		close(h.paused)
		select {
		case <-ctx.Done():
			h.cancelled.Store(true)
		case <-time.After(waitLimit):
		}
	})
	return nil
}

func (h *pauseHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *pauseHandler) WithGroup(string) slog.Handler      { return h }

// collectors counts the goroutines running a BadgerDB's collector loop.
func collectors() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return strings.Count(string(buf), "log.(*BadgerDB).gcLoop(")
}

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
		<-tick.C
	}
}
