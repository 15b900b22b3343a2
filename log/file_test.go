package log_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/synod-go/synod/log"
	"github.com/synod-go/synod/log/logtest"
)

// testSegment is the segment size of most FileDB tests: the smallest
// allowed, so that they roll often and zero little.
const testSegment = 1 << 20

func openFileDB(t testing.TB, dir string, opts log.FileOptions) *log.FileDB {
	t.Helper()
	if opts.SegmentSize == 0 {
		opts.SegmentSize = testSegment
	}
	db, err := log.OpenFile(dir, opts)
	if err != nil {
		t.Fatalf("OpenFile(%q): %v", dir, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func openFileLog(t testing.TB, db *log.FileDB, name string) log.Log {
	t.Helper()
	l, err := db.Log(name)
	if err != nil {
		t.Fatalf("Log(%q): %v", name, err)
	}
	return l
}

// ownedFileLog is a Log whose Close also closes its FileDB.
type ownedFileLog struct {
	log.Log
	db *log.FileDB
}

func (o ownedFileLog) Close() error {
	err := o.Log.Close()
	if dbErr := o.db.Close(); err == nil && !errors.Is(dbErr, log.ErrClosed) {
		err = dbErr
	}
	return err
}

func (o ownedFileLog) Stats() log.Stats { return o.db.Stats() }

func TestFileConformance(t *testing.T) {
	logtest.RunPersistent(t, func(t *testing.T, dir string) log.Log {
		db := openFileDB(t, dir, log.FileOptions{})
		return ownedFileLog{Log: openFileLog(t, db, "accepted"), db: db}
	})
}

// TestFileConformanceSharedDB runs the suite on a Log that shares its
// database with Logs holding records at the same slots.
func TestFileConformanceSharedDB(t *testing.T) {
	logtest.Run(t, func(t *testing.T) log.Log {
		db := openFileDB(t, t.TempDir(), log.FileOptions{})
		ctx := context.Background()
		for _, p := range []string{"a", "acceptedX", "accepte", "b"} {
			n := openFileLog(t, db, p)
			var recs []log.Record
			for _, s := range []uint64{0, 1, 2, 3, 5, 7, 50, 99, 300, 1000, 1 << 40, ^uint64(0)} {
				recs = append(recs, log.Record{Slot: s, Value: []byte("noise from " + p)})
			}
			if err := n.Write(ctx, recs...); err != nil {
				t.Fatal(err)
			}
			if err := n.TruncateBelow(ctx, 1); err != nil {
				t.Fatal(err)
			}
		}
		return openFileLog(t, db, "accepted")
	})
}

func BenchmarkFile(b *testing.B) {
	logtest.Bench(b, func(b *testing.B) log.Log {
		db := openFileDB(b, b.TempDir(), log.FileOptions{SegmentSize: log.DefaultSegmentSize})
		return ownedFileLog{Log: openFileLog(b, db, "accepted"), db: db}
	})
}

// model is what a set of Logs should hold.
type model map[string]map[uint64][]byte

func (m model) check(t *testing.T, db *log.FileDB, firsts map[string]uint64, when string) {
	t.Helper()
	ctx := context.Background()
	for name, want := range m {
		l := openFileLog(t, db, name)
		got := map[uint64][]byte{}
		if err := l.Range(ctx, 0, 0, func(r log.Record) error { got[r.Slot] = r.Value; return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: log %q holds %d records, want %d", when, name, len(got), len(want))
		}
		for s, v := range want {
			if !bytes.Equal(got[s], v) {
				t.Fatalf("%s: log %q slot %d = %q, want %q", when, name, s, got[s], v)
			}
		}
		if first, err := l.First(ctx); err != nil || first != firsts[name] {
			t.Fatalf("%s: log %q First() = %d, %v; want %d", when, name, first, err, firsts[name])
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFileRandomOpsSurviveReopen runs random writes, lazy writes and
// truncations on three Logs of one FileDB with small segments (so it rolls
// many times), reopening it now and then, against a model. It prints its
// seed.
func TestFileRandomOpsSurviveReopen(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	dir := t.TempDir()
	ctx := context.Background()
	names := []string{"promise", "accepted", "recorded"}
	want := model{}
	firsts := map[string]uint64{}
	for _, n := range names {
		want[n] = map[uint64][]byte{}
	}
	head := map[string]uint64{}
	for round := range 6 {
		db, err := log.OpenFile(dir, log.FileOptions{SegmentSize: testSegment})
		if err != nil {
			t.Fatalf("round %d: OpenFile: %v", round, err)
		}
		want.check(t, db, firsts, "after reopen")
		logs := map[string]log.Log{}
		for _, n := range names {
			logs[n] = openFileLog(t, db, n)
		}
		for range 400 {
			n := names[rng.Intn(len(names))]
			l := logs[n]
			switch op := rng.Intn(10); {
			case op < 7:
				var recs []log.Record
				for range 1 + rng.Intn(20) {
					var s uint64
					if rng.Intn(4) == 0 && head[n] > firsts[n] {
						s = firsts[n] + uint64(rng.Int63n(int64(head[n]-firsts[n]))) // overwrite
					} else {
						head[n]++
						s = head[n]
					}
					v := make([]byte, rng.Intn(3000))
					rng.Read(v)
					recs = append(recs, log.Record{Slot: s, Value: v})
				}
				var err error
				if op < 2 {
					err = log.WriteLazy(ctx, l, recs...)
				} else {
					err = l.Write(ctx, recs...)
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					if r.Slot >= firsts[n] {
						want[n][r.Slot] = r.Value
					}
				}
			case op < 9:
				if head[n] <= firsts[n] {
					continue
				}
				to := firsts[n] + uint64(rng.Int63n(int64(head[n]-firsts[n])+1))
				if err := l.TruncateBelow(ctx, to); err != nil {
					t.Fatal(err)
				}
				if to > firsts[n] {
					firsts[n] = to
				}
				for s := range want[n] {
					if s < firsts[n] {
						delete(want[n], s)
					}
				}
			default:
				// A write below the truncation point is ignored.
				if firsts[n] > 0 {
					if err := l.Write(ctx, log.Record{Slot: firsts[n] - 1, Value: []byte("below")}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		for _, l := range logs {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}
		want.check(t, db, firsts, "before close")
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
		if len(segs) != 1 {
			t.Fatalf("round %d: %d segment files after Close, want 1: %v", round, len(segs), segs)
		}
	}
}

// segmentFile returns the one segment file of dir.
func segmentFile(t *testing.T, dir string) string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments in %s: %v, %v; want one", dir, segs, err)
	}
	return segs[0]
}

// writeSlots writes slots [from, to) with value "v<slot>", one Write each,
// and closes the database.
func writeSlots(t *testing.T, dir string, from, to uint64) {
	t.Helper()
	db, err := log.OpenFile(dir, log.FileOptions{SegmentSize: testSegment})
	if err != nil {
		t.Fatal(err)
	}
	l := openFileLog(t, db, "accepted")
	for s := from; s < to; s++ {
		if err := l.Write(context.Background(), log.Record{Slot: s, Value: []byte("v" + string(rune('a'+s%26)))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// dataEnd returns the offset just past the last non-zero byte of path.
func dataEnd(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return len(bytes.TrimRight(b, "\x00"))
}

func patch(t *testing.T, path string, off int, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
}

func slotsOf(t *testing.T, dir string) []uint64 {
	t.Helper()
	db := openFileDB(t, dir, log.FileOptions{})
	l := openFileLog(t, db, "accepted")
	var out []uint64
	if err := l.Range(context.Background(), 0, 0, func(r log.Record) error { out = append(out, r.Slot); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFileTornWriteIsDropped damages the last frame the way a crash in the
// middle of its write would (cut short, or its bytes not all on disk) and
// checks that the database opens without it, keeps every earlier write, and
// takes new writes after it.
func TestFileTornWriteIsDropped(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, end int)
	}{
		{"cut", func(t *testing.T, path string, end int) { patch(t, path, end-3, make([]byte, 3)) }},
		{"garbled", func(t *testing.T, path string, end int) { patch(t, path, end-1, []byte{0xff}) }},
		{"garbage after", func(t *testing.T, path string, end int) { patch(t, path, end, []byte("half a frame")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeSlots(t, dir, 0, 10)
			path := segmentFile(t, dir)
			tc.damage(t, path, dataEnd(t, path))
			got := slotsOf(t, dir)
			wantN := 9 // the last write is torn
			if tc.name == "garbage after" {
				wantN = 10
			}
			if len(got) != wantN || got[len(got)-1] != uint64(wantN-1) {
				t.Fatalf("after the torn write: slots %v, want 0..%d", got, wantN-1)
			}
			writeSlots(t, dir, 100, 103)
			if got := slotsOf(t, dir); len(got) != wantN+3 || got[len(got)-1] != 102 {
				t.Fatalf("after writing on: slots %v, want 0..%d and 100..102", got, wantN-1)
			}
		})
	}
}

// TestFileCorruptionIsAnError damages a frame that intact frames follow:
// that is not a torn write but damage, and OpenFile must refuse, naming
// the file, rather than drop acknowledged writes.
func TestFileCorruptionIsAnError(t *testing.T) {
	dir := t.TempDir()
	writeSlots(t, dir, 0, 10)
	path := segmentFile(t, dir)
	end := dataEnd(t, path)
	patch(t, path, end/2, []byte{0xee})
	before, _ := os.ReadFile(path)
	_, err := log.OpenFile(dir, log.FileOptions{SegmentSize: testSegment})
	if !errors.Is(err, log.ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Fatalf("OpenFile of a damaged segment = %v, want ErrCorrupt naming %s", err, path)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("OpenFile changed the damaged segment")
	}
}

func TestFileRejectsForeignDirectories(t *testing.T) {
	t.Run("other files", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := log.OpenFile(dir, log.FileOptions{}); !errors.Is(err, log.ErrNotLog) {
			t.Fatalf("OpenFile = %v, want ErrNotLog", err)
		}
	})
	t.Run("not a segment", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "0000000000000001.wal"), bytes.Repeat([]byte("x"), 100), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := log.OpenFile(dir, log.FileOptions{}); !errors.Is(err, log.ErrNotLog) {
			t.Fatalf("OpenFile = %v, want ErrNotLog", err)
		}
	})
	t.Run("damaged header", func(t *testing.T) {
		dir := t.TempDir()
		writeSlots(t, dir, 0, 1)
		patch(t, segmentFile(t, dir), 28, []byte{0xaa}) // in the segment number: the magic is intact
		if _, err := log.OpenFile(dir, log.FileOptions{}); !errors.Is(err, log.ErrCorrupt) {
			t.Fatalf("OpenFile = %v, want ErrCorrupt", err)
		}
	})
}

func TestFileLockedAndLimits(t *testing.T) {
	dir := t.TempDir()
	db := openFileDB(t, dir, log.FileOptions{})
	if _, err := log.OpenFile(dir, log.FileOptions{}); !errors.Is(err, log.ErrLocked) {
		t.Fatalf("second OpenFile = %v, want ErrLocked", err)
	}
	l := openFileLog(t, db, "accepted")
	if _, err := db.Log("accepted"); err == nil {
		t.Fatal("a second Log of the same name opened")
	}
	err := l.Write(context.Background(), log.Record{Slot: 1, Value: make([]byte, log.MaxFileWrite+1)})
	if !errors.Is(err, log.ErrTooLarge) {
		t.Fatalf("oversized Write = %v, want ErrTooLarge", err)
	}
	if _, err := l.Get(context.Background(), 1); !errors.Is(err, log.ErrNotFound) {
		t.Fatalf("the oversized Write left slot 1: %v", err)
	}
	if _, err := log.OpenFile(t.TempDir(), log.FileOptions{SegmentSize: 1000}); err == nil {
		t.Fatal("a 1000-byte SegmentSize was accepted")
	}
}

// TestFileLargeSnapshotGrowsSegment keeps more live data than half a
// segment, so a roll must make a larger segment, and checks it all comes
// back.
func TestFileLargeSnapshotGrowsSegment(t *testing.T) {
	dir := t.TempDir()
	db := openFileDB(t, dir, log.FileOptions{})
	l := openFileLog(t, db, "accepted")
	ctx := context.Background()
	v := bytes.Repeat([]byte("z"), 100<<10)
	for s := range uint64(30) { // 3 MB live in 1 MiB segments
		if err := l.Write(ctx, log.Record{Slot: s, Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if got := slotsOf(t, dir); len(got) != 30 {
		t.Fatalf("after reopen: %d slots, want 30", len(got))
	}
	if fi, err := os.Stat(segmentFile(t, dir)); err != nil || fi.Size() < 3<<20 {
		t.Fatalf("segment: %v, %v; want at least 3 MiB", fi, err)
	}
}
