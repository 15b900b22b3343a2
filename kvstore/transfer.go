package kvstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/synod-go/synod/internal/wire"
	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/transport"
)

// A snapshot transfer is one stream on RouteSnapshot. Every message is
// version(1) | tag(1) | fields:
//
//	fetcher → server   request 'Q' after uvarint: "a snapshot covering more than the slots below after"
//	server  → fetcher  none    'N'               : nothing newer here
//	                   header  'H' next uvarint  : a snapshot of the slots below next follows
//	                   chunk   'C' chunk bytes   : the next chunk (the rest of the message)
//	                   end     'E' chunks uvarint | bytes uvarint | crc uvarint
//	fetcher → server   ack     'A' chunks uvarint: chunks received so far
//
// The total size is not known up front: chunks come until the end message,
// whose count, size and CRC-32C check them. The server keeps at most
// transferWindow chunks unacknowledged, so a slow fetcher bounds the
// memory of both ends on any transport.
const (
	tagRequest byte = 'Q'
	tagNone    byte = 'N'
	tagHeader  byte = 'H'
	tagChunk   byte = 'C'
	tagEnd     byte = 'E'
	tagAck     byte = 'A'

	transferWindow = 4
)

func transferMsg(tag byte, vals ...uint64) []byte {
	b := []byte{opVersion, tag}
	for _, v := range vals {
		b = wire.AppendUvarint(b, v)
	}
	return b
}

// decodeTransfer decodes a message of one of the tags in want; fields are
// its uvarints (none for a chunk, whose bytes are returned in rest).
func decodeTransfer(msg []byte, want ...byte) (tag byte, fields []uint64, rest []byte, err error) {
	d := wire.NewDecoder(msg)
	if v := d.Byte(); d.Err() == nil && v != opVersion {
		return 0, nil, nil, fmt.Errorf("%w: transfer version %d", ErrMalformed, v)
	}
	tag = d.Byte()
	if d.Err() != nil {
		return 0, nil, nil, fmt.Errorf("%w: transfer message: %w", ErrMalformed, d.Err())
	}
	ok := false
	for _, w := range want {
		ok = ok || w == tag
	}
	if !ok {
		return 0, nil, nil, fmt.Errorf("%w: transfer message %q, want one of %q", ErrMalformed, tag, want)
	}
	n := map[byte]int{tagRequest: 1, tagHeader: 1, tagEnd: 3, tagAck: 1}[tag]
	for range n {
		fields = append(fields, d.Uvarint())
	}
	if tag == tagChunk {
		rest = d.Next(d.Remaining())
		if len(rest) == 0 && d.Err() == nil {
			d.Fail(errors.New("empty chunk"))
		}
	}
	if err := d.Finish(); err != nil {
		return 0, nil, nil, fmt.Errorf("%w: transfer message %q: %w", ErrMalformed, tag, err)
	}
	return tag, fields, rest, nil
}

// serveSnapshot streams this server's newest snapshot to a peer
// (RouteSnapshot).
func (s *Server) serveSnapshot(st transport.Stream) error {
	ctx := st.Context()
	msg, err := st.ReadMsg()
	if err != nil {
		return err
	}
	_, f, _, err := decodeTransfer(msg, tagRequest)
	if err != nil {
		return err
	}
	after := paxos.Slot(f[0])
	m, unpin := s.store.acquire()
	defer unpin()
	if m == nil || m.next <= after {
		return st.WriteMsg(transferMsg(tagNone))
	}
	if err := st.WriteMsg(transferMsg(tagHeader, uint64(m.next))); err != nil {
		return err
	}
	s.logger.Debug("sending snapshot", "slot", m.next, "chunks", m.sum.chunks, "bytes", m.sum.bytes)
	var acked uint64
	buf := []byte{opVersion, tagChunk}
	for i := range m.sum.chunks {
		for i-acked >= transferWindow {
			msg, err := st.ReadMsg()
			if err != nil {
				return err
			}
			_, f, _, err := decodeTransfer(msg, tagAck)
			if err != nil {
				return err
			}
			if f[0] < acked || f[0] > i {
				return fmt.Errorf("%w: ack of %d chunks after %d acked and %d sent", ErrMalformed, f[0], acked, i)
			}
			acked = f[0]
		}
		chunk, err := s.store.chunk(ctx, m, i)
		if err != nil {
			return err
		}
		buf = append(buf[:2], chunk...)
		if err := st.WriteMsg(buf); err != nil {
			return err
		}
	}
	return st.WriteMsg(transferMsg(tagEnd, m.sum.chunks, m.sum.bytes, uint64(m.sum.crc)))
}

// fetch asks peer for a snapshot covering more than the slots below after,
// and installs it. It reports whether one was installed.
func (s *Server) fetch(ctx context.Context, peer string, after paxos.Slot) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idle := s.clock.AfterFunc(s.cfg.FetchTimeout, cancel)
	defer idle.Stop()
	conn, err := s.cfg.Dialer.Dial(ctx, peer)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	st, err := conn.NewStream(ctx, RouteSnapshot)
	if err != nil {
		return false, err
	}
	defer st.Close()
	if err := st.WriteMsg(transferMsg(tagRequest, uint64(after))); err != nil {
		return false, err
	}
	read := func(want ...byte) (byte, []uint64, []byte, error) {
		msg, err := st.ReadMsg()
		if err != nil {
			return 0, nil, nil, err
		}
		idle.Reset(s.cfg.FetchTimeout)
		return decodeTransfer(msg, want...)
	}
	tag, f, _, err := read(tagNone, tagHeader)
	if err != nil || tag == tagNone {
		return false, err
	}
	next := paxos.Slot(f[0])
	if next <= after {
		return false, fmt.Errorf("peer offered a snapshot at %d, not after %d", next, after)
	}
	// Waits for a snapshot of our own being written, if any.
	w := s.store.begin()
	defer w.abort()
	dec := newSnapshotDecoder(s.ttl)
	for {
		tag, f, chunk, err := read(tagChunk, tagEnd)
		if err != nil {
			return false, err
		}
		if tag == tagEnd {
			if got := (snapshotSum{chunks: f[0], bytes: f[1], crc: uint32(f[2])}); got != w.sum || f[2] > 1<<32-1 {
				return false, fmt.Errorf("%w: snapshot from %s: chunks do not match its end (%+v, got %+v)", ErrMalformed, peer, got, w.sum)
			}
			break
		}
		if err := dec.add(chunk); err != nil {
			return false, fmt.Errorf("snapshot from %s: %w", peer, err)
		}
		if err := w.add(ctx, chunk); err != nil {
			return false, err
		}
		// Acks only pace the sender, which may be done sending (and gone)
		// already: a broken stream shows in the next read.
		_ = st.WriteMsg(transferMsg(tagAck, w.sum.chunks))
	}
	m, err := dec.finish()
	if err != nil {
		return false, fmt.Errorf("snapshot from %s: %w", peer, err)
	}
	if m.next != next {
		return false, fmt.Errorf("%w: snapshot from %s: header says slot %d, stream %d", ErrMalformed, peer, m.next, next)
	}
	if _, err := w.commit(ctx, next); err != nil {
		return false, err
	}
	s.install(m)
	return true, nil
}
