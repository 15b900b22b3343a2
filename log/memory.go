package log

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// rangeChunk is how many records Memory.Range copies out under its lock
// before it releases the lock and calls fn for them.
const rangeChunk = 64

// Memory is an in-memory Log. It is not durable (Durable reports false): its
// contents are gone when the process exits. Use it in tests, and for nodes
// that may forget everything on restart (an observer-only process, say).
//
// Memory is built for the common pattern of a replicated log: appends at
// increasing slots, range reads, and truncation of a prefix. Appends and
// truncations cost amortized O(1) (plus the copy of the value), Get O(log n),
// a write in the middle O(n). TruncateBelow drops every reference to the
// truncated values at once, so their memory can be collected.
//
// The zero value is not usable; call NewMemory. A Memory is safe for
// concurrent use.
type Memory struct {
	mu sync.RWMutex
	// recs[head:] are the live records.
	// Invariant: recs[head:] is sorted by Slot, strictly increasing, and
	// every live Slot >= first.
	// Invariant: recs[:head] are zero Records (no reference to any value).
	recs   []Record
	head   int
	first  uint64
	closed bool
	// writeErr, if not nil, fails every Write and TruncateBelow (FailWrites).
	writeErr error
}

// NewMemory returns an empty in-memory Log.
func NewMemory() *Memory {
	return &Memory{}
}

var (
	_ Log     = (*Memory)(nil)
	_ Durable = (*Memory)(nil)
)

// FailWrites is a fault knob for tests: until it is called again with nil,
// every Write and TruncateBelow fails with an error wrapping err and changes
// nothing, as if the storage had failed. Reads keep working.
func (m *Memory) FailWrites(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writeErr = err
}

// Durable reports false: a Memory forgets everything when the process ends.
func (m *Memory) Durable() bool { return false }

// live returns the live records; the caller holds m.mu.
func (m *Memory) live() []Record { return m.recs[m.head:] }

// search returns the index in live() of the first record with Slot >= slot.
func (m *Memory) search(slot uint64) int {
	live := m.live()
	return sort.Search(len(live), func(i int) bool { return live[i].Slot >= slot })
}

// Write implements Log.Write.
func (m *Memory) Write(ctx context.Context, recs ...Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if m.writeErr != nil {
		return fmt.Errorf("log: memory write failed (injected): %w", m.writeErr)
	}
	// The values are copied into one allocation per Write (a batch of
	// small records otherwise costs an allocation each), each capped so
	// that appending to one cannot run into the next.
	total := 0
	for _, r := range recs {
		if r.Slot >= m.first {
			total += len(r.Value)
		}
	}
	arena := make([]byte, 0, total)
	for _, r := range recs {
		if r.Slot < m.first {
			continue
		}
		v := r.Value
		if v != nil {
			start := len(arena)
			arena = append(arena, v...)
			v = arena[start:len(arena):len(arena)]
		}
		m.put(Record{Slot: r.Slot, Value: v})
	}
	return nil
}

// put stores r, which the Log owns; the caller holds m.mu.
func (m *Memory) put(r Record) {
	live := m.live()
	n := len(live)
	if n == 0 || r.Slot > live[n-1].Slot {
		m.recs = append(m.recs, r)
		return
	}
	i := m.search(r.Slot)
	if live[i].Slot == r.Slot {
		live[i].Value = r.Value
		return
	}
	// Insert at m.head+i.
	m.recs = append(m.recs, Record{})
	at := m.head + i
	copy(m.recs[at+1:], m.recs[at:])
	m.recs[at] = r
}

// Get implements Log.Get.
func (m *Memory) Get(ctx context.Context, slot uint64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	live := m.live()
	i := m.search(slot)
	if i == len(live) || live[i].Slot != slot {
		return nil, ErrNotFound
	}
	return cloneValue(live[i].Value), nil
}

// cloneValue copies v for a caller, never returning nil.
func cloneValue(v []byte) []byte {
	return append(make([]byte, 0, len(v)), v...)
}

// Range implements Log.Range. It copies records out in chunks and calls fn
// without holding the Memory's lock, so fn may call other methods of the same
// Memory (though portable code must not, see Log). Records written during a
// Range may or may not be seen.
func (m *Memory) Range(ctx context.Context, from, to uint64, fn func(Record) error) error {
	buf := make([]Record, 0, rangeChunk)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		buf = buf[:0]
		m.mu.RLock()
		if m.closed {
			m.mu.RUnlock()
			return ErrClosed
		}
		live := m.live()
		for i := m.search(from); i < len(live) && len(buf) < rangeChunk; i++ {
			r := live[i]
			if to != 0 && r.Slot >= to {
				break
			}
			buf = append(buf, Record{Slot: r.Slot, Value: cloneValue(r.Value)})
		}
		m.mu.RUnlock()
		for _, r := range buf {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(buf) < rangeChunk {
			return nil
		}
		last := buf[len(buf)-1].Slot
		if last == ^uint64(0) {
			return nil
		}
		from = last + 1
	}
}

// Last implements Log.Last.
func (m *Memory) Last(ctx context.Context) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return Record{}, ErrClosed
	}
	live := m.live()
	if len(live) == 0 {
		return Record{}, ErrNotFound
	}
	r := live[len(live)-1]
	return Record{Slot: r.Slot, Value: cloneValue(r.Value)}, nil
}

// TruncateBelow implements Log.TruncateBelow. The truncated values are
// unreferenced when it returns.
func (m *Memory) TruncateBelow(ctx context.Context, slot uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if m.writeErr != nil {
		return fmt.Errorf("log: memory truncate failed (injected): %w", m.writeErr)
	}
	if slot <= m.first {
		return nil
	}
	m.first = slot
	n := m.search(slot)
	clear(m.recs[m.head : m.head+n])
	m.head += n
	m.compact()
	return nil
}

// compact moves the live records to a fresh backing array once the dead
// prefix is at least as long as the live part, so that the cost is amortized
// O(1) per truncated record and the old array can be collected. The caller
// holds m.mu.
func (m *Memory) compact() {
	live := len(m.recs) - m.head
	switch {
	case live == 0:
		m.recs, m.head = nil, 0
	case m.head >= live:
		fresh := make([]Record, live, live+live/2+16)
		copy(fresh, m.recs[m.head:])
		m.recs, m.head = fresh, 0
	}
}

// First implements Log.First.
func (m *Memory) First(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	return m.first, nil
}

// Close implements Log.Close: it drops every record.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.closed = true
	m.recs, m.head = nil, 0
	return nil
}
