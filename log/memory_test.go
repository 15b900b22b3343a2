package log_test

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/synod-go/synod/log"
	"github.com/synod-go/synod/log/logtest"
)

func TestMemoryConformance(t *testing.T) {
	logtest.Run(t, func(t *testing.T) log.Log { return log.NewMemory() })
}

func BenchmarkMemory(b *testing.B) {
	logtest.Bench(b, func(b *testing.B) log.Log { return log.NewMemory() })
}

func TestMemoryNotDurable(t *testing.T) {
	if log.IsDurable(log.NewMemory()) {
		t.Fatal("IsDurable(NewMemory()) = true, want false")
	}
}

// heapInUse returns the bytes of live heap objects after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func TestMemoryTruncateReleasesValues(t *testing.T) {
	const (
		n    = 64
		size = 1 << 20
	)
	ctx := context.Background()
	m := log.NewMemory()
	defer m.Close()
	buf := make([]byte, size)
	base := heapInUse()
	for s := range uint64(n) {
		buf[0] = byte(s)
		if err := m.Write(ctx, log.Record{Slot: s, Value: buf}); err != nil {
			t.Fatal(err)
		}
	}
	// A small record that stays, so the backing array is still in use.
	if err := m.Write(ctx, log.Record{Slot: n, Value: []byte("stays")}); err != nil {
		t.Fatal(err)
	}
	full := heapInUse()
	if full < base+n*size*9/10 {
		t.Fatalf("heap grew by %d bytes after writing %d MiB; the test measures the wrong thing", full-base, n)
	}

	// Truncate in two steps, the first one small, so that a Memory that only
	// moves an index (and keeps the backing array) is caught too.
	if err := m.TruncateBelow(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := m.TruncateBelow(ctx, n); err != nil {
		t.Fatal(err)
	}
	after := heapInUse()
	if after > base+4*size {
		t.Fatalf("heap after truncating %d MiB of values: %d MiB above the start, want under 4 MiB (values still referenced)",
			n, (after-base)>>20)
	}
	t.Logf("heap: start %d MiB, full %d MiB, after truncation %d MiB", base>>20, full>>20, after>>20)
	runtime.KeepAlive(buf)
}

func TestMemoryTruncateEachSlot(t *testing.T) {
	// Appends interleaved with truncation of a one-record prefix, the pattern
	// of a log driven by Done: everything stays correct and the live window
	// stays small.
	ctx := context.Background()
	m := log.NewMemory()
	defer m.Close()
	for s := range uint64(10_000) {
		if err := m.Write(ctx, log.Record{Slot: s, Value: []byte{byte(s)}}); err != nil {
			t.Fatal(err)
		}
		if s >= 8 {
			if err := m.TruncateBelow(ctx, s-7); err != nil {
				t.Fatal(err)
			}
		}
	}
	var got []uint64
	err := m.Range(ctx, 0, 0, func(r log.Record) error {
		if r.Value[0] != byte(r.Slot) {
			t.Errorf("slot %d holds %d", r.Slot, r.Value[0])
		}
		got = append(got, r.Slot)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 8 || got[0] != 9992 || got[7] != 9999 {
		t.Fatalf("live slots = %v, want 9992..9999", got)
	}
}

func TestMemoryInsertOutOfOrder(t *testing.T) {
	ctx := context.Background()
	m := log.NewMemory()
	defer m.Close()
	order := []uint64{10, 2, 7, 2, 15, 0, 9, 11, 1}
	for _, s := range order {
		if err := m.Write(ctx, log.Record{Slot: s, Value: []byte{byte(s)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.TruncateBelow(ctx, 2); err != nil {
		t.Fatal(err)
	}
	for _, s := range []uint64{8, 3, 16, 4} {
		if err := m.Write(ctx, log.Record{Slot: s, Value: []byte{byte(s)}}); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint64
	err := m.Range(ctx, 0, 0, func(r log.Record) error {
		got = append(got, r.Slot)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []uint64{2, 3, 4, 7, 8, 9, 10, 11, 15, 16}
	if len(got) != len(want) {
		t.Fatalf("slots = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("slots = %v, want %v", got, want)
		}
	}
}

func TestMemoryFailWrites(t *testing.T) {
	ctx := context.Background()
	m := log.NewMemory()
	defer m.Close()
	if err := m.Write(ctx, log.Record{Slot: 1, Value: []byte("one")}); err != nil {
		t.Fatal(err)
	}
	disk := errors.New("disk on fire")
	m.FailWrites(disk)
	if err := m.Write(ctx, log.Record{Slot: 2, Value: []byte("two")}); !errors.Is(err, disk) {
		t.Fatalf("Write with an injected failure = %v, want it wrapped", err)
	}
	if err := m.TruncateBelow(ctx, 2); !errors.Is(err, disk) {
		t.Fatalf("TruncateBelow with an injected failure = %v, want it wrapped", err)
	}
	if v, err := m.Get(ctx, 1); err != nil || string(v) != "one" {
		t.Fatalf("Get with an injected write failure = %q, %v; reads must work", v, err)
	}
	if _, err := m.Get(ctx, 2); !errors.Is(err, log.ErrNotFound) {
		t.Fatalf("a failed Write stored its record: Get = %v", err)
	}
	m.FailWrites(nil)
	if err := m.Write(ctx, log.Record{Slot: 2, Value: []byte("two")}); err != nil {
		t.Fatalf("Write after FailWrites(nil): %v", err)
	}
}
