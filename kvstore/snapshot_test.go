package kvstore

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/synod-go/synod/log"
)

// roundTrip encodes f in chunks of chunkSize and decodes it again.
func roundTrip(t *testing.T, f *machine, chunkSize int) *machine {
	t.Helper()
	dec := newSnapshotDecoder(f.ttl)
	var chunks int
	err := encodeSnapshot(f, chunkSize, func(chunk []byte) error {
		chunks++
		return dec.add(bytes.Clone(chunk))
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := dec.finish()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func bigMachine(t *testing.T) *machine {
	m := newMachine(int64(time.Hour))
	rng := rand.New(rand.NewSource(2))
	for _, o := range randomOps(rng, 500) {
		m.apply(&o)
		m.next++
	}
	m.data["huge"] = bytes.Repeat([]byte("0123456789"), 50_000) // many chunks
	m.data[strings.Repeat("K", 20_000)] = []byte("a key bigger than a chunk")
	return m
}

func TestSnapshotRoundTrip(t *testing.T) {
	m := bigMachine(t)
	for _, size := range []int{16 << 10, 64 << 10, 512 << 10} {
		var sizes []int
		err := encodeSnapshot(m.freeze(), size, func(chunk []byte) error {
			sizes = append(sizes, len(chunk))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range sizes {
			if n > size+30_000 { // only the oversized key may stretch a chunk
				t.Errorf("chunk size %d: chunk %d has %d bytes", size, i, n)
			}
		}
		if got := roundTrip(t, m.freeze(), size); dump(got) != dump(m) {
			t.Fatalf("chunk size %d: the snapshot does not restore the state", size)
		}
	}
	empty := newMachine(1)
	if got := roundTrip(t, empty, 16<<10); dump(got) != dump(empty) {
		t.Fatal("empty machine")
	}
}

func TestSnapshotDecoderRefuses(t *testing.T) {
	var chunks [][]byte
	encodeSnapshot(bigMachine(t), 16<<10, func(c []byte) error { chunks = append(chunks, bytes.Clone(c)); return nil })
	decodeAll := func(cs [][]byte) error {
		d := newSnapshotDecoder(1)
		for _, c := range cs {
			if err := d.add(c); err != nil {
				return err
			}
		}
		_, err := d.finish()
		return err
	}
	if err := decodeAll(chunks); err != nil {
		t.Fatal(err)
	}
	for name, cs := range map[string][][]byte{
		"no chunks":        nil,
		"first missing":    chunks[1:],
		"last missing":     chunks[:len(chunks)-1],
		"a middle missing": append(append([][]byte(nil), chunks[:3]...), chunks[4:]...),
		"twice":            append(append([][]byte(nil), chunks...), chunks[len(chunks)-1]),
		"empty chunk":      append(append([][]byte(nil), chunks...), []byte{opVersion, byte(len(chunks))}),
	} {
		if err := decodeAll(cs); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// writeSnap writes m's snapshot through the store.
func writeSnap(t *testing.T, s *snapshotStore, m *machine) {
	t.Helper()
	ctx := context.Background()
	w := s.begin()
	if err := encodeSnapshot(m.freeze(), 16<<10, func(c []byte) error { return w.add(ctx, c) }); err != nil {
		t.Fatal(err)
	}
	if ok, err := w.commit(ctx, m.next); !ok || err != nil {
		t.Fatalf("commit: %v %v", ok, err)
	}
}

func TestSnapshotStore(t *testing.T) {
	ctx := context.Background()
	l := log.NewMemory()
	s, m, err := openSnapshotStore(ctx, l, 1)
	if err != nil || m.next != 0 || len(m.data) != 0 {
		t.Fatalf("empty log: %v, %+v", err, m)
	}
	first := bigMachine(t)
	writeSnap(t, s, first)
	second := first.freeze()
	second.data["more"] = []byte("state")
	second.next += 10
	writeSnap(t, s, second)
	if f, _ := l.First(ctx); f == 0 {
		t.Errorf("the older snapshot was not truncated")
	}

	// A snapshot cut short (chunks, no manifest) is never loaded.
	w := s.begin()
	w.add(ctx, []byte{opVersion, recHeader, 99, 0, 0, 0})
	w.abort()
	_, m, err = openSnapshotStore(ctx, l, int64(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if dump(m) != dump(second) {
		t.Fatal("reopening did not load the newest complete snapshot")
	}

	// An older point is refused.
	s2, _, _ := openSnapshotStore(ctx, l, 1)
	w = s2.begin()
	if ok, err := w.commit(ctx, second.next-1); ok || err != nil {
		t.Fatalf("committing an older snapshot: %v, %v", ok, err)
	}

	// Damage is found, not loaded.
	mf, unpin := s2.acquire()
	unpin()
	v, _ := l.Get(ctx, mf.base+1)
	v[len(v)/2] ^= 1
	l.Write(ctx, log.Record{Slot: mf.base + 1, Value: v})
	if _, _, err := openSnapshotStore(ctx, l, 1); !errors.Is(err, ErrCorruptSnapshot) {
		t.Fatalf("damaged chunk: %v, want ErrCorruptSnapshot", err)
	}
}

// A snapshot a peer is reading is not truncated under it.
func TestSnapshotStorePins(t *testing.T) {
	ctx := context.Background()
	l := log.NewMemory()
	s, _, _ := openSnapshotStore(ctx, l, 1)
	m := bigMachine(t)
	writeSnap(t, s, m)
	pinned, unpin := s.acquire()
	m.next += 5
	writeSnap(t, s, m)
	for i := range pinned.sum.chunks {
		if _, err := s.chunk(ctx, pinned, i); err != nil {
			t.Fatalf("chunk %d of the pinned snapshot: %v", i, err)
		}
	}
	unpin()
	if _, err := s.chunk(ctx, pinned, 0); err == nil {
		t.Fatal("the old snapshot outlived its last reader")
	}
}

// Decoding arbitrary chunks never panics.
//
//	go test -run '^$' -fuzz '^FuzzSnapshotChunk$' -fuzztime 30s ./kvstore
func FuzzSnapshotChunk(f *testing.F) {
	m := newMachine(1)
	for _, o := range randomOps(rand.New(rand.NewSource(3)), 40) {
		m.apply(&o)
	}
	encodeSnapshot(m, 16<<10, func(c []byte) error { f.Add(bytes.Clone(c), 0); return nil })
	f.Add([]byte{opVersion, 0, recHeader, 0, 0, 1, 0, recKey, 1, 'k', 1, 'v', 1}, 7)
	f.Fuzz(func(t *testing.T, in []byte, cut int) {
		d := newSnapshotDecoder(1)
		if cut > 0 && cut < len(in) {
			if d.add(in[:cut]) != nil {
				return
			}
			in = in[cut:]
		}
		if d.add(in) == nil {
			d.finish()
		}
	})
}

// go test -run '^$' -fuzz '^FuzzTransfer$' -fuzztime 30s ./kvstore
func FuzzTransfer(f *testing.F) {
	f.Add(transferMsg(tagEnd, 1, 2, 3))
	f.Add(append(transferMsg(tagChunk), 1, 2))
	f.Add(appendManifest(nil, &manifest{next: 5, base: 1, sum: snapshotSum{chunks: 1, bytes: 2, crc: 3}}))
	f.Fuzz(func(t *testing.T, in []byte) {
		decodeTransfer(in, tagRequest, tagNone, tagHeader, tagChunk, tagEnd, tagAck)
		decodeManifest(in)
	})
}
