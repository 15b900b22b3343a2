package log

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func TestRecordKeyOrder(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	edges := []uint64{0, 1, 255, 256, 1<<32 - 1, 1 << 32, 1<<63 - 1, 1 << 63, math.MaxUint64 - 1, math.MaxUint64}
	slot := func() uint64 {
		if rng.IntN(3) == 0 {
			return edges[rng.IntN(len(edges))]
		}
		return rng.Uint64() >> rng.IntN(64)
	}
	prefixes := []string{"a", "ab", "b", "accepted", "accepte", "accepted2", "promise", "\xff", "a\x01", "a/b"}
	for range 20_000 {
		p1, p2 := prefixes[rng.IntN(len(prefixes))], prefixes[rng.IntN(len(prefixes))]
		s1, s2 := slot(), slot()
		checkKeyPair(t, p1, s1, p2, s2)
	}
}

// checkKeyPair checks the properties of the key encoding for two records.
func checkKeyPair(t *testing.T, p1 string, s1 uint64, p2 string, s2 uint64) {
	t.Helper()
	kp1, kp2 := keyPrefix(p1), keyPrefix(p2)
	k1, k2 := recordKey(kp1, s1), recordKey(kp2, s2)
	// Round trip.
	if got, ok := parseRecordKey(kp1, k1); !ok || got != s1 {
		t.Fatalf("parseRecordKey(recordKey(%q, %d)) = %d, %v", p1, s1, got, ok)
	}
	// Keys of different records differ.
	if (p1 != p2 || s1 != s2) && bytes.Equal(k1, k2) {
		t.Fatalf("records (%q, %d) and (%q, %d) share key %x", p1, s1, p2, s2, k1)
	}
	if p1 == p2 {
		// Within a prefix, byte order is slot order.
		if c := bytes.Compare(k1, k2); c != cmpUint(s1, s2) {
			t.Fatalf("prefix %q: keys of slots %d and %d compare %d", p1, s1, s2, c)
		}
		return
	}
	// A key of one prefix never looks like a key of another, and a prefix
	// scan of one never sees the other's keys.
	if _, ok := parseRecordKey(kp1, k2); ok {
		t.Fatalf("key of (%q, %d) parses under prefix %q", p2, s2, p1)
	}
	if bytes.HasPrefix(k2, kp1) {
		t.Fatalf("key of (%q, %d) is inside the scan range of prefix %q", p2, s2, p1)
	}
	// Metadata keys are outside every prefix.
	for _, m := range [][]byte{metaFormat, metaIdentity, metaFlush, firstKey(p1)} {
		if bytes.HasPrefix(m, kp1) || bytes.HasPrefix(m, kp2) {
			t.Fatalf("metadata key %q is inside the scan range of %q or %q", m, p1, p2)
		}
	}
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func FuzzRecordKey(f *testing.F) {
	f.Add("a", uint64(1), "ab", uint64(0))
	f.Add("accepted", uint64(math.MaxUint64), "accepted", uint64(255))
	f.Add("a", uint64(256), "a", uint64(255))
	f.Fuzz(func(t *testing.T, p1 string, s1 uint64, p2 string, s2 uint64) {
		if validatePrefix(p1) != nil || validatePrefix(p2) != nil {
			return
		}
		checkKeyPair(t, p1, s1, p2, s2)
	})
}

func FuzzParseRecordKey(f *testing.F) {
	f.Add([]byte("a\x00\x00\x00\x00\x00\x00\x00\x00\x01"))
	f.Add([]byte("a\x00\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, key []byte) {
		kp := keyPrefix("a")
		s, ok := parseRecordKey(kp, key) // must not panic
		if ok && !bytes.Equal(recordKey(kp, s), key) {
			t.Fatalf("parseRecordKey(%x) = %d, which encodes differently", key, s)
		}
		_, _ = decodeSlot(key)
		_, _ = decodeFormat(key)
		if v, ok := checkValue(key); ok && !bytes.Equal(appendValue(nil, v), key) {
			t.Fatalf("checkValue(%x) accepted a value that encodes differently", key)
		}
	})
}

func TestValueChecksum(t *testing.T) {
	for _, v := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte("abc"), 1000)} {
		stored := appendValue(nil, v)
		got, ok := checkValue(stored)
		if !ok || !bytes.Equal(got, v) {
			t.Fatalf("checkValue(appendValue(%q)) = %q, %v", v, got, ok)
		}
		for i := range stored {
			bad := bytes.Clone(stored)
			bad[i] ^= 0x01
			if _, ok := checkValue(bad); ok {
				t.Fatalf("checkValue accepted %q with byte %d flipped", v, i)
			}
		}
	}
	if _, ok := checkValue(nil); ok {
		t.Fatal("checkValue accepted an empty stored value (what Badger returns for an unreadable one)")
	}
}

func TestValidatePrefix(t *testing.T) {
	for _, p := range []string{"a", "promise", "accepted", "recorded", "node-3/accepted", strings.Repeat("x", maxPrefixLen)} {
		if err := validatePrefix(p); err != nil {
			t.Errorf("validatePrefix(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"", "\x00", "a\x00", "\x00a", "!badger!head", strings.Repeat("x", maxPrefixLen+1)} {
		if err := validatePrefix(p); err == nil {
			t.Errorf("validatePrefix(%q) = nil, want an error", p)
		}
	}
}

// rawSet writes key=value into an open database, behind the Logs' backs.
func rawSet(t *testing.T, db *BadgerDB, key, value []byte) {
	t.Helper()
	if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Set(key, value) }); err != nil {
		t.Fatal(err)
	}
}

func TestBadgerBadMetadata(t *testing.T) {
	tests := []struct {
		name  string
		key   []byte
		value []byte
		want  error
	}{
		{"NewerFormat", metaFormat, encodeFormat(formatVersion + 1), ErrNotLog},
		{"MalformedFormat", metaFormat, []byte("synod-log\x00"), ErrCorrupt},
		{"ForeignFormat", metaFormat, []byte("something-else"), ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db, err := OpenBadger(dir, BadgerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			rawSet(t, db, tc.key, tc.value)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			_, err = OpenBadger(dir, BadgerOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("OpenBadger = %v, want %v", err, tc.want)
			}
		})
	}

	t.Run("KeysWithoutMarker", func(t *testing.T) {
		dir := t.TempDir()
		db, err := OpenBadger(dir, BadgerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rawSet(t, db, []byte("x\x00stray"), []byte("v"))
		if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Delete(metaFormat) }); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenBadger(dir, BadgerOptions{}); !errors.Is(err, ErrNotLog) {
			t.Fatalf("OpenBadger of keys without a marker = %v, want ErrNotLog", err)
		}
	})

	t.Run("BadTruncationPoint", func(t *testing.T) {
		db, err := OpenBadger(t.TempDir(), BadgerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rawSet(t, db, firstKey("p"), []byte{1, 2, 3})
		if _, err := db.Log("p"); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Log with a 3-byte truncation point = %v, want ErrCorrupt", err)
		}
		// The failed open did not keep the prefix.
		rawSet(t, db, firstKey("p"), encodeSlot(5))
		if _, err := db.Log("p"); err != nil {
			t.Fatalf("Log after repair: %v", err)
		}
	})

	t.Run("MalformedRecordKey", func(t *testing.T) {
		db, err := OpenBadger(t.TempDir(), BadgerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rawSet(t, db, []byte("p\x00short"), []byte("v"))
		l, err := db.Log("p")
		if err != nil {
			t.Fatal(err)
		}
		err = l.Range(context.Background(), 0, 0, func(Record) error { return nil })
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Range over a malformed key = %v, want ErrCorrupt", err)
		}
		if _, err := l.Last(context.Background()); err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotFound) {
			t.Fatalf("Last over a malformed key = %v", err)
		}
		// Truncation past it removes it.
		if err := l.TruncateBelow(context.Background(), math.MaxUint64); err != nil {
			t.Fatal(err)
		}
		if err := l.Range(context.Background(), 0, 0, func(Record) error { return nil }); err != nil {
			t.Fatalf("Range after truncation: %v", err)
		}
	})
}

func TestBadgerLeftoversDeletedOnOpen(t *testing.T) {
	// A crash between the durable truncation point and the deletion of the
	// records leaves records below it; opening the Log deletes them.
	db, err := OpenBadger(t.TempDir(), BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	kp := keyPrefix("p")
	for s := range uint64(10) {
		rawSet(t, db, recordKey(kp, s), []byte("v"))
	}
	rawSet(t, db, firstKey("p"), encodeSlot(7))
	if _, err := db.Log("p"); err != nil {
		t.Fatal(err)
	}
	n := 0
	err = db.bdb.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = kp
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("%d records stored after opening with truncation point 7, want 3", n)
	}
}
