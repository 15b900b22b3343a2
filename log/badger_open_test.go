package log_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/synod-go/synod/log"
)

// snapshotDir returns the names and contents of the regular files in dir,
// to check that a failed open changed nothing.
func snapshotDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := make(map[string][]byte)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			out[e.Name()] = nil
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func checkUnchanged(t *testing.T, dir string, before map[string][]byte) {
	t.Helper()
	after := snapshotDir(t, dir)
	for name, b := range before {
		a, ok := after[name]
		if !ok {
			t.Errorf("failed open removed %s", name)
		} else if !bytes.Equal(a, b) {
			t.Errorf("failed open changed %s", name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok && name != "LOCK" {
			t.Errorf("failed open created %s", name)
		}
	}
}

// writeSample creates a database in dir holding a few records, and closes it.
func writeSample(t *testing.T, dir string, opts log.BadgerOptions) {
	t.Helper()
	db, err := log.OpenBadger(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := db.Log("accepted")
	if err != nil {
		t.Fatal(err)
	}
	for s := range uint64(20) {
		if err := l.Write(context.Background(), log.Record{Slot: s, Value: []byte("sample")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBadgerLocked(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir, log.BadgerOptions{})
	_, err := log.OpenBadger(dir, log.BadgerOptions{})
	if !errors.Is(err, log.ErrLocked) {
		t.Fatalf("second OpenBadger of an open directory = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name the directory", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir, log.BadgerOptions{})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBadgerIdentity(t *testing.T) {
	dir := t.TempDir()
	writeSample(t, dir, log.BadgerOptions{Identity: "cluster-x/node-3"})

	_, err := log.OpenBadger(dir, log.BadgerOptions{Identity: "cluster-x/node-4"})
	if !errors.Is(err, log.ErrIdentityMismatch) {
		t.Fatalf("OpenBadger as another node = %v, want ErrIdentityMismatch", err)
	}
	for _, name := range []string{"cluster-x/node-3", "cluster-x/node-4"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %q", err, name)
		}
	}
	// The same identity, and no identity, open it.
	for _, id := range []string{"cluster-x/node-3", ""} {
		db, err := log.OpenBadger(dir, log.BadgerOptions{Identity: id})
		if err != nil {
			t.Fatalf("OpenBadger with identity %q: %v", id, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// A database made without an identity adopts the first one given.
	dir = t.TempDir()
	writeSample(t, dir, log.BadgerOptions{})
	writeSample(t, dir, log.BadgerOptions{Identity: "cluster-y/node-1"})
	if _, err := log.OpenBadger(dir, log.BadgerOptions{Identity: "cluster-y/node-2"}); !errors.Is(err, log.ErrIdentityMismatch) {
		t.Fatalf("OpenBadger after adoption as another node = %v, want ErrIdentityMismatch", err)
	}
}

func TestBadgerCorruptManifest(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(b []byte) []byte
	}{
		{"Garbage", func(b []byte) []byte { return bytes.Repeat([]byte("garbage!"), 64) }},
		{"Empty", func(b []byte) []byte { return nil }},
		{"Short", func(b []byte) []byte { return b[:5] }},
		{"FlippedBody", func(b []byte) []byte {
			b = bytes.Clone(b)
			for i := 12; i < len(b); i += 7 {
				b[i] ^= 0x5A
			}
			return b
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeSample(t, dir, log.BadgerOptions{})
			path := filepath.Join(dir, "MANIFEST")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.corrupt(b), 0o600); err != nil {
				t.Fatal(err)
			}
			before := snapshotDir(t, dir)
			db, err := log.OpenBadger(dir, log.BadgerOptions{})
			if err == nil {
				_ = db.Close()
				t.Fatal("OpenBadger of a corrupt directory succeeded")
			}
			if !errors.Is(err, log.ErrCorrupt) {
				t.Fatalf("OpenBadger of a corrupt MANIFEST = %v, want ErrCorrupt", err)
			}
			t.Logf("error: %v", err)
			checkUnchanged(t, dir, before)
		})
	}
}

func TestBadgerMissingManifest(t *testing.T) {
	dir := t.TempDir()
	writeSample(t, dir, log.BadgerOptions{})
	if err := os.Remove(filepath.Join(dir, "MANIFEST")); err != nil {
		t.Fatal(err)
	}
	before := snapshotDir(t, dir)
	if _, err := log.OpenBadger(dir, log.BadgerOptions{}); !errors.Is(err, log.ErrCorrupt) {
		t.Fatalf("OpenBadger without MANIFEST = %v, want ErrCorrupt", err)
	}
	checkUnchanged(t, dir, before)
}

func TestBadgerNotALog(t *testing.T) {
	t.Run("OtherFiles", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("keep me"), 0o600); err != nil {
			t.Fatal(err)
		}
		before := snapshotDir(t, dir)
		_, err := log.OpenBadger(dir, log.BadgerOptions{})
		if !errors.Is(err, log.ErrNotLog) {
			t.Fatalf("OpenBadger of a directory of other files = %v, want ErrNotLog", err)
		}
		if !strings.Contains(err.Error(), "notes.txt") {
			t.Errorf("error %q does not name what it found", err)
		}
		checkUnchanged(t, dir, before)
	})
	t.Run("OtherBadger", func(t *testing.T) {
		dir := t.TempDir()
		other, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) }); err != nil {
			t.Fatal(err)
		}
		if err := other.Close(); err != nil {
			t.Fatal(err)
		}
		before := snapshotDir(t, dir)
		_, err = log.OpenBadger(dir, log.BadgerOptions{})
		if !errors.Is(err, log.ErrNotLog) {
			t.Fatalf("OpenBadger of another application's Badger database = %v, want ErrNotLog", err)
		}
		checkUnchanged(t, dir, before)
	})
	t.Run("File", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := log.OpenBadger(path, log.BadgerOptions{}); !errors.Is(err, log.ErrNotLog) {
			t.Fatalf("OpenBadger of a regular file = %v, want ErrNotLog", err)
		}
	})
	t.Run("NewSubdirectory", func(t *testing.T) {
		// A missing directory is created, parents included.
		dir := filepath.Join(t.TempDir(), "a", "b")
		db := openDB(t, dir, log.BadgerOptions{})
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestBadgerUnreadableDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any directory")
	}
	dir := t.TempDir()
	writeSample(t, dir, log.BadgerOptions{})
	if err := os.Chmod(dir, 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	if _, err := log.OpenBadger(dir, log.BadgerOptions{}); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("OpenBadger of an unreadable directory = %v, want fs.ErrPermission", err)
	}
}

// lineCounter is a slog.Handler that counts records.
type lineCounter struct {
	mu    sync.Mutex
	lines int
}

func (h *lineCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *lineCounter) Handle(context.Context, slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lines++
	return nil
}
func (h *lineCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *lineCounter) WithGroup(string) slog.Handler      { return h }

func TestBadgerLogger(t *testing.T) {
	h := &lineCounter{}
	db := openDB(t, t.TempDir(), log.BadgerOptions{Logger: slog.New(h)})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lines == 0 {
		t.Error("Badger logged nothing through BadgerOptions.Logger")
	}
}

// TestBadgerCorruptFiles damages each kind of file Badger keeps and checks
// that nothing panics and no wrong value is ever returned: either the open
// fails with ErrCorrupt, or every read returns the value written or
// ErrCorrupt.
func TestBadgerCorruptFiles(t *testing.T) {
	damages := []struct {
		name string
		fn   func([]byte) []byte
	}{
		{"Garbage", func(b []byte) []byte { return bytes.Repeat([]byte("garbage!"), len(b)/8+1) }},
		{"Truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"Flipped", func(b []byte) []byte {
			for i := 0; i < len(b); i += 97 {
				b[i] ^= 0xFF
			}
			return b
		}},
	}
	want := func(s uint64) []byte { return bytes.Repeat([]byte{byte(s)}, int(s*50)) }
	for _, pattern := range []string{"*.sst", "*.vlog", "KEYREGISTRY", "DISCARD"} {
		for _, d := range damages {
			t.Run(strings.TrimPrefix(pattern, "*.")+"/"+d.name, func(t *testing.T) {
				dir := t.TempDir()
				db, err := log.OpenBadger(dir, log.BadgerOptions{})
				if err != nil {
					t.Fatal(err)
				}
				l := openLog(t, db, "p")
				// Values from 0 to 15 KB: the small ones inline in the
				// tables, the others in the value log.
				for s := range uint64(300) {
					if err := l.Write(context.Background(), log.Record{Slot: s, Value: want(s)}); err != nil {
						t.Fatal(err)
					}
				}
				if err := db.Close(); err != nil { // flushes the memtable to a table
					t.Fatal(err)
				}
				files, err := filepath.Glob(filepath.Join(dir, pattern))
				if err != nil || len(files) == 0 {
					t.Fatalf("no %s in %s (%v)", pattern, dir, err)
				}
				for _, f := range files {
					b, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(f, d.fn(b), 0o600); err != nil {
						t.Fatal(err)
					}
				}

				db, err = log.OpenBadger(dir, log.BadgerOptions{})
				if err != nil {
					if !errors.Is(err, log.ErrCorrupt) {
						t.Fatalf("OpenBadger = %v, want nil or ErrCorrupt", err)
					}
					t.Logf("open: %v", err)
					return
				}
				defer db.Close()
				l, err = db.Log("p")
				if err != nil {
					if !errors.Is(err, log.ErrCorrupt) {
						t.Fatalf("Log = %v, want nil or ErrCorrupt", err)
					}
					return
				}
				n := 0
				err = l.Range(context.Background(), 0, 0, func(r log.Record) error {
					n++
					if !bytes.Equal(r.Value, want(r.Slot)) {
						t.Errorf("slot %d: read %d wrong bytes", r.Slot, len(r.Value))
					}
					return nil
				})
				if err != nil && !errors.Is(err, log.ErrCorrupt) {
					t.Fatalf("Range = %v, want nil or ErrCorrupt", err)
				}
				t.Logf("read %d records, then %v", n, err)
			})
		}
	}
}
