package log

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// crashImage copies what dir holds now (the lock and the spare aside), as
// a crash at this instant would leave it: every byte written is there.
func crashImage(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == lockName || e.Name() == spareName {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// holdWriter makes the database believe a writer is busy, so that requests
// queue up; the returned function writes them, as the writer would. It is
// also called at the end of the test (once in all), so that a test that
// fails early does not leave Close waiting for the writer.
func holdWriter(t *testing.T, db *FileDB) (release func()) {
	db.mu.Lock()
	db.writing = true
	db.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { db.lead(nil) }) }
	t.Cleanup(release)
	return release
}

func waitQueued(t *testing.T, db *FileDB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		db.mu.Lock()
		q := len(db.queue)
		db.mu.Unlock()
		if q >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued after 10 s, want %d", q, n)
		}
		time.Sleep(time.Millisecond) // polling a queue filled by another goroutine
	}
}

// TestFileRollTakesTheQueue: a roll's snapshot holds every queued request,
// so the roll answers them and writes none of them again. (Written again
// in several frames after the snapshot, a crash between those frames could
// replay the snapshot's value of a slot with an older one, tearing a later
// Write.)
func TestFileRollTakesTheQueue(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := OpenFile(dir, FileOptions{SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := db.Log("a")
	if err != nil {
		t.Fatal(err)
	}
	big := func(c byte) []byte { return bytes.Repeat([]byte{c}, 11<<20) }
	release := holdWriter(t, db)
	writes := [][]Record{
		{{Slot: 1, Value: big('g')}}, // more than a segment: the first frame rolls
		{{Slot: 2, Value: big('h')}},
		{{Slot: 5, Value: big('x')}},
		{{Slot: 7, Value: big('c')}},
		{{Slot: 8, Value: big('d')}},
		{{Slot: 5, Value: []byte("y")}, {Slot: 6, Value: []byte("z")}}, // one atomic Write
	}
	errc := make(chan error, len(writes))
	for i, recs := range writes {
		go func() { errc <- l.Write(ctx, recs...) }()
		waitQueued(t, db, i+1) // queued in this order
	}
	release()
	for range writes {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if db.seq != db.segSnapEnd(t) {
		t.Fatalf("frames after the roll's snapshot: last frame %d, snapshot ends at %d", db.seq, db.segSnapEnd(t))
	}
	db2, err := OpenFile(crashImage(t, dir), FileOptions{SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	l2, _ := db2.Log("a")
	for slot, want := range map[uint64][]byte{1: big('g'), 2: big('h'), 5: []byte("y"), 6: []byte("z"), 7: big('c'), 8: big('d')} {
		if v, err := l2.Get(ctx, slot); err != nil || !bytes.Equal(v, want) {
			t.Fatalf("after the roll, slot %d = %d bytes (%v), want %d", slot, len(v), err, len(want))
		}
	}
}

// segSnapEnd reads the snapshot end from the current segment's header.
func (db *FileDB) segSnapEnd(t *testing.T) uint64 {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(db.dir, segmentName(db.segNo)))
	if err != nil {
		t.Fatal(err)
	}
	body, _, ok := frameAt(data, 0)
	if !ok {
		t.Fatal("no segment header")
	}
	return binary.LittleEndian.Uint64(body[len(segmentMagic)+9:])
}

// TestFileTruncateIsDurableOnReturn: a TruncateBelow to a point that
// memory already has, while the request that moved it is still queued,
// must wait for that request's sync, not return at once.
func TestFileTruncateIsDurableOnReturn(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := OpenFile(dir, FileOptions{SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, _ := db.Log("a")
	for s := range uint64(20) {
		if err := l.Write(ctx, Record{Slot: s, Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	release := holdWriter(t, db)
	cctx, cancel := context.WithCancel(ctx)
	first := make(chan error, 1)
	go func() { first <- l.TruncateBelow(cctx, 10) }()
	waitQueued(t, db, 1)
	cancel() // its caller gives up; the truncation stays queued
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled TruncateBelow = %v", err)
	}
	retry := make(chan error, 1)
	go func() { retry <- l.TruncateBelow(ctx, 10) }()
	select {
	case err := <-retry:
		t.Fatalf("TruncateBelow(10) returned %v while the truncation was not synced", err)
	case <-time.After(50 * time.Millisecond): // it must still be waiting; a wrong early return comes at once
	}
	release()
	if err := <-retry; err != nil {
		t.Fatal(err)
	}
	db2, err := OpenFile(crashImage(t, dir), FileOptions{SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	l2, _ := db2.Log("a")
	if f, err := l2.First(ctx); err != nil || f != 10 {
		t.Fatalf("after the crash, First() = %d, %v; want 10", f, err)
	}
}

// TestFileDamagedSnapshotIsCorrupt: snapshot frames are synced before the
// segment is renamed into place, so damage to the last of them is not a
// torn write to drop but corruption to report.
func TestFileDamagedSnapshotIsCorrupt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := OpenFile(dir, FileOptions{SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := db.Log("a")
	b, _ := db.Log("b")
	for _, w := range []struct {
		l Log
		r Record
	}{{a, Record{Slot: 1, Value: []byte("acked-a")}}, {b, Record{Slot: 1, Value: []byte("acked-b")}}, {a, Record{Slot: 2, Value: make([]byte, 1<<20)}}} {
		if err := w.l.Write(ctx, w.r); err != nil { // the last one rolls
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, segmentName(2))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off, last := 0, 0
	for {
		body, _, ok := frameAt(data, off)
		if !ok {
			break
		}
		last = off
		off += frameHeaderLen + len(body)
	}
	data[last+frameHeaderLen+3] ^= 1 // in log "b"'s snapshot chunk, the last frame
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFile(dir, FileOptions{SegmentSize: 1 << 20}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OpenFile with a damaged snapshot = %v, want ErrCorrupt", err)
	}
}

// TestFrameAtHugeLength: a length field of 2^31 or more is refused, on
// every architecture (on 32-bit it once turned negative and panicked).
func TestFrameAtHugeLength(t *testing.T) {
	data := appendFrameHeader(nil, 2, 0)
	binary.LittleEndian.PutUint32(data, 0x80000010)
	data = append(data, make([]byte, 64)...)
	if _, _, ok := frameAt(data, 0); ok {
		t.Fatal("a frame with a 2 GiB length was accepted")
	}
}

// FuzzFileReplay opens a segment of a valid header followed by arbitrary
// bytes: OpenFile must not panic, and fails only with ErrCorrupt.
func FuzzFileReplay(f *testing.F) {
	ops := appendOpSet(appendOpLog(nil, "a"), 5, []byte("hello"))
	frame := appendFrameHeader(nil, 2, len(ops))
	frame = append(frame, ops...)
	sealFrame(frame)
	f.Add(frame)
	f.Add(append(frame, 1, 2, 3))
	f.Add([]byte{2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, rest []byte) {
		seg := appendFrameHeader(nil, 1, segmentHeaderLen)
		seg = appendSegmentHeader(seg, 1, 1)
		sealFrame(seg)
		seg = append(seg, rest...)
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segmentName(1)), seg, 0o644); err != nil {
			t.Fatal(err)
		}
		db, err := OpenFile(dir, FileOptions{SegmentSize: 1 << 20})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("OpenFile = %v, want nil or ErrCorrupt", err)
			}
			return
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	})
}
