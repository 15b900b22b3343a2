package log_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/synod-go/synod/log"
)

// TestBadgerCollectGarbageShrinksValueLog writes 64 MiB of 1 MiB values,
// truncates them all, and checks that CollectGarbage gives the disk back.
func TestBadgerCollectGarbageShrinksValueLog(t *testing.T) {
	const (
		n    = 64
		size = 1 << 20
	)
	ctx := context.Background()
	db := openDB(t, t.TempDir(), log.BadgerOptions{ValueLogFileSize: 4 << 20})
	l := openLog(t, db, "recorded")
	val := make([]byte, size)
	for s := range uint64(n) {
		val[0] = byte(s)
		if err := l.Write(ctx, log.Record{Slot: s, Value: val}); err != nil {
			t.Fatal(err)
		}
	}
	// One small record stays.
	if err := l.Write(ctx, log.Record{Slot: n, Value: []byte("stays")}); err != nil {
		t.Fatal(err)
	}
	_, full, err := db.DiskSize()
	if err != nil {
		t.Fatal(err)
	}
	if full < n*size {
		t.Fatalf("value log holds %d MiB after writing %d MiB; the test measures the wrong thing", full>>20, n)
	}
	if err := l.TruncateBelow(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := db.CollectGarbage(ctx); err != nil {
		t.Fatal(err)
	}
	lsm, after, err := db.DiskSize()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("value log: %d MiB written, %d MiB after truncation and CollectGarbage (tables: %d KiB)", full>>20, after>>20, lsm>>10)
	// What may remain: the value-log file being written to (preallocated to
	// twice ValueLogFileSize) and one more.
	if after > 16<<20 {
		t.Errorf("value log still holds %d MiB after truncating all %d MiB and CollectGarbage", after>>20, n)
	}
	if v, err := l.Get(ctx, n); err != nil || string(v) != "stays" {
		t.Fatalf("Get(%d) after CollectGarbage = %q, %v", n, v, err)
	}
	if _, err := l.Get(ctx, n-1); !errors.Is(err, log.ErrNotFound) {
		t.Fatalf("Get(%d) after CollectGarbage = %v, want ErrNotFound", n-1, err)
	}
	if runs := db.Stats().GCRuns; runs != 1 {
		t.Errorf("Stats().GCRuns = %d after one CollectGarbage, want 1", runs)
	}
}

// TestBadgerCollectGarbageWhileWriting runs CollectGarbage (which pauses
// Badger's writes) while Logs write and truncate: no write may fail.
func TestBadgerCollectGarbageWhileWriting(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, t.TempDir(), log.BadgerOptions{ValueLogFileSize: 1 << 20})
	logs := []log.Log{openLog(t, db, "a"), openLog(t, db, "b")}
	const perLog = 300
	val := make([]byte, 8<<10) // into the value log
	var wg sync.WaitGroup
	for _, l := range logs {
		wg.Go(func() {
			for s := range uint64(perLog) {
				if err := l.Write(ctx, log.Record{Slot: s, Value: val}); err != nil {
					t.Errorf("Write(%d): %v", s, err)
					return
				}
				if s%50 == 49 {
					if err := l.TruncateBelow(ctx, s-10); err != nil {
						t.Errorf("TruncateBelow(%d): %v", s-10, err)
						return
					}
				}
			}
		})
	}
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for range 5 {
			if err := db.CollectGarbage(ctx); err != nil {
				t.Errorf("CollectGarbage: %v", err)
				return
			}
		}
	}()
	wg.Wait()
	<-gcDone
	for _, l := range logs {
		first, err := l.First(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for s := first; s < perLog; s++ {
			if v, err := l.Get(ctx, s); err != nil || len(v) != len(val) {
				t.Fatalf("Get(%d) = %d bytes, %v", s, len(v), err)
			}
		}
	}
}
