package log

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
)

// Key layout of a Synod Badger database.
//
//	record:           prefix | 0x00 | slot (8 bytes, big-endian)  ->  CRC-32C of value (4 bytes) | value
//	metadata:         0x00 | name
//	truncation point: 0x00 | "first" | 0x00 | prefix  ->  slot (8 bytes, big-endian)
//
// A prefix is non-empty and holds no 0x00 byte, so the first 0x00 of a record
// key ends its prefix: keys of different prefixes never collide ("a" and "ab"
// give "a\x00…" and "ab\x00…"), a prefix scan of "a\x00" never sees "ab", and
// metadata keys (which start with 0x00, the empty prefix) never look like
// records. Big-endian slots make byte order equal slot order within a prefix.
//
// A record's value carries its own checksum because Badger, when it cannot
// read a value back from its value log, logs the error and returns an empty
// value; the checksum turns that (and any other damage) into ErrCorrupt.
const (
	keySep       = 0x00
	slotLen      = 8
	maxPrefixLen = 128
)

// Metadata keys.
var (
	metaFormat   = metaKey("format")
	metaIdentity = metaKey("identity")
	// metaFlush is written and then dropped by CollectGarbage to force
	// Badger to flush its memtables; it holds no state.
	metaFlush = metaKey("flush")
)

func metaKey(name string) []byte { return append([]byte{keySep}, name...) }

// firstKey is the metadata key holding prefix's truncation point.
func firstKey(prefix string) []byte {
	k := append(metaKey("first"), keySep)
	return append(k, prefix...)
}

// validatePrefix reports whether prefix can name a Log in a BadgerDB.
func validatePrefix(prefix string) error {
	switch {
	case prefix == "":
		return fmt.Errorf("log: empty prefix (the empty prefix is reserved)")
	case len(prefix) > maxPrefixLen:
		return fmt.Errorf("log: prefix of %d bytes, longer than %d", len(prefix), maxPrefixLen)
	case strings.IndexByte(prefix, keySep) >= 0:
		return fmt.Errorf("log: prefix %q contains a 0x00 byte", prefix)
	case strings.HasPrefix(prefix, "!badger"):
		return fmt.Errorf("log: prefix %q starts with Badger's reserved \"!badger\"", prefix)
	}
	return nil
}

// keyPrefix returns the bytes every record key of prefix starts with.
func keyPrefix(prefix string) []byte {
	return append([]byte(prefix), keySep)
}

// appendRecordKey appends the key of slot to kp, the result of keyPrefix.
func appendRecordKey(dst, kp []byte, slot uint64) []byte {
	dst = append(dst, kp...)
	return binary.BigEndian.AppendUint64(dst, slot)
}

// recordKey returns the key of slot under kp, the result of keyPrefix.
func recordKey(kp []byte, slot uint64) []byte {
	return appendRecordKey(make([]byte, 0, len(kp)+slotLen), kp, slot)
}

// parseRecordKey returns the slot of key, which must start with kp, the
// result of keyPrefix. It reports false for a key of any other shape.
func parseRecordKey(kp, key []byte) (uint64, bool) {
	if len(key) != len(kp)+slotLen || string(key[:len(kp)]) != string(kp) {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[len(kp):]), true
}

// decodeSlot decodes an 8-byte big-endian slot stored as a value.
func decodeSlot(v []byte) (uint64, bool) {
	if len(v) != slotLen {
		return 0, false
	}
	return binary.BigEndian.Uint64(v), true
}

func encodeSlot(slot uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, slot)
}

const valueCRCLen = 4

// crc32c is CRC-32 with the Castagnoli polynomial, computed in hardware on
// most CPUs. (MakeTable returns the package's shared table for it.)
func crc32c(v []byte) uint32 {
	return crc32.Checksum(v, crc32.MakeTable(crc32.Castagnoli))
}

// appendValue appends the stored form of v: its CRC-32C, then v.
func appendValue(dst, v []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, crc32c(v))
	return append(dst, v...)
}

// checkValue returns the value inside stored, the result of appendValue,
// or false if stored is damaged.
func checkValue(stored []byte) ([]byte, bool) {
	if len(stored) < valueCRCLen {
		return nil, false
	}
	v := stored[valueCRCLen:]
	if crc32c(v) != binary.BigEndian.Uint32(stored) {
		return nil, false
	}
	return v, true
}
