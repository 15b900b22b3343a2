package log

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The FileDB's format.
//
// A database directory holds segment files named by their number in
// hexadecimal ("%016x.wal"), the LOCK file, and at times "spare.tmp" (the
// next segment, being zeroed). Only the newest segment is live: each one
// starts with a snapshot of every Log, so older ones are deleted once a new
// one is in place (and, should a crash leave them, at the next open).
//
// A segment is a sequence of frames, then zeros to its preallocated end:
//
//	[0:4]   body length (little endian)
//	[4:8]   CRC-32C of bytes [8:16+length)
//	[8:16]  sequence number: one more than the previous frame's
//	[16:]   body
//
// The first frame's body is the segment header: the magic "SYNODWAL", a
// format version byte, the segment's number (8 bytes) and the sequence
// number of the snapshot's last frame (8 bytes; the header's own for a
// segment without a snapshot). The snapshot frames were synced before the
// segment was renamed into place, so damage to any of them is corruption,
// never a torn write. Every other body is a sequence of operations:
//
//	1 (log)       uvarint length, name: the Log the next operations are about
//	2 (set)       uvarint slot, uvarint length, value
//	3 (truncate)  uvarint slot: the Log's truncation point moves up to slot
//
// Replaying the operations of the newest segment in order rebuilds every
// Log. A roll's snapshot holds every request queued when it was taken, and
// those are not written again.
const (
	frameHeaderLen   = 16
	maxFrameBody     = 64 << 20
	snapshotChunk    = 4 << 20
	segmentMagic     = "SYNODWAL"
	segmentVersion   = 1
	segmentHeaderLen = len(segmentMagic) + 1 + 8 + 8
	binaryMaxVarint  = binary.MaxVarintLen64

	opLog      = 1
	opSet      = 2
	opTruncate = 3

	spareName = "spare.tmp"
	lockName  = "LOCK"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func appendFrameHeader(b []byte, seq uint64, bodyLen int) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(bodyLen))
	b = binary.LittleEndian.AppendUint32(b, 0) // sealFrame fills it
	return binary.LittleEndian.AppendUint64(b, seq)
}

// sealFrame computes the checksum of the frame f (header and body).
func sealFrame(f []byte) {
	binary.LittleEndian.PutUint32(f[4:8], crc32.Checksum(f[8:], castagnoli))
}

func appendSegmentHeader(b []byte, no, snapEnd uint64) []byte {
	b = append(b, segmentMagic...)
	b = append(b, segmentVersion)
	b = binary.LittleEndian.AppendUint64(b, no)
	return binary.LittleEndian.AppendUint64(b, snapEnd)
}

func appendOpLog(b []byte, name string) []byte {
	b = append(b, opLog)
	b = binary.AppendUvarint(b, uint64(len(name)))
	return append(b, name...)
}

func appendOpSet(b []byte, slot uint64, value []byte) []byte {
	b = append(b, opSet)
	b = binary.AppendUvarint(b, slot)
	b = binary.AppendUvarint(b, uint64(len(value)))
	return append(b, value...)
}

func appendOpTruncate(b []byte, slot uint64) []byte {
	b = append(b, opTruncate)
	return binary.AppendUvarint(b, slot)
}

// frameAt parses the frame at off in data. It reports the body and the
// frame's sequence number, or ok false if no intact frame starts there.
func frameAt(data []byte, off int) (body []byte, seq uint64, ok bool) {
	if off < 0 || len(data)-off < frameHeaderLen {
		return nil, 0, false
	}
	h := data[off : off+frameHeaderLen]
	n32 := binary.LittleEndian.Uint32(h[0:4])
	if n32 > maxFrameBody || uint64(len(data)-off-frameHeaderLen) < uint64(n32) {
		return nil, 0, false
	}
	n := int(n32)
	f := data[off : off+frameHeaderLen+n]
	if crc32.Checksum(f[8:], castagnoli) != binary.LittleEndian.Uint32(h[4:8]) {
		return nil, 0, false
	}
	return f[frameHeaderLen:], binary.LittleEndian.Uint64(h[8:16]), true
}

// laterFrame reports the offset of an intact frame at or after from whose
// sequence number is above seq, or -1.
func laterFrame(data []byte, from int, seq uint64) int {
	for p := from; p+frameHeaderLen <= len(data); p++ {
		s := binary.LittleEndian.Uint64(data[p+8 : p+16])
		if s <= seq || s-seq > 1<<32 {
			continue
		}
		if _, _, ok := frameAt(data, p); ok {
			return p
		}
	}
	return -1
}

// parseSegmentName returns the number of a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, ".wal")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(hex, 16, 64)
	return n, err == nil
}

// recover finds the newest segment and replays it, or creates the first
// one in an empty directory. It runs inside OpenFile, before any goroutine.
func (db *FileDB) recover() error {
	entries, err := os.ReadDir(db.dir)
	if err != nil {
		return fmt.Errorf("log: file directory: %w", err)
	}
	var segs []uint64
	for _, e := range entries {
		name := e.Name()
		switch n, ok := parseSegmentName(name); {
		case ok && e.Type().IsRegular():
			segs = append(segs, n)
		case name == lockName:
		case name == spareName:
			if err := os.Remove(filepath.Join(db.dir, name)); err != nil {
				return fmt.Errorf("log: removing a leftover spare segment: %w", err)
			}
		default:
			return fmt.Errorf("%w: %q holds %q, which is not a segment of a file log", ErrNotLog, db.dir, name)
		}
	}
	if len(segs) == 0 {
		return db.create()
	}
	slices.Sort(segs)
	newest := segs[len(segs)-1]
	if err := db.replay(newest); err != nil {
		return err
	}
	// Older segments are superseded by the newest one's snapshot (a crash
	// after a roll's rename left them behind).
	for _, n := range segs[:len(segs)-1] {
		if err := os.Remove(filepath.Join(db.dir, segmentName(n))); err != nil {
			return fmt.Errorf("log: removing a superseded segment: %w", err)
		}
	}
	return nil
}

// create writes segment 1, holding only its header, into an empty
// directory.
func (db *FileDB) create() error {
	f, err := createZeroed(filepath.Join(db.dir, spareName), db.opts.SegmentSize)
	if err != nil {
		return err
	}
	buf := appendFrameHeader(nil, 1, segmentHeaderLen)
	buf = appendSegmentHeader(buf, 1, 1)
	sealFrame(buf)
	_, err = f.WriteAt(buf, 0)
	if err == nil {
		err = fdatasync(f)
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(db.dir, segmentName(1)))
	}
	if err == nil {
		err = syncDir(db.dir)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("log: creating the first segment: %w", err)
	}
	db.seg, db.segNo, db.segSize, db.off, db.seq = f, 1, db.opts.SegmentSize, int64(len(buf)), 1
	return nil
}

// replay rebuilds every Log from segment no and opens it for appending.
func (db *FileDB) replay(no uint64) error {
	path := filepath.Join(db.dir, segmentName(no))
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("log: reading segment: %w", err)
	}
	body, seq, ok := frameAt(data, 0)
	switch {
	case !ok && !bytes.HasPrefix(data[min(len(data), frameHeaderLen):], []byte(segmentMagic)):
		return fmt.Errorf("%w: %s does not start with a segment header", ErrNotLog, path)
	case !ok:
		return fmt.Errorf("%w: %s: the segment header fails its checksum", ErrCorrupt, path)
	case len(body) != segmentHeaderLen || string(body[:len(segmentMagic)]) != segmentMagic:
		return fmt.Errorf("%w: %s does not start with a segment header", ErrNotLog, path)
	case body[len(segmentMagic)] != segmentVersion:
		return fmt.Errorf("%w: %s has format version %d; this build reads %d", ErrNotLog, path, body[len(segmentMagic)], segmentVersion)
	case binary.LittleEndian.Uint64(body[len(segmentMagic)+1:]) != no:
		return fmt.Errorf("%w: %s says it is segment %d", ErrCorrupt, path, binary.LittleEndian.Uint64(body[len(segmentMagic)+1:]))
	}
	snapEnd := binary.LittleEndian.Uint64(body[len(segmentMagic)+9:])
	off := frameHeaderLen + len(body)
	for {
		body, s, ok := frameAt(data, off)
		if !ok || s != seq+1 {
			break
		}
		if err := db.apply(body); err != nil {
			return fmt.Errorf("%w: %s, frame at offset %d: %w", ErrCorrupt, path, off, err)
		}
		off += frameHeaderLen + len(body)
		seq = s
	}
	if seq < snapEnd {
		return fmt.Errorf("%w: %s: the snapshot is damaged at offset %d (it ends at frame %d, frame %d is the last intact one)",
			ErrCorrupt, path, off, snapEnd, seq)
	}
	// What follows the last intact frame must be zeros, or a write that a
	// crash cut short: it was never fsynced, so never acknowledged, and
	// nothing intact may follow it.
	tail := data[off:]
	if end := lastNonZero(tail); end >= 0 {
		if p := laterFrame(data, off+1, seq); p >= 0 {
			return fmt.Errorf("%w: %s: a damaged frame at offset %d is followed by an intact one at %d", ErrCorrupt, path, off, p)
		}
		db.logger.Warn("log: dropping a torn write at the end of the file log (never acknowledged)",
			"file", path, "offset", off, "bytes", end+1)
		if err := zeroRange(path, int64(off), int64(off+end+1)); err != nil {
			return fmt.Errorf("log: repairing a torn write: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("log: opening segment: %w", err)
	}
	db.seg, db.segNo, db.segSize, db.off, db.seq = f, no, int64(len(data)), int64(off), seq
	for name, m := range db.mems {
		db.durableFirst[name] = m.first
	}
	return nil
}

// apply replays the operations of one frame body.
func (db *FileDB) apply(body []byte) error {
	var m *Memory
	ctx := context.Background()
	for len(body) > 0 {
		op := body[0]
		body = body[1:]
		switch op {
		case opLog:
			n, k := binary.Uvarint(body)
			if k <= 0 || n == 0 || n > 255 || uint64(len(body)-k) < n {
				return errors.New("bad log name")
			}
			name := string(body[k : k+int(n)])
			body = body[k+int(n):]
			if m = db.mems[name]; m == nil {
				m = NewMemory()
				db.mems[name] = m
			}
		case opSet:
			slot, k := binary.Uvarint(body)
			if k <= 0 {
				return errors.New("bad slot")
			}
			body = body[k:]
			n, k := binary.Uvarint(body)
			if k <= 0 || uint64(len(body)-k) < n {
				return errors.New("bad value length")
			}
			if m == nil {
				return errors.New("a record before any log name")
			}
			if err := m.Write(ctx, Record{Slot: slot, Value: body[k : k+int(n)]}); err != nil {
				return err
			}
			body = body[k+int(n):]
		case opTruncate:
			slot, k := binary.Uvarint(body)
			if k <= 0 {
				return errors.New("bad truncation point")
			}
			body = body[k:]
			if m == nil {
				return errors.New("a truncation before any log name")
			}
			if err := m.TruncateBelow(ctx, slot); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown operation %d", op)
		}
	}
	return nil
}

// lastNonZero returns the index of the last non-zero byte of b, or -1.
func lastNonZero(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != 0 {
			return i
		}
	}
	return -1
}

// zeroRange overwrites [from, to) of the file at path with zeros and
// fdatasyncs it.
func zeroRange(path string, from, to int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	zeros := make([]byte, min(to-from, 1<<20))
	for off := from; off < to; off += int64(len(zeros)) {
		n := min(int64(len(zeros)), to-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
	}
	return fdatasync(f)
}

// createZeroed creates (replacing) the file at path, size bytes of zeros,
// and fsyncs it, so that later writes into it change no file metadata.
func createZeroed(path string, size int64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	zeros := make([]byte, min(size, 1<<20))
	for off := int64(0); off < size; off += int64(len(zeros)) {
		n := min(int64(len(zeros)), size-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			f.Close()
			os.Remove(path)
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return f, nil
}

// syncDir fsyncs a directory, so that renames and removals in it survive.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// spareFile is the next segment, zeroed in the background.
type spareFile struct {
	done chan struct{}
	path string
	size int64
	f    *os.File // set when done, unless err
	err  error
}

// prepareSpare starts zeroing the next segment, of size bytes.
func (db *FileDB) prepareSpare(size int64) {
	s := &spareFile{done: make(chan struct{}), path: filepath.Join(db.dir, spareName), size: size}
	db.spare = s
	go func() {
		defer close(s.done)
		s.f, s.err = createZeroed(s.path, s.size)
	}()
}

// takeSpare returns a zeroed file of at least size bytes, named spareName:
// the spare if it is large enough (waiting for it if it is not ready),
// otherwise a new one.
func (db *FileDB) takeSpare(size int64) (*os.File, error) {
	if s := db.spare; s != nil {
		db.spare = nil
		<-s.done
		if s.err == nil && s.size >= size {
			return s.f, nil
		}
		if s.f != nil {
			s.f.Close()
		}
	}
	return createZeroed(filepath.Join(db.dir, spareName), size)
}

// discard waits for the spare and removes it.
func (s *spareFile) discard() error {
	<-s.done
	if s.f == nil {
		return nil
	}
	s.f.Close()
	return os.Remove(s.path)
}
