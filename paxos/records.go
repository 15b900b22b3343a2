package paxos

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/synod-go/synod/log"
)

// On-disk record layouts. Every record starts with a format byte so that a
// future layout can be told apart and a corrupt record is reported, not
// misread.
const (
	recordFormat = 1

	flagNoOp   = 1 << 0
	flagChosen = 1 << 1
	// flagRefs marks a recorded-log record that holds no value: every slot
	// from its own up to the end it gives is chosen, and its chosen entry
	// is the one in this node's accepted log (see observer_record.go).
	flagRefs = 1 << 2

	// maxRefSpan bounds the slots one references record covers, so that a
	// corrupt end cannot make a restart walk an absurd range.
	maxRefSpan = 1 << 20

	// Slots of the promise log (a small metadata log).
	metaPromised Slot = 0 // the promised ballot
	metaDone     Slot = 1 // the node's done watermark
)

var errCorruptRecord = errors.New("paxos: corrupt record")

// encodeEntry lays out an accepted or recorded entry: format, flags,
// uvarint ballot, value.
func encodeEntry(e Entry) []byte {
	b := make([]byte, 0, 2+binary.MaxVarintLen64+len(e.Value))
	var flags byte
	if e.NoOp {
		flags |= flagNoOp
	}
	b = append(b, recordFormat, flags)
	b = binary.AppendUvarint(b, uint64(e.Ballot))
	return append(b, e.Value...)
}

func decodeEntry(slot Slot, b []byte) (Entry, error) {
	if len(b) < 3 || b[0] != recordFormat {
		return Entry{}, fmt.Errorf("%w at slot %d: bad header", errCorruptRecord, slot)
	}
	if b[1]&^byte(flagNoOp|flagChosen) != 0 {
		return Entry{}, fmt.Errorf("%w at slot %d: unknown flags %#x", errCorruptRecord, slot, b[1])
	}
	ballot, n := binary.Uvarint(b[2:])
	if n <= 0 {
		return Entry{}, fmt.Errorf("%w at slot %d: bad ballot", errCorruptRecord, slot)
	}
	e := Entry{Slot: slot, Ballot: Ballot(ballot), NoOp: b[1]&flagNoOp != 0}
	if v := b[2+n:]; len(v) > 0 {
		e.Value = v
	}
	return e, nil
}

// encodeRefs lays out a references record covering its slot up to end.
func encodeRefs(end Slot) []byte {
	b := []byte{recordFormat, flagRefs}
	return binary.AppendUvarint(b, uint64(end))
}

// decodeRecorded checks a recorded-log record and returns the end of the
// range it covers: slot+1 for a copy of a chosen entry, end for a
// references record covering [slot, end).
func decodeRecorded(slot Slot, b []byte) (end Slot, refs bool, err error) {
	if len(b) >= 2 && b[0] == recordFormat && b[1] == flagRefs {
		v, n := binary.Uvarint(b[2:])
		if n <= 0 || 2+n != len(b) {
			return 0, false, fmt.Errorf("%w at slot %d: bad references record", errCorruptRecord, slot)
		}
		if v <= uint64(slot) || v-uint64(slot) > maxRefSpan {
			return 0, false, fmt.Errorf("%w at slot %d: references up to %d", errCorruptRecord, slot, v)
		}
		return Slot(v), true, nil
	}
	if _, err := decodeEntry(slot, b); err != nil {
		return 0, false, err
	}
	return slot + 1, false, nil
}

func encodeUint(v uint64) []byte {
	b := []byte{recordFormat}
	return binary.AppendUvarint(b, v)
}

func decodeUint(slot Slot, b []byte) (uint64, error) {
	if len(b) < 2 || b[0] != recordFormat {
		return 0, fmt.Errorf("%w: meta slot %d: bad header", errCorruptRecord, slot)
	}
	v, n := binary.Uvarint(b[1:])
	if n <= 0 || 1+n != len(b) {
		return 0, fmt.Errorf("%w: meta slot %d: bad value", errCorruptRecord, slot)
	}
	return v, nil
}

func entryRecord(e Entry) log.Record { return log.Record{Slot: uint64(e.Slot), Value: encodeEntry(e)} }

// maxWriteBytes bounds one Log.Write: a backend may refuse very large
// atomic writes (log.Badger's limit is a fraction of its memtable), and a
// group commit can merge many requests. Values at or above bigValue are
// stored out of line by Badger and barely count.
const (
	maxWriteBytes = 256 << 10
	bigValue      = 4 << 10
)

// writeChunked writes recs in as few Writes as fit maxWriteBytes each. The
// records of one chunk are atomic; nothing here needs more (a request is
// acknowledged only after all of its chunks are written).
func writeChunked(ctx context.Context, l log.Log, recs []log.Record) error {
	return chunked(ctx, l.Write, recs)
}

// chunked calls write for recs in as few calls as fit maxWriteBytes each.
func chunked(ctx context.Context, write func(context.Context, ...log.Record) error, recs []log.Record) error {
	start, size := 0, 0
	for i, r := range recs {
		n := 32
		if len(r.Value) < bigValue {
			n += len(r.Value)
		}
		if size+n > maxWriteBytes && i > start {
			if err := write(ctx, recs[start:i]...); err != nil {
				return err
			}
			start, size = i, 0
		}
		size += n
	}
	if start < len(recs) {
		return write(ctx, recs[start:]...)
	}
	return nil
}
