package kvstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/synod-go/synod/internal/wire"
	"github.com/synod-go/synod/log"
	"github.com/synod-go/synod/paxos"
)

// The snapshot log (Config.Snapshots) holds records at increasing slots.
// A snapshot is its chunk records at slots base, base+1, …, base+n-1,
// followed by its manifest at base+n. The manifest is written only after
// every chunk's Write has returned, so a snapshot whose writing was cut
// short (a crash, a broken stream) has no manifest and is never loaded.
// Older snapshots, and chunks left without a manifest, are truncated once
// a newer snapshot is complete and no peer is still reading them.
//
//	chunk record    := 1 | chunk
//	manifest record := 2 | version(1) | next uvarint | base uvarint |
//	                   chunks uvarint | bytes uvarint | crc uvarint
const (
	logChunk    byte = 1
	logManifest byte = 2
)

// manifest describes one complete snapshot in the snapshot log.
type manifest struct {
	next paxos.Slot // the snapshot holds every slot below next
	base uint64     // slot of the first chunk record
	sum  snapshotSum
}

func appendManifest(b []byte, m *manifest) []byte {
	b = append(b, logManifest, opVersion)
	b = wire.AppendUvarint(b, uint64(m.next))
	b = wire.AppendUvarint(b, m.base)
	b = wire.AppendUvarint(b, m.sum.chunks)
	b = wire.AppendUvarint(b, m.sum.bytes)
	return wire.AppendUvarint(b, uint64(m.sum.crc))
}

func decodeManifest(b []byte) (*manifest, error) {
	d := wire.NewDecoder(b)
	if k := d.Byte(); d.Err() == nil && k != logManifest {
		return nil, fmt.Errorf("%w: not a manifest (kind %d)", ErrMalformed, k)
	}
	if v := d.Byte(); d.Err() == nil && v != opVersion {
		return nil, fmt.Errorf("%w: manifest version %d", ErrMalformed, v)
	}
	m := &manifest{next: paxos.Slot(d.Uvarint()), base: d.Uvarint()}
	m.sum.chunks = d.Uvarint()
	m.sum.bytes = d.Uvarint()
	crc := d.Uvarint()
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrMalformed, err)
	}
	if crc > 1<<32-1 {
		return nil, fmt.Errorf("%w: manifest crc %d", ErrMalformed, crc)
	}
	m.sum.crc = uint32(crc)
	return m, nil
}

// snapshotStore keeps the snapshots of one server in its snapshot log.
// It is safe for concurrent use: one writer at a time (begin … commit or
// abort), any number of readers serving peers.
type snapshotStore struct {
	log log.Log

	wmu sync.Mutex // held by the one writer, from begin to commit or abort

	mu sync.Mutex
	// latest is the newest complete snapshot, nil if none.
	latest *manifest
	// free is the first slot no record was written at.
	// Invariant: latest == nil || latest.base+latest.sum.chunks < free.
	free uint64
	// pins counts, by base slot, the peers reading a snapshot; records
	// from the lowest pinned base up are not truncated.
	pins map[uint64]int
}

// openSnapshotStore opens the snapshot log and loads its newest complete
// snapshot into a machine (an empty machine if there is none).
func openSnapshotStore(ctx context.Context, l log.Log, ttl int64) (*snapshotStore, *machine, error) {
	s := &snapshotStore{log: l, pins: make(map[uint64]int)}
	first, err := l.First(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("kvstore: reading snapshot log: %w", err)
	}
	s.free = first
	last, err := l.Last(ctx)
	if errors.Is(err, log.ErrNotFound) {
		return s, newMachine(ttl), nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("kvstore: reading snapshot log: %w", err)
	}
	s.free = last.Slot + 1
	var m *manifest
	if len(last.Value) > 0 && last.Value[0] == logManifest {
		if m, err = decodeManifest(last.Value); err != nil {
			return nil, nil, fmt.Errorf("%w: slot %d: %w", ErrCorruptSnapshot, last.Slot, err)
		}
	} else {
		// A snapshot's writing was cut short: find the newest manifest.
		err = l.Range(ctx, first, 0, func(r log.Record) error {
			if len(r.Value) == 0 || r.Value[0] != logManifest {
				return nil
			}
			mm, err := decodeManifest(r.Value)
			if err != nil {
				return fmt.Errorf("%w: slot %d: %w", ErrCorruptSnapshot, r.Slot, err)
			}
			m = mm
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	if m == nil {
		return s, newMachine(ttl), nil
	}
	mach, err := s.load(ctx, m, ttl)
	if err != nil {
		return nil, nil, err
	}
	s.latest = m
	return s, mach, nil
}

// load reads and checks the snapshot m describes.
func (s *snapshotStore) load(ctx context.Context, m *manifest, ttl int64) (*machine, error) {
	dec := newSnapshotDecoder(ttl)
	var sum snapshotSum
	want := m.base
	err := s.log.Range(ctx, m.base, m.base+m.sum.chunks, func(r log.Record) error {
		if r.Slot != want || len(r.Value) == 0 || r.Value[0] != logChunk {
			return fmt.Errorf("%w: snapshot at %d: chunk record %d missing or of another kind", ErrCorruptSnapshot, m.next, want)
		}
		want++
		chunk := r.Value[1:]
		sum.add(chunk)
		if err := dec.add(chunk); err != nil {
			return fmt.Errorf("%w: snapshot at %d: %w", ErrCorruptSnapshot, m.next, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if sum != m.sum {
		return nil, fmt.Errorf("%w: snapshot at %d: chunks do not match the manifest (%d chunks, %d bytes, crc %#x; manifest %d, %d, %#x)",
			ErrCorruptSnapshot, m.next, sum.chunks, sum.bytes, sum.crc, m.sum.chunks, m.sum.bytes, m.sum.crc)
	}
	mach, err := dec.finish()
	if err != nil {
		return nil, fmt.Errorf("%w: snapshot at %d: %w", ErrCorruptSnapshot, m.next, err)
	}
	if mach.next != m.next {
		return nil, fmt.Errorf("%w: snapshot header says slot %d, manifest %d", ErrCorruptSnapshot, mach.next, m.next)
	}
	return mach, nil
}

// point returns the slot the newest complete snapshot covers up to
// (exclusive), 0 if none.
func (s *snapshotStore) point() paxos.Slot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latest == nil {
		return 0
	}
	return s.latest.next
}

// snapshotWriter writes one snapshot, chunk by chunk.
type snapshotWriter struct {
	s    *snapshotStore
	base uint64
	sum  snapshotSum
	rec  []byte
	done bool
}

// begin starts writing a snapshot; it waits for a writer in progress.
// The caller must end with commit or abort.
func (s *snapshotStore) begin() *snapshotWriter {
	s.wmu.Lock()
	s.mu.Lock()
	base := s.free
	s.mu.Unlock()
	return &snapshotWriter{s: s, base: base}
}

// add writes the next chunk durably.
func (w *snapshotWriter) add(ctx context.Context, chunk []byte) error {
	slot := w.base + w.sum.chunks
	w.rec = append(append(w.rec[:0], logChunk), chunk...)
	w.s.mu.Lock()
	w.s.free = max(w.s.free, slot+1)
	w.s.mu.Unlock()
	if err := w.s.log.Write(ctx, log.Record{Slot: slot, Value: w.rec}); err != nil {
		return fmt.Errorf("kvstore: writing snapshot chunk: %w", err)
	}
	w.sum.add(chunk)
	return nil
}

// commit writes the manifest of a snapshot covering the slots below next,
// which makes it the newest, and releases older snapshots. It writes
// nothing and returns false if a snapshot at next or later is there already.
func (w *snapshotWriter) commit(ctx context.Context, next paxos.Slot) (bool, error) {
	defer w.abort()
	s := w.s
	if p := s.point(); p >= next && p > 0 {
		return false, nil
	}
	m := &manifest{next: next, base: w.base, sum: w.sum}
	slot := w.base + w.sum.chunks
	s.mu.Lock()
	s.free = max(s.free, slot+1)
	s.mu.Unlock()
	if err := s.log.Write(ctx, log.Record{Slot: slot, Value: appendManifest(nil, m)}); err != nil {
		return false, fmt.Errorf("kvstore: writing snapshot manifest: %w", err)
	}
	s.mu.Lock()
	s.latest = m
	s.mu.Unlock()
	return true, s.release(ctx)
}

// abort ends a writer without a manifest (its chunks are garbage,
// truncated with the next snapshot).
func (w *snapshotWriter) abort() {
	if !w.done {
		w.done = true
		w.s.wmu.Unlock()
	}
}

// release truncates every record below the newest snapshot and below any
// snapshot a peer is reading.
func (s *snapshotStore) release(ctx context.Context) error {
	s.mu.Lock()
	if s.latest == nil {
		s.mu.Unlock()
		return nil
	}
	below := s.latest.base
	for base := range s.pins {
		below = min(below, base)
	}
	s.mu.Unlock()
	if err := s.log.TruncateBelow(ctx, below); err != nil {
		return fmt.Errorf("kvstore: truncating snapshot log: %w", err)
	}
	return nil
}

// acquire returns the newest snapshot and pins it until release is called,
// or nil if there is none.
func (s *snapshotStore) acquire() (m *manifest, unpin func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m = s.latest
	if m == nil {
		return nil, func() {}
	}
	s.pins[m.base]++
	return m, func() {
		s.mu.Lock()
		if s.pins[m.base]--; s.pins[m.base] == 0 {
			delete(s.pins, m.base)
		}
		stale := s.latest.base != m.base
		s.mu.Unlock()
		if stale {
			_ = s.release(context.Background()) // best effort; the next snapshot retries
		}
	}
}

// chunk reads chunk i of the pinned snapshot m.
func (s *snapshotStore) chunk(ctx context.Context, m *manifest, i uint64) ([]byte, error) {
	v, err := s.log.Get(ctx, m.base+i)
	if err != nil {
		return nil, fmt.Errorf("kvstore: reading snapshot chunk: %w", err)
	}
	if len(v) == 0 || v[0] != logChunk {
		return nil, fmt.Errorf("%w: snapshot at %d: record %d is not a chunk", ErrCorruptSnapshot, m.next, m.base+i)
	}
	return v[1:], nil
}
