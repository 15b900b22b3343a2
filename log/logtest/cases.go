package logtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/synod-go/synod/log"
)

// The cases of the conformance suite, in the order Run runs them.

func testEmpty(t *testing.T, l log.Log) {
	checkFirst(t, l, 0)
	checkNoLast(t, l)
	checkNotFound(t, l, 0)
	checkNotFound(t, l, 7)
	checkNotFound(t, l, math.MaxUint64)
	checkSlots(t, l, 0, 0)
	if err := l.Write(context.Background()); err != nil {
		t.Fatalf("Write() of no records: %v", err)
	}
	checkNoLast(t, l)
}

func testWriteGet(t *testing.T, l log.Log) {
	mustWrite(t, l, log.Record{Slot: 1, Value: []byte("one")})
	mustWrite(t, l, log.Record{Slot: 2, Value: []byte("two")})
	checkGet(t, l, 1, []byte("one"))
	checkGet(t, l, 2, []byte("two"))
	checkNotFound(t, l, 0)
	checkNotFound(t, l, 3)

	// Empty and nil values are stored as present, empty records.
	mustWrite(t, l, log.Record{Slot: 5, Value: nil}, log.Record{Slot: 6, Value: []byte{}})
	checkGet(t, l, 5, nil)
	checkGet(t, l, 6, nil)
	checkSlots(t, l, 0, 0, 1, 2, 5, 6)

	// A large value round-trips.
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	mustWrite(t, l, log.Record{Slot: 9, Value: big})
	checkGet(t, l, 9, big)
}

func testOverwrite(t *testing.T, l log.Log) {
	mustWrite(t, l, log.Record{Slot: 3, Value: []byte("a")})
	mustWrite(t, l, log.Record{Slot: 3, Value: []byte("b")})
	checkGet(t, l, 3, []byte("b"))
	mustWrite(t, l, log.Record{Slot: 3, Value: []byte("a longer value than before")})
	checkGet(t, l, 3, []byte("a longer value than before"))
	mustWrite(t, l, log.Record{Slot: 3, Value: []byte("c")})
	checkGet(t, l, 3, []byte("c"))
	checkSlots(t, l, 0, 0, 3)
	checkLast(t, l, log.Record{Slot: 3, Value: []byte("c")})
}

func testBatch(t *testing.T, l log.Log) {
	const n = 200
	recs := make([]log.Record, 0, n)
	for i := range uint64(n) {
		recs = append(recs, log.Record{Slot: 1000 - 3*i, Value: value(i, 0)}) // descending on purpose
	}
	mustWrite(t, l, recs...)
	for i := range uint64(n) {
		checkGet(t, l, 1000-3*i, value(i, 0))
	}
	if got := collect(t, l, 0, 0); len(got) != n {
		t.Fatalf("Range visited %d records, want %d", len(got), n)
	}

	// Within one Write, the later record for a slot wins.
	mustWrite(t, l,
		log.Record{Slot: 2000, Value: []byte("first")},
		log.Record{Slot: 2001, Value: []byte("x")},
		log.Record{Slot: 2000, Value: []byte("second")},
	)
	checkGet(t, l, 2000, []byte("second"))
	checkGet(t, l, 2001, []byte("x"))

	// A batch replaces some records and adds others in one call.
	mustWrite(t, l,
		log.Record{Slot: 1000, Value: []byte("replaced")},
		log.Record{Slot: 1001, Value: []byte("new")},
	)
	checkGet(t, l, 1000, []byte("replaced"))
	checkGet(t, l, 1001, []byte("new"))
}

func testRange(t *testing.T, l log.Log) {
	var recs []log.Record
	for s := range uint64(10) {
		recs = append(recs, log.Record{Slot: s, Value: value(s, 0)})
	}
	recs = append(recs, log.Record{Slot: 20, Value: value(20, 0)}, log.Record{Slot: 300, Value: value(300, 0)})
	mustWrite(t, l, recs...)

	all := collect(t, l, 0, 0)
	if len(all) != len(recs) {
		t.Fatalf("Range(0, 0) visited %d records, want %d", len(all), len(recs))
	}
	for _, r := range all {
		if !bytes.Equal(r.Value, value(r.Slot, 0)) {
			t.Fatalf("Range visited slot %d with %q, want %q", r.Slot, r.Value, value(r.Slot, 0))
		}
	}
	checkSlots(t, l, 3, 7, 3, 4, 5, 6)
	checkSlots(t, l, 8, 0, 8, 9, 20, 300)
	checkSlots(t, l, 9, 21, 9, 20)
	checkSlots(t, l, 10, 20)
	checkSlots(t, l, 20, 21, 20)
	checkSlots(t, l, 21, 300)
	checkSlots(t, l, 21, 301, 300)
	checkSlots(t, l, 301, 0)
	checkSlots(t, l, 5, 5)
	checkSlots(t, l, 7, 3) // from > to: nothing
	checkSlots(t, l, 0, 1, 0)
	checkSlots(t, l, math.MaxUint64, 0)

	// Many records, more than any internal chunk size.
	recs = recs[:0]
	for s := uint64(1000); s < 1500; s++ {
		recs = append(recs, log.Record{Slot: s, Value: value(s, 1)})
	}
	mustWrite(t, l, recs...)
	got := collect(t, l, 1000, 0)
	if len(got) != 500 || got[0].Slot != 1000 || got[499].Slot != 1499 {
		t.Fatalf("Range(1000, 0) visited %d records (%v...), want 1000..1499", len(got), slots(got[:min(len(got), 5)]))
	}
	if got := collect(t, l, 1100, 1400); len(got) != 300 {
		t.Fatalf("Range(1100, 1400) visited %d records, want 300", len(got))
	}
}

func testRangeStop(t *testing.T, l log.Log) {
	for s := range uint64(300) {
		mustWrite(t, l, log.Record{Slot: s, Value: value(s, 0)})
	}
	stop := errors.New("stop here")
	var visited []uint64
	err := l.Range(context.Background(), 10, 0, func(r log.Record) error {
		visited = append(visited, r.Slot)
		if r.Slot == 100 {
			return fmt.Errorf("wrapped: %w", stop)
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Range returned %v, want the error fn returned", err)
	}
	if len(visited) != 91 || visited[len(visited)-1] != 100 {
		t.Fatalf("Range visited %d records ending at %d, want 91 ending at 100", len(visited), visited[len(visited)-1])
	}
	// Stopping at the very first record.
	visited = visited[:0]
	err = l.Range(context.Background(), 0, 0, func(r log.Record) error {
		visited = append(visited, r.Slot)
		return stop
	})
	if !errors.Is(err, stop) || len(visited) != 1 {
		t.Fatalf("Range = %v after %d calls, want stop after 1", err, len(visited))
	}
}

func testLast(t *testing.T, l log.Log) {
	mustWrite(t, l, log.Record{Slot: 5, Value: []byte("five")})
	checkLast(t, l, log.Record{Slot: 5, Value: []byte("five")})
	mustWrite(t, l, log.Record{Slot: 2, Value: []byte("two")})
	checkLast(t, l, log.Record{Slot: 5, Value: []byte("five")})
	mustWrite(t, l, log.Record{Slot: 9, Value: []byte("nine")}, log.Record{Slot: 7, Value: []byte("seven")})
	checkLast(t, l, log.Record{Slot: 9, Value: []byte("nine")})
	mustWrite(t, l, log.Record{Slot: 9, Value: []byte("NINE")})
	checkLast(t, l, log.Record{Slot: 9, Value: []byte("NINE")})
	mustTruncate(t, l, 6)
	checkLast(t, l, log.Record{Slot: 9, Value: []byte("NINE")})
}

func testExtremeSlots(t *testing.T, l log.Log) {
	const top = math.MaxUint64
	mustWrite(t, l,
		log.Record{Slot: 0, Value: []byte("zero")},
		log.Record{Slot: top, Value: []byte("top")},
		log.Record{Slot: top - 1, Value: []byte("top-1")},
		log.Record{Slot: 1 << 32, Value: []byte("2^32")},
		log.Record{Slot: 255, Value: []byte("255")},
		log.Record{Slot: 256, Value: []byte("256")},
	)
	checkGet(t, l, top, []byte("top"))
	checkGet(t, l, 0, []byte("zero"))
	checkLast(t, l, log.Record{Slot: top, Value: []byte("top")})
	checkSlots(t, l, 0, 0, 0, 255, 256, 1<<32, top-1, top)
	checkSlots(t, l, 1, top, 255, 256, 1<<32, top-1)
	checkSlots(t, l, top, 0, top)
	mustTruncate(t, l, top)
	checkFirst(t, l, top)
	checkNotFound(t, l, top-1)
	checkSlots(t, l, 0, 0, top)
	checkLast(t, l, log.Record{Slot: top, Value: []byte("top")})
}

func testTruncateBelow(t *testing.T, l log.Log) {
	var recs []log.Record
	for s := range uint64(100) {
		recs = append(recs, log.Record{Slot: s, Value: value(s, 0)})
	}
	mustWrite(t, l, recs...)
	mustTruncate(t, l, 50)
	checkFirst(t, l, 50)
	checkNotFound(t, l, 0)
	checkNotFound(t, l, 49)
	checkGet(t, l, 50, value(50, 0))
	checkGet(t, l, 99, value(99, 0))
	if got := collect(t, l, 0, 0); len(got) != 50 || got[0].Slot != 50 {
		t.Fatalf("after TruncateBelow(50), Range visited %d records from %v, want 50 from 50", len(got), slots(got[:min(1, len(got))]))
	}
	checkSlots(t, l, 10, 52, 50, 51)

	// The truncation point only moves up.
	mustTruncate(t, l, 10)
	checkFirst(t, l, 50)
	mustTruncate(t, l, 50)
	checkFirst(t, l, 50)

	// Writes below the truncation point are ignored, alone or in a batch.
	mustWrite(t, l, log.Record{Slot: 30, Value: []byte("too late")})
	checkNotFound(t, l, 30)
	mustWrite(t, l, log.Record{Slot: 49, Value: []byte("too late")}, log.Record{Slot: 150, Value: []byte("fine")})
	checkNotFound(t, l, 49)
	checkGet(t, l, 150, []byte("fine"))
	checkSlots(t, l, 0, 50)

	// Truncating at a slot that holds no record.
	mustTruncate(t, l, 120)
	checkFirst(t, l, 120)
	checkSlots(t, l, 0, 0, 150)
	checkLast(t, l, log.Record{Slot: 150, Value: []byte("fine")})
}

func testTruncateAll(t *testing.T, l log.Log) {
	for s := uint64(1); s <= 64; s++ {
		mustWrite(t, l, log.Record{Slot: s, Value: value(s, 0)})
	}
	mustTruncate(t, l, 1000)
	checkFirst(t, l, 1000)
	checkNoLast(t, l)
	checkSlots(t, l, 0, 0)
	checkNotFound(t, l, 64)
	mustWrite(t, l, log.Record{Slot: 999, Value: []byte("no")}, log.Record{Slot: 1000, Value: []byte("yes")})
	checkSlots(t, l, 0, 0, 1000)
	checkLast(t, l, log.Record{Slot: 1000, Value: []byte("yes")})
	// Truncating an empty log moves the point too.
	mustTruncate(t, l, 2000)
	checkNoLast(t, l)
	checkFirst(t, l, 2000)
}

func testNoRetain(t *testing.T, l log.Log) {
	buf := []byte("original")
	mustWrite(t, l, log.Record{Slot: 1, Value: buf})
	copy(buf, "XXXXXXXX")
	checkGet(t, l, 1, []byte("original"))

	got, err := l.Get(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	copy(got, "YYYYYYYY")
	checkGet(t, l, 1, []byte("original"))

	last, err := l.Last(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	copy(last.Value, "ZZZZZZZZ")
	checkGet(t, l, 1, []byte("original"))

	var kept [][]byte
	err = l.Range(context.Background(), 0, 0, func(r log.Record) error {
		kept = append(kept, r.Value)
		copy(r.Value, "WWWWWWWW")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkGet(t, l, 1, []byte("original"))

	// A value kept from an earlier read is not changed by later writes.
	mustWrite(t, l, log.Record{Slot: 1, Value: []byte("replaced")})
	if string(kept[0]) != "WWWWWWWW" {
		t.Fatalf("value kept from Range changed to %q after a Write", kept[0])
	}
	if string(got) != "YYYYYYYY" {
		t.Fatalf("value kept from Get changed to %q after a Write", got)
	}

	// Reusing one buffer across the records of a batch.
	var recs []log.Record
	scratch := make([]byte, 8)
	for s := uint64(10); s < 20; s++ {
		copy(scratch, fmt.Sprintf("slot-%03d", s))
		recs = append(recs, log.Record{Slot: s, Value: scratch[:8]})
	}
	mustWrite(t, l, recs...)
	copy(scratch, "clobberd")
	// Every record shares the buffer, which held "slot-019" when Write ran.
	for s := uint64(10); s < 20; s++ {
		checkGet(t, l, s, []byte("slot-019"))
	}
}

func testConcurrent(t *testing.T, l log.Log) {
	const (
		writers   = 8
		perWriter = 60
		readers   = 4
	)
	ctx := context.Background()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 10 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	done := make(chan struct{})
	// Writers interleave slots: writer w writes slots w, w+writers, ...,
	// sometimes two per Write, and rewrites an earlier slot now and then.
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < perWriter; i++ {
				s := uint64(i*writers + w)
				recs := []log.Record{{Slot: s, Value: value(s, 0)}}
				if i%5 == 4 {
					p := uint64((i-2)*writers + w)
					recs = append(recs, log.Record{Slot: p, Value: value(p, 0)})
				}
				if err := l.Write(ctx, recs...); err != nil {
					fail("writer %d: Write(%d): %v", w, s, err)
					return
				}
			}
		})
	}
	// A truncator moves the truncation point up while others write.
	wg.Go(func() {
		for _, s := range []uint64{10, 40, 80} {
			if err := l.TruncateBelow(ctx, s); err != nil {
				fail("TruncateBelow(%d): %v", s, err)
				return
			}
		}
	})
	var rg sync.WaitGroup
	for r := range readers {
		rg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				s := uint64((n*7 + r) % (writers * perWriter))
				got, err := l.Get(ctx, s)
				if err == nil && !bytes.Equal(got, value(s, 0)) {
					fail("reader: Get(%d) = %q", s, got)
				} else if err != nil && !errors.Is(err, log.ErrNotFound) {
					fail("reader: Get(%d): %v", s, err)
				}
				var prev uint64
				first := true
				err = l.Range(ctx, 0, 0, func(rec log.Record) error {
					if !first && rec.Slot <= prev {
						return fmt.Errorf("slot %d after %d", rec.Slot, prev)
					}
					if !bytes.Equal(rec.Value, value(rec.Slot, 0)) {
						return fmt.Errorf("slot %d holds %q", rec.Slot, rec.Value)
					}
					first, prev = false, rec.Slot
					return nil
				})
				if err != nil {
					fail("reader: Range: %v", err)
				}
				if last, err := l.Last(ctx); err == nil && !bytes.Equal(last.Value, value(last.Slot, 0)) {
					fail("reader: Last() = {%d %q}", last.Slot, last.Value)
				} else if err != nil && !errors.Is(err, log.ErrNotFound) {
					fail("reader: Last: %v", err)
				}
				if _, err := l.First(ctx); err != nil {
					fail("reader: First: %v", err)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	rg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	if t.Failed() {
		return
	}
	checkFirst(t, l, 80)
	total := uint64(writers * perWriter)
	got := collect(t, l, 0, 0)
	if uint64(len(got)) != total-80 {
		t.Fatalf("after concurrent writes, Range visited %d records, want %d", len(got), total-80)
	}
	for i, r := range got {
		if r.Slot != 80+uint64(i) || !bytes.Equal(r.Value, value(r.Slot, 0)) {
			t.Fatalf("record %d = {%d %q}, want {%d %q}", i, r.Slot, r.Value, 80+i, value(80+uint64(i), 0))
		}
	}
	checkLast(t, l, log.Record{Slot: total - 1, Value: value(total-1, 0)})
}

func testCancelledContext(t *testing.T, l log.Log) {
	mustWrite(t, l, log.Record{Slot: 1, Value: []byte("one")})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	check := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want context.Canceled", name, err)
		}
	}
	check("Write", l.Write(ctx, log.Record{Slot: 2, Value: []byte("two")}))
	_, err := l.Get(ctx, 1)
	check("Get", err)
	_, err = l.Last(ctx)
	check("Last", err)
	_, err = l.First(ctx)
	check("First", err)
	called := false
	err = l.Range(ctx, 0, 0, func(log.Record) error { called = true; return nil })
	check("Range", err)
	if called {
		t.Errorf("Range with a cancelled context called fn")
	}
	check("TruncateBelow", l.TruncateBelow(ctx, 1))

	// Nothing was done.
	checkNotFound(t, l, 2)
	checkGet(t, l, 1, []byte("one"))
	checkFirst(t, l, 0)

	dctx, dcancel := context.WithTimeout(context.Background(), 0)
	defer dcancel()
	<-dctx.Done()
	if err := l.Write(dctx, log.Record{Slot: 3, Value: []byte("three")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Write with an expired deadline = %v, want context.DeadlineExceeded", err)
	}
	checkNotFound(t, l, 3)
}

func testClosed(t *testing.T, l log.Log) {
	mustWrite(t, l, log.Record{Slot: 1, Value: []byte("one")})
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := context.Background()
	check := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, log.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	check("Write", l.Write(ctx, log.Record{Slot: 2, Value: []byte("two")}))
	_, err := l.Get(ctx, 1)
	check("Get", err)
	_, err = l.Last(ctx)
	check("Last", err)
	_, err = l.First(ctx)
	check("First", err)
	check("Range", l.Range(ctx, 0, 0, func(log.Record) error { return nil }))
	check("TruncateBelow", l.TruncateBelow(ctx, 1))
	check("Close", l.Close())
}

func testReopen(t *testing.T, open func(t *testing.T, dir string) log.Log) {
	dir := t.TempDir()
	l := open(t, dir)
	var recs []log.Record
	for s := range uint64(100) {
		recs = append(recs, log.Record{Slot: s, Value: value(s, 0)})
	}
	mustWrite(t, l, recs...)
	mustWrite(t, l, log.Record{Slot: 70, Value: value(70, 1)})
	big := bytes.Repeat([]byte{0xAB}, 256<<10)
	mustWrite(t, l, log.Record{Slot: 80, Value: big})
	mustTruncate(t, l, 40)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	l = open(t, dir)
	checkFirst(t, l, 40)
	checkNotFound(t, l, 39)
	checkNotFound(t, l, 0)
	checkGet(t, l, 40, value(40, 0))
	checkGet(t, l, 70, value(70, 1))
	checkGet(t, l, 80, big)
	checkLast(t, l, log.Record{Slot: 99, Value: value(99, 0)})
	if got := collect(t, l, 0, 0); len(got) != 60 || got[0].Slot != 40 {
		t.Fatalf("after reopen, Range visited %d records, want 60 from 40", len(got))
	}
	// Writes below the persisted truncation point are still ignored.
	mustWrite(t, l, log.Record{Slot: 10, Value: []byte("too late")})
	checkNotFound(t, l, 10)
	mustWrite(t, l, log.Record{Slot: 100, Value: value(100, 0)})
	mustTruncate(t, l, 90)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	l = open(t, dir)
	defer func() { _ = l.Close() }()
	checkFirst(t, l, 90)
	checkSlots(t, l, 0, 0, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100)
	checkNotFound(t, l, 80)
	checkLast(t, l, log.Record{Slot: 100, Value: value(100, 0)})
}

func testReopenEmpty(t *testing.T, open func(t *testing.T, dir string) log.Log) {
	dir := t.TempDir()
	l := open(t, dir)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l = open(t, dir)
	defer func() { _ = l.Close() }()
	checkFirst(t, l, 0)
	checkNoLast(t, l)
	checkSlots(t, l, 0, 0)
}
