package logtest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/synod-go/synod/log"
)

// benchValueSize is the size of the values the benchmarks append.
const benchValueSize = 128

// Bench runs the Log benchmarks. open must return a new, empty Log each time
// it is called; Bench closes it.
//
// Sub-benchmarks:
//   - Append: one goroutine appends one 128-byte record per Write at
//     increasing slots.
//   - Concurrent/writers=N (N = 1 and 64): N goroutines share b.N appends of
//     one 128-byte record per Write, at distinct increasing slots; this is
//     where group commit shows.
//
// Each reports "appends/s" and, when the Log implements log.StatsReporter,
// "fsyncs/s" and "appends/fsync".
func Bench(b *testing.B, open func(b *testing.B) log.Log) {
	b.Run("Append", func(b *testing.B) { benchAppend(b, open(b)) })
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("Concurrent/writers=%d", writers), func(b *testing.B) {
			benchConcurrent(b, open(b), writers)
		})
	}
}

// syncs returns the Log's sync counter, or -1 if it has none.
func syncs(l log.Log) int64 {
	if s, ok := l.(log.StatsReporter); ok {
		return int64(s.Stats().Syncs)
	}
	return -1
}

func report(b *testing.B, l log.Log, syncsBefore int64) {
	secs := b.Elapsed().Seconds()
	if secs <= 0 {
		return
	}
	b.ReportMetric(float64(b.N)/secs, "appends/s")
	if syncsBefore >= 0 {
		n := syncs(l) - syncsBefore
		b.ReportMetric(float64(n)/secs, "fsyncs/s")
		if n > 0 {
			b.ReportMetric(float64(b.N)/float64(n), "appends/fsync")
		}
	}
}

func benchAppend(b *testing.B, l log.Log) {
	defer func() { _ = l.Close() }()
	ctx := context.Background()
	val := make([]byte, benchValueSize)
	b.SetBytes(benchValueSize)
	b.ReportAllocs()
	before := syncs(l)
	b.ResetTimer()
	for i := range b.N {
		if err := l.Write(ctx, log.Record{Slot: uint64(i), Value: val}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	report(b, l, before)
}

func benchConcurrent(b *testing.B, l log.Log, writers int) {
	defer func() { _ = l.Close() }()
	ctx := context.Background()
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		failed atomic.Pointer[error]
	)
	b.SetBytes(benchValueSize)
	b.ReportAllocs()
	before := syncs(l)
	b.ResetTimer()
	for range writers {
		wg.Go(func() {
			val := make([]byte, benchValueSize)
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := l.Write(ctx, log.Record{Slot: uint64(i), Value: val}); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	report(b, l, before)
}
