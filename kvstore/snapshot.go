package kvstore

import (
	"fmt"
	"hash/crc32"

	"github.com/synod-go/synod/internal/wire"
	"github.com/synod-go/synod/paxos"
)

// A snapshot is the machine's state as a sequence of chunks, each decodable
// on its own, so that a snapshot is written, streamed and installed one
// chunk at a time without ever being held whole in memory:
//
//	chunk   := version(1) | index uvarint | record*
//	record  := header | key | session
//	header  := 1 | next uvarint | logTime varint | keys uvarint | sessions uvarint
//	key     := 2 | key bytes | part bytes | more bool
//	session := 3 | id uvarint | lastActive varint | acked uvarint |
//	           count uvarint | executed seqs, delta-encoded uvarints
//
// Chunks are numbered from 0 (index), so a lost, repeated or reordered
// chunk is refused even before the checksum is compared. The header is the
// first record of the first chunk and nowhere else. A
// value longer than a chunk is cut into parts carried by consecutive key
// records of the same key (more is true on all but the last). Sessions come
// from the least to the most recently active. The chunks' CRC-32C, their
// count and their total size travel beside them (in the manifest, or the
// end of a stream), so a snapshot is checked before it is used.
const (
	recHeader  byte = 1
	recKey     byte = 2
	recSession byte = 3

	// minPart is the smallest part a value is cut into when a chunk is
	// nearly full (below it the chunk is sent first).
	minPart = 4 << 10
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// snapshotSum accumulates what checks a snapshot's chunks.
type snapshotSum struct {
	chunks uint64
	bytes  uint64
	crc    uint32
}

func (s *snapshotSum) add(chunk []byte) {
	s.chunks++
	s.bytes += uint64(len(chunk))
	s.crc = crc32.Update(s.crc, crcTable, chunk)
}

// encodeSnapshot encodes f as chunks of about chunkSize bytes (a chunk is
// larger only when one key alone does not fit) and passes each to emit,
// which must not keep it. It stops at emit's first error.
func encodeSnapshot(f *machine, chunkSize int, emit func(chunk []byte) error) error {
	c := &chunker{limit: chunkSize, emit: emit, buf: make([]byte, 0, chunkSize)}
	c.start()
	h := []byte{recHeader}
	h = wire.AppendUvarint(h, uint64(f.next))
	h = wire.AppendVarint(h, f.logTime)
	h = wire.AppendUvarint(h, uint64(len(f.data)))
	h = wire.AppendUvarint(h, uint64(len(f.sessions)))
	if err := c.add(h); err != nil {
		return err
	}
	var rec []byte
	for k, v := range f.data {
		for first := true; first || len(v) > 0; first = false {
			overhead := 1 + wire.BytesLen(len(k)) + wire.UvarintLen(uint64(len(v))) + 1
			room := c.limit - len(c.buf) - overhead
			if room < minPart && room < len(v) && len(c.buf) > c.head {
				if err := c.flush(); err != nil {
					return err
				}
				room = c.limit - len(c.buf) - overhead
			}
			n := min(len(v), max(room, minPart))
			rec = append(rec[:0], recKey)
			rec = wire.AppendString(rec, k)
			rec = wire.AppendBytes(rec, v[:n])
			rec = wire.AppendBool(rec, n < len(v))
			v = v[n:]
			if err := c.add(rec); err != nil {
				return err
			}
		}
	}
	for s := f.oldest; s != nil; s = s.newer {
		rec = append(rec[:0], recSession)
		rec = wire.AppendUvarint(rec, s.id)
		rec = wire.AppendVarint(rec, s.lastActive)
		rec = wire.AppendUvarint(rec, s.acked)
		rec = wire.AppendUvarint(rec, uint64(len(s.executed)))
		prev := s.acked
		for _, q := range s.executed {
			rec = wire.AppendUvarint(rec, q-prev)
			prev = q
		}
		if err := c.add(rec); err != nil {
			return err
		}
	}
	return c.flush()
}

// chunker packs records into chunks.
type chunker struct {
	limit int
	buf   []byte // the chunk being filled, from its version and index
	head  int    // len(buf) with no record yet
	index uint64 // of the chunk being filled
	emit  func([]byte) error
}

func (c *chunker) start() {
	c.buf = wire.AppendUvarint(append(c.buf[:0], opVersion), c.index)
	c.head = len(c.buf)
}

func (c *chunker) add(rec []byte) error {
	if len(c.buf) > c.head && len(c.buf)+len(rec) > c.limit {
		if err := c.flush(); err != nil {
			return err
		}
	}
	c.buf = append(c.buf, rec...)
	return nil
}

func (c *chunker) flush() error {
	if len(c.buf) <= c.head {
		return nil
	}
	err := c.emit(c.buf)
	c.index++
	c.start()
	return err
}

// snapshotDecoder rebuilds a machine from a snapshot's chunks, one at a
// time, checking every rule of the format (the chunks come from disk or
// from a peer).
type snapshotDecoder struct {
	m           *machine
	chunks      uint64 // chunks decoded
	header      bool
	keys, sess  uint64 // declared by the header
	gotKeys     uint64
	partKey     string // the key whose value continues in the next record
	partVal     []byte
	inPart      bool
	lastSession int64
}

func newSnapshotDecoder(ttl int64) *snapshotDecoder {
	return &snapshotDecoder{m: newMachine(ttl)}
}

// add decodes one chunk. The machine keeps no reference to chunk.
func (sd *snapshotDecoder) add(chunk []byte) error {
	d := wire.NewDecoder(chunk)
	if v := d.Byte(); d.Err() == nil && v != opVersion {
		return fmt.Errorf("%w: snapshot chunk version %d", ErrMalformed, v)
	}
	if i := d.Uvarint(); d.Err() == nil && i != sd.chunks {
		return fmt.Errorf("%w: snapshot chunk %d where %d was expected", ErrMalformed, i, sd.chunks)
	}
	if d.Remaining() == 0 && d.Err() == nil {
		return fmt.Errorf("%w: empty snapshot chunk", ErrMalformed)
	}
	sd.chunks++
	for d.Err() == nil && d.Remaining() > 0 {
		tag := d.Byte()
		if !sd.header && tag != recHeader {
			d.Fail(fmt.Errorf("%w: snapshot does not start with a header", ErrMalformed))
			break
		}
		switch tag {
		case recHeader:
			if sd.header {
				d.Fail(fmt.Errorf("%w: second snapshot header", ErrMalformed))
				break
			}
			sd.header = true
			sd.m.next = paxos.Slot(d.Uvarint())
			sd.m.logTime = d.Varint()
			sd.keys = d.Uvarint()
			sd.sess = d.Uvarint()
		case recKey:
			sd.key(d)
		case recSession:
			sd.session(d)
		default:
			d.Fail(fmt.Errorf("%w: snapshot record tag %d", ErrMalformed, tag))
		}
	}
	if err := d.Err(); err != nil {
		return fmt.Errorf("%w: snapshot: %w", ErrMalformed, err)
	}
	return nil
}

func (sd *snapshotDecoder) key(d *wire.Decoder) {
	k := d.Bytes()
	part := d.Bytes()
	more := d.Bool()
	if d.Err() != nil {
		return
	}
	switch {
	case sd.inPart && string(k) != sd.partKey:
		d.Fail(fmt.Errorf("%w: value of %q interrupted", ErrMalformed, sd.partKey))
		return
	case !sd.inPart && len(sd.m.sessions) > 0:
		d.Fail(fmt.Errorf("%w: key after sessions", ErrMalformed))
		return
	case !sd.inPart:
		if _, dup := sd.m.data[string(k)]; dup {
			d.Fail(fmt.Errorf("%w: key %q twice", ErrMalformed, k))
			return
		}
		if sd.gotKeys >= sd.keys {
			d.Fail(fmt.Errorf("%w: more keys than the %d declared", ErrMalformed, sd.keys))
			return
		}
		sd.partKey, sd.partVal, sd.inPart = string(k), nil, true
	}
	sd.partVal = append(sd.partVal, part...)
	if more {
		return
	}
	v := sd.partVal
	if cap(v) > len(v)+len(v)/8 {
		v = append([]byte(nil), v...)
	}
	sd.m.data[sd.partKey] = v
	sd.gotKeys++
	sd.partKey, sd.partVal, sd.inPart = "", nil, false
}

func (sd *snapshotDecoder) session(d *wire.Decoder) {
	if sd.inPart {
		d.Fail(fmt.Errorf("%w: value of %q interrupted", ErrMalformed, sd.partKey))
		return
	}
	s := &session{id: d.Uvarint(), lastActive: d.Varint(), acked: d.Uvarint()}
	n := d.Count(1, maxTracked)
	if n > 0 {
		s.executed = make([]uint64, 0, n)
	}
	prev := s.acked
	for i := range n {
		delta := d.Uvarint()
		if d.Err() != nil {
			return
		}
		if (i > 0 && delta == 0) || prev+delta < prev {
			d.Fail(fmt.Errorf("%w: session %d: executed seqs not increasing", ErrMalformed, s.id))
			return
		}
		prev += delta
		s.executed = append(s.executed, prev)
	}
	switch {
	case d.Err() != nil:
		return
	case sd.m.sessions[s.id] != nil:
		d.Fail(fmt.Errorf("%w: session %d twice", ErrMalformed, s.id))
	case uint64(len(sd.m.sessions)) >= sd.sess:
		d.Fail(fmt.Errorf("%w: more sessions than the %d declared", ErrMalformed, sd.sess))
	case len(sd.m.sessions) > 0 && s.lastActive < sd.lastSession:
		d.Fail(fmt.Errorf("%w: sessions out of order", ErrMalformed))
	default:
		sd.m.sessions[s.id] = s
		sd.m.link(s)
		sd.lastSession = s.lastActive
	}
}

// finish returns the machine once every chunk was added.
func (sd *snapshotDecoder) finish() (*machine, error) {
	switch {
	case !sd.header:
		return nil, fmt.Errorf("%w: snapshot has no header", ErrMalformed)
	case sd.inPart:
		return nil, fmt.Errorf("%w: snapshot ends inside the value of %q", ErrMalformed, sd.partKey)
	case sd.gotKeys != sd.keys || uint64(len(sd.m.sessions)) != sd.sess:
		return nil, fmt.Errorf("%w: snapshot has %d keys and %d sessions, header says %d and %d",
			ErrMalformed, sd.gotKeys, len(sd.m.sessions), sd.keys, sd.sess)
	}
	return sd.m, nil
}
