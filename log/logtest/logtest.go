// Package logtest is the conformance suite and the benchmarks that every
// implementation of log.Log must pass.
//
// A backend's test file calls Run with a function that opens a fresh, empty
// Log; a persistent backend calls RunPersistent instead (which includes Run)
// so that data and the truncation point are also checked across Close and
// reopen. Bench measures append throughput and, when the Log implements
// log.StatsReporter, fsyncs per second.
//
// The suite closes every Log it opens. Anything else the open function
// creates (a database holding the Log, a directory) is the open function's
// to clean up, typically with t.Cleanup.
package logtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/synod-go/synod/log"
)

// Run runs the conformance suite. open must return a new, empty Log each time
// it is called; the suite closes it.
func Run(t *testing.T, open func(t *testing.T) log.Log) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, l log.Log)
	}{
		{"Empty", testEmpty},
		{"WriteGet", testWriteGet},
		{"Overwrite", testOverwrite},
		{"Batch", testBatch},
		{"Range", testRange},
		{"RangeStop", testRangeStop},
		{"Last", testLast},
		{"ExtremeSlots", testExtremeSlots},
		{"TruncateBelow", testTruncateBelow},
		{"TruncateAll", testTruncateAll},
		{"NoRetain", testNoRetain},
		{"Concurrent", testConcurrent},
		{"CancelledContext", testCancelledContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := open(t)
			t.Cleanup(func() { _ = l.Close() })
			tc.fn(t, l)
		})
	}
	t.Run("Closed", func(t *testing.T) { testClosed(t, open(t)) })
}

// RunPersistent runs Run, with a fresh directory for every Log, and then
// checks that records and the truncation point survive Close and reopen.
// open must open (creating if needed) the Log stored in dir; Close of that
// Log must release everything that stops dir from being opened again (for a
// Log that shares a database, close the database too).
func RunPersistent(t *testing.T, open func(t *testing.T, dir string) log.Log) {
	t.Helper()
	Run(t, func(t *testing.T) log.Log { return open(t, t.TempDir()) })
	t.Run("Reopen", func(t *testing.T) { testReopen(t, open) })
	t.Run("ReopenEmpty", func(t *testing.T) { testReopenEmpty(t, open) })
}

// value is the value the suite writes at slot in generation gen; readers
// check it without coordinating with writers.
func value(slot uint64, gen int) []byte {
	return fmt.Appendf(nil, "value-%d-gen-%d", slot, gen)
}

func mustWrite(t testing.TB, l log.Log, recs ...log.Record) {
	t.Helper()
	if err := l.Write(context.Background(), recs...); err != nil {
		t.Fatalf("Write(%d records): %v", len(recs), err)
	}
}

func mustTruncate(t testing.TB, l log.Log, slot uint64) {
	t.Helper()
	if err := l.TruncateBelow(context.Background(), slot); err != nil {
		t.Fatalf("TruncateBelow(%d): %v", slot, err)
	}
}

func checkGet(t testing.TB, l log.Log, slot uint64, want []byte) {
	t.Helper()
	got, err := l.Get(context.Background(), slot)
	if err != nil {
		t.Fatalf("Get(%d): %v, want %q", slot, err, want)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%d) = %q, want %q", slot, got, want)
	}
}

func checkNotFound(t testing.TB, l log.Log, slot uint64) {
	t.Helper()
	got, err := l.Get(context.Background(), slot)
	if !errors.Is(err, log.ErrNotFound) {
		t.Fatalf("Get(%d) = %q, %v; want ErrNotFound", slot, got, err)
	}
}

func checkFirst(t testing.TB, l log.Log, want uint64) {
	t.Helper()
	got, err := l.First(context.Background())
	if err != nil || got != want {
		t.Fatalf("First() = %d, %v; want %d", got, err, want)
	}
}

func checkLast(t testing.TB, l log.Log, want log.Record) {
	t.Helper()
	got, err := l.Last(context.Background())
	if err != nil {
		t.Fatalf("Last(): %v, want slot %d", err, want.Slot)
	}
	if got.Slot != want.Slot || !bytes.Equal(got.Value, want.Value) {
		t.Fatalf("Last() = {%d %q}, want {%d %q}", got.Slot, got.Value, want.Slot, want.Value)
	}
}

func checkNoLast(t testing.TB, l log.Log) {
	t.Helper()
	got, err := l.Last(context.Background())
	if !errors.Is(err, log.ErrNotFound) {
		t.Fatalf("Last() = {%d %q}, %v; want ErrNotFound", got.Slot, got.Value, err)
	}
}

// collect returns the records Range(from, to) visits, checking their order.
func collect(t testing.TB, l log.Log, from, to uint64) []log.Record {
	t.Helper()
	var out []log.Record
	err := l.Range(context.Background(), from, to, func(r log.Record) error {
		if r.Slot < from || (to != 0 && r.Slot >= to) {
			return fmt.Errorf("Range(%d, %d) visited slot %d", from, to, r.Slot)
		}
		if n := len(out); n > 0 && r.Slot <= out[n-1].Slot {
			return fmt.Errorf("Range(%d, %d) visited slot %d after %d", from, to, r.Slot, out[n-1].Slot)
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatalf("Range(%d, %d): %v", from, to, err)
	}
	return out
}

func slots(recs []log.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Slot
	}
	return out
}

func checkSlots(t testing.TB, l log.Log, from, to uint64, want ...uint64) {
	t.Helper()
	got := slots(collect(t, l, from, to))
	if fmt.Sprint(got) != fmt.Sprint(want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("Range(%d, %d) slots = %v, want %v", from, to, got, want)
	}
}
