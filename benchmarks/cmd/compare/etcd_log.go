package main

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// fileLog is the durable log of an etcd raft node in this benchmark: an
// append-only file of records, written once per Ready batch and made durable
// with one fdatasync per batch that needs it (Ready.MustSync), before the
// batch's messages leave. It plays the part of etcd's WAL: raft itself
// reads the log from a raft.MemoryStorage; the file is only what a restart
// would replay (replay is not implemented: every run starts fresh).
//
// A record is a 4-byte big-endian length of what follows, a 4-byte CRC-32C
// of it, a type byte and the protobuf encoding of an Entry, a HardState or
// a SnapshotMetadata. Later records win over earlier ones with the same
// index, so overwritten entries need no rewrite.
//
// Like etcd's WAL, which preallocates each 64 MB segment with
// fileutil.Preallocate (fallocate, extending the file), the file is
// preallocated 64 MB at a time and written at an offset, so that most
// fdatasyncs need not grow the file.
type fileLog struct {
	f     *os.File
	buf   []byte // the batch being built, reused
	off   int64  // where the next batch goes
	alloc int64  // bytes preallocated
}

// preallocChunk is etcd's WAL segment size (wal.SegmentSizeBytes).
const preallocChunk = 64 << 20

// Record types.
const (
	recordEntry byte = iota + 1
	recordHardState
	recordSnapshot
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// createFileLog creates (or truncates) the log file at path.
func createFileLog(path string) (*fileLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	return &fileLog{f: f}, nil
}

// marshaler is what the raftpb types offer for encoding into a buffer.
type marshaler interface {
	Size() int
	MarshalToSizedBuffer([]byte) (int, error)
}

// save appends the batch's entries, then its HardState and snapshot
// metadata if not empty, in one write, and syncs the file if sync is set.
func (l *fileLog) save(hs raftpb.HardState, entries []raftpb.Entry, snap raftpb.Snapshot, sync bool) error {
	l.buf = l.buf[:0]
	var err error
	for i := range entries {
		if err = l.appendRecord(recordEntry, &entries[i]); err != nil {
			return err
		}
	}
	if !raft.IsEmptyHardState(hs) {
		if err = l.appendRecord(recordHardState, &hs); err != nil {
			return err
		}
	}
	if !raft.IsEmptySnap(snap) {
		if err = l.appendRecord(recordSnapshot, &snap.Metadata); err != nil {
			return err
		}
	}
	if len(l.buf) == 0 {
		return nil
	}
	for l.off+int64(len(l.buf)) > l.alloc {
		if err := preallocate(l.f, l.alloc+preallocChunk); err != nil {
			return err
		}
		l.alloc += preallocChunk
	}
	if _, err := l.f.WriteAt(l.buf, l.off); err != nil {
		return err
	}
	l.off += int64(len(l.buf))
	if sync {
		return fdatasync(l.f)
	}
	return nil
}

func (l *fileLog) appendRecord(typ byte, m marshaler) error {
	size := 1 + m.Size()
	start := len(l.buf)
	l.buf = append(l.buf, make([]byte, 8+size)...)
	body := l.buf[start+8:]
	body[0] = typ
	if _, err := m.MarshalToSizedBuffer(body[1:]); err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	binary.BigEndian.PutUint32(l.buf[start:], uint32(size))
	binary.BigEndian.PutUint32(l.buf[start+4:], crc32.Checksum(body, castagnoli))
	return nil
}

func (l *fileLog) close() error { return l.f.Close() }
