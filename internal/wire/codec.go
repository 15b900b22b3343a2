package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// Errors returned by decoding (and, for ErrTooLarge and ErrMalformed, by
// encoding). They are wrapped with the offset, and for protocol messages the
// field, where the input went wrong; test them with errors.Is.
//
// A decoding error means the peer sent bytes this build cannot use: drop the
// message (and usually the connection). Retrying the same bytes fails the
// same way.
var (
	// ErrTruncated: the input ended in the middle of a value, or a length or
	// count claims more bytes than are left.
	ErrTruncated = errors.New("wire: truncated input")
	// ErrTrailing: a complete message was followed by extra bytes.
	ErrTrailing = errors.New("wire: trailing bytes")
	// ErrVersion: the message's version byte is not Version. The peer runs
	// an incompatible release.
	ErrVersion = errors.New("wire: unsupported version")
	// ErrType: the message's type tag is unknown, or is not the type being
	// decoded.
	ErrType = errors.New("wire: wrong message type")
	// ErrTooLarge: a value is longer than MaxValueSize, or a list longer than
	// MaxEntries. When encoding, split the batch.
	ErrTooLarge = errors.New("wire: over size limit")
	// ErrMalformed: the input is not a valid encoding (an overflowing or
	// non-minimal varint, a bool other than 0 or 1, unknown flag bits, an
	// unknown enum value, a no-op entry with a value). When encoding, the
	// message breaks a rule of its type: a programming error.
	ErrMalformed = errors.New("wire: malformed")
)

// An Error is a decoding error: which sentinel (Err), where (Offset, and for
// protocol messages Field, such as "Accept.Entries[3].Value"), and details.
type Error struct {
	Err    error  // one of the package's sentinel errors
	Field  string // the field being decoded, if known
	Offset int    // byte offset into the input where the bad value starts
	Detail string // what was wrong, for humans
}

func (e *Error) Error() string {
	s := e.Err.Error() + ":"
	if e.Field != "" {
		s += " " + e.Field
	}
	s += fmt.Sprintf(" at offset %d", e.Offset)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the sentinel error, for errors.Is.
func (e *Error) Unwrap() error { return e.Err }

// AppendUvarint appends v as an unsigned LEB128 varint (1 to 10 bytes,
// minimal length).
func AppendUvarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return binary.AppendUvarint(b, v)
}

// AppendVarint appends v zigzag-encoded as a uvarint, so values of small
// magnitude, negative or not, take few bytes.
func AppendVarint(b []byte, v int64) []byte {
	return AppendUvarint(b, zigzag(v))
}

// AppendBool appends v as one byte, 0 or 1.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// AppendBytes appends p prefixed with its length as a uvarint. A nil and an
// empty p encode alike.
func AppendBytes(b, p []byte) []byte {
	return append(AppendUvarint(b, uint64(len(p))), p...)
}

// AppendString appends s like AppendBytes.
func AppendString(b []byte, s string) []byte {
	return append(AppendUvarint(b, uint64(len(s))), s...)
}

// UvarintLen returns the number of bytes AppendUvarint uses for v.
func UvarintLen(v uint64) int {
	// 1 + (bits-1)/7 for v > 0, 1 for v == 0.
	return 1 + (bits.Len64(v|1)-1)/7
}

// VarintLen returns the number of bytes AppendVarint uses for v.
func VarintLen(v int64) int { return UvarintLen(zigzag(v)) }

// BytesLen returns the number of bytes AppendBytes uses for a slice of
// length n.
func BytesLen(n int) int { return UvarintLen(uint64(n)) + n }

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// A Decoder reads values from a byte slice. It never panics on any input:
// a read past the end, an overflowing varint or a count that cannot fit in
// the remaining input records an error, and from then on (sticky) every read
// returns the zero value and Err returns that first error. So a caller may
// decode a whole structure and check Err (or Finish) once at the end.
//
// Nothing is allocated except by BytesCopy and on errors. Bytes and Next
// return sub-slices of the input (aliases); copy them if the input buffer is
// reused.
//
// The zero Decoder reads an empty input. A Decoder is not safe for
// concurrent use.
type Decoder struct {
	data []byte
	off  int   // Invariant: 0 <= off <= len(data)
	err  error // the first error, or nil; always an *Error
	// field names what is being decoded, for errors; set by the message
	// decoders of this package.
	field string
}

// NewDecoder returns a Decoder reading data.
func NewDecoder(data []byte) *Decoder { return &Decoder{data: data} }

// Reset makes d read data from the start, clearing any error.
func (d *Decoder) Reset(data []byte) { *d = Decoder{data: data} }

// Err returns the first error recorded, or nil.
func (d *Decoder) Err() error { return d.err }

// Offset returns the number of bytes consumed so far.
func (d *Decoder) Offset() int { return d.off }

// Remaining returns the number of bytes not yet consumed.
func (d *Decoder) Remaining() int { return len(d.data) - d.off }

// Fail records err as d's error unless one is recorded already. Use it to
// reject a value that decoded but breaks a rule of the caller's format; it
// is wrapped in an *Error carrying the current offset.
func (d *Decoder) Fail(err error) {
	if d.err == nil {
		d.err = &Error{Err: err, Field: d.field, Offset: d.off}
	}
}

func (d *Decoder) fail(sentinel error, off int, format string, args ...any) {
	if d.err == nil {
		d.err = &Error{Err: sentinel, Field: d.field, Offset: off, Detail: fmt.Sprintf(format, args...)}
	}
}

// Finish returns the first error, or, if there is none but input remains,
// an ErrTrailing error (which it also records).
func (d *Decoder) Finish() error {
	if d.err == nil && d.off < len(d.data) {
		d.fail(ErrTrailing, d.off, "%d bytes left", len(d.data)-d.off)
	}
	return d.err
}

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.data) {
		d.fail(ErrTruncated, d.off, "need 1 byte, have 0")
		return 0
	}
	c := d.data[d.off]
	d.off++
	return c
}

// Bool reads a byte that must be 0 or 1 (else ErrMalformed).
func (d *Decoder) Bool() bool {
	off := d.off
	switch c := d.Byte(); c {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail(ErrMalformed, off, "bool byte %#x", c)
		return false
	}
}

// Uvarint reads a uvarint as written by AppendUvarint. A value that does not
// fit in 64 bits, or one encoded in more bytes than needed, is ErrMalformed,
// so every value has exactly one accepted encoding.
func (d *Decoder) Uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	if d.off < len(d.data) {
		if c := d.data[d.off]; c < 0x80 {
			d.off++
			return uint64(c)
		}
	}
	v, n := binary.Uvarint(d.data[d.off:])
	switch {
	case n == 0:
		d.fail(ErrTruncated, d.off, "unterminated varint")
		return 0
	case n < 0:
		d.fail(ErrMalformed, d.off, "varint overflows 64 bits")
		return 0
	case d.data[d.off+n-1] == 0:
		// n > 1 here (one-byte values took the fast path), and a last byte
		// of zero adds nothing: a shorter encoding exists.
		d.fail(ErrMalformed, d.off, "non-minimal varint")
		return 0
	}
	d.off += n
	return v
}

// Varint reads a zigzag-encoded varint as written by AppendVarint.
func (d *Decoder) Varint() int64 { return unzigzag(d.Uvarint()) }

// Count reads a uvarint element count for a list whose elements take at
// least minSize bytes each (minSize < 1 counts as 1). It records ErrTooLarge
// if the count exceeds limit, and ErrTruncated if that many elements cannot
// fit in the remaining input, so a caller may allocate count elements
// without trusting the input: the allocation is bounded by the input size.
func (d *Decoder) Count(minSize, limit int) int {
	off := d.off
	n := d.Uvarint()
	if d.err != nil {
		return 0
	}
	minSize = max(minSize, 1)
	switch {
	case n > uint64(max(limit, 0)):
		d.fail(ErrTooLarge, off, "count %d exceeds limit %d", n, limit)
		return 0
	case n > uint64(d.Remaining()/minSize):
		d.fail(ErrTruncated, off, "count %d of elements of at least %d bytes, have %d bytes", n, minSize, d.Remaining())
		return 0
	}
	return int(n)
}

// Next reads the next n bytes and returns them as a sub-slice of the input
// (capacity limited to n, so appending to it never overwrites the input).
// It returns nil for n == 0. A negative n is ErrMalformed.
func (d *Decoder) Next(n int) []byte {
	if d.err != nil {
		return nil
	}
	switch {
	case n < 0:
		d.fail(ErrMalformed, d.off, "negative length %d", n)
		return nil
	case n > len(d.data)-d.off:
		d.fail(ErrTruncated, d.off, "need %d bytes, have %d", n, len(d.data)-d.off)
		return nil
	case n == 0:
		return nil
	}
	p := d.data[d.off : d.off+n : d.off+n]
	d.off += n
	return p
}

// Bytes reads a length-prefixed byte string as written by AppendBytes and
// returns it as a sub-slice of the input (an alias: it changes if the input
// buffer is reused; capacity is limited so appending to it is safe). An
// empty string is returned as nil.
func (d *Decoder) Bytes() []byte {
	off := d.off
	n := d.Uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(d.Remaining()) {
		d.fail(ErrTruncated, off, "length %d, have %d bytes", n, d.Remaining())
		return nil
	}
	return d.Next(int(n))
}

// BytesCopy is like Bytes but returns a newly allocated copy (nil when
// empty), so the result stays valid when the input is reused.
func (d *Decoder) BytesCopy() []byte {
	p := d.Bytes()
	if p == nil {
		return nil
	}
	return append([]byte(nil), p...)
}
