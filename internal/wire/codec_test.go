package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

var uvarintCases = []uint64{
	0, 1, 0x7f, 0x80, 0xff, 0x3fff, 0x4000, 1<<21 - 1, 1 << 21, 1<<32 - 1, 1 << 32,
	1<<56 - 1, 1 << 56, 1<<63 - 1, 1 << 63, math.MaxUint64,
}

func TestUvarintRoundTrip(t *testing.T) {
	for _, v := range uvarintCases {
		b := AppendUvarint([]byte{0xee}, v)
		if got, want := b[1:], binary.AppendUvarint(nil, v); !bytes.Equal(got, want) {
			t.Errorf("AppendUvarint(%d) = %x, want %x", v, got, want)
		}
		if got := UvarintLen(v); got != len(b)-1 {
			t.Errorf("UvarintLen(%d) = %d, want %d", v, got, len(b)-1)
		}
		d := NewDecoder(b[1:])
		if got := d.Uvarint(); got != v || d.Finish() != nil {
			t.Errorf("Uvarint(%x) = %d, %v; want %d", b[1:], got, d.Err(), v)
		}
	}
}

func TestVarintRoundTrip(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 63, -64, 64, -65, math.MaxInt64, math.MinInt64} {
		b := AppendVarint(nil, v)
		if !bytes.Equal(b, binary.AppendVarint(nil, v)) {
			t.Errorf("AppendVarint(%d) = %x, want %x", v, b, binary.AppendVarint(nil, v))
		}
		if VarintLen(v) != len(b) {
			t.Errorf("VarintLen(%d) = %d, want %d", v, VarintLen(v), len(b))
		}
		d := NewDecoder(b)
		if got := d.Varint(); got != v || d.Finish() != nil {
			t.Errorf("Varint(%x) = %d, %v; want %d", b, got, d.Err(), v)
		}
	}
}

func TestUvarintRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"unterminated", []byte{0x80}, ErrTruncated},
		{"unterminated long", []byte{0xff, 0xff, 0xff}, ErrTruncated},
		{"non-minimal zero", []byte{0x80, 0x00}, ErrMalformed},
		{"non-minimal one", []byte{0x81, 0x80, 0x00}, ErrMalformed},
		{"tenth byte too big", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, ErrMalformed},
		{"eleven bytes", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, ErrMalformed},
	} {
		d := NewDecoder(tc.in)
		if v := d.Uvarint(); v != 0 || !errors.Is(d.Err(), tc.want) {
			t.Errorf("%s: Uvarint(%x) = %d, %v; want 0, %v", tc.name, tc.in, v, d.Err(), tc.want)
		}
	}
}

func TestDecoderSticky(t *testing.T) {
	d := NewDecoder([]byte{5, 0x80})
	if v := d.Uvarint(); v != 5 {
		t.Fatalf("Uvarint = %d, want 5", v)
	}
	d.Uvarint() // truncated
	first := d.Err()
	if !errors.Is(first, ErrTruncated) {
		t.Fatalf("Err = %v, want ErrTruncated", first)
	}
	var e *Error
	if !errors.As(first, &e) || e.Offset != 1 {
		t.Fatalf("Err = %#v, want *Error at offset 1", first)
	}
	// Every later read returns zero values and keeps the first error.
	if d.Byte() != 0 || d.Bool() || d.Uvarint() != 0 || d.Bytes() != nil || d.BytesCopy() != nil ||
		d.Next(0) != nil || d.Count(1, 10) != 0 || d.Varint() != 0 {
		t.Error("reads after an error returned non-zero values")
	}
	d.Fail(ErrMalformed)
	if d.Err() != first || d.Finish() != first {
		t.Errorf("error changed from %v to %v", first, d.Err())
	}
	d.Reset([]byte{7})
	if d.Err() != nil || d.Byte() != 7 || d.Finish() != nil {
		t.Errorf("after Reset: %v", d.Err())
	}
}

func TestDecoderPrimitives(t *testing.T) {
	var b []byte
	b = append(b, 0xab)
	b = AppendBool(b, true)
	b = AppendBool(b, false)
	b = AppendBytes(b, []byte("hello"))
	b = AppendBytes(b, nil)
	b = AppendString(b, "world")
	b = AppendUvarint(b, 3) // count
	b = append(b, 1, 2, 3)
	b = append(b, "raw"...)

	d := NewDecoder(b)
	if c := d.Byte(); c != 0xab {
		t.Errorf("Byte = %#x", c)
	}
	if !d.Bool() || d.Bool() {
		t.Error("Bool mismatch")
	}
	hello := d.Bytes()
	if string(hello) != "hello" || cap(hello) != len(hello) {
		t.Errorf("Bytes = %q (cap %d)", hello, cap(hello))
	}
	if &hello[0] != &b[4] {
		t.Error("Bytes does not alias the input")
	}
	if p := d.Bytes(); p != nil {
		t.Errorf("empty Bytes = %#v, want nil", p)
	}
	world := d.BytesCopy()
	if string(world) != "world" || &world[0] == &b[len(b)-12] {
		t.Errorf("BytesCopy = %q", world)
	}
	if n := d.Count(1, 3); n != 3 {
		t.Errorf("Count = %d", n)
	}
	if p := d.Next(3); !bytes.Equal(p, []byte{1, 2, 3}) {
		t.Errorf("Next = %x", p)
	}
	if d.Remaining() != 3 || d.Offset() != len(b)-3 {
		t.Errorf("Remaining = %d, Offset = %d", d.Remaining(), d.Offset())
	}
	if err := d.Finish(); !errors.Is(err, ErrTrailing) {
		t.Errorf("Finish = %v, want ErrTrailing", err)
	}
}

func TestDecoderRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		read func(*Decoder)
		want error
	}{
		{"byte", nil, func(d *Decoder) { d.Byte() }, ErrTruncated},
		{"bool 2", []byte{2}, func(d *Decoder) { d.Bool() }, ErrMalformed},
		{"bytes length past end", []byte{4, 1, 2, 3}, func(d *Decoder) { d.Bytes() }, ErrTruncated},
		{"bytes huge length", AppendUvarint(nil, math.MaxUint64), func(d *Decoder) { d.Bytes() }, ErrTruncated},
		{"next negative", nil, func(d *Decoder) { d.Next(-1) }, ErrMalformed},
		{"next past end", []byte{1}, func(d *Decoder) { d.Next(2) }, ErrTruncated},
		{"count over limit", []byte{11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, func(d *Decoder) { d.Count(1, 10) }, ErrTooLarge},
		{"count over input", []byte{4, 0, 0, 0, 0, 0, 0, 0}, func(d *Decoder) { d.Count(3, 10) }, ErrTruncated},
		{"count 2^60", AppendUvarint(nil, 1<<60), func(d *Decoder) { d.Count(1, math.MaxInt) }, ErrTruncated},
		{"count max", AppendUvarint(nil, math.MaxUint64), func(d *Decoder) { d.Count(0, math.MaxInt) }, ErrTooLarge},
		{"trailing", []byte{1, 2}, func(d *Decoder) { d.Byte() }, ErrTrailing},
	} {
		d := NewDecoder(tc.in)
		tc.read(d)
		if err := d.Finish(); !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestAppendNoAlloc(t *testing.T) {
	buf := make([]byte, 0, 64)
	value := []byte("value")
	allocs := testing.AllocsPerRun(100, func() {
		b := AppendUvarint(buf, math.MaxUint64)
		b = AppendVarint(b, -12345)
		b = AppendBool(b, true)
		b = AppendBytes(b, value)
		_ = AppendString(b, "key")
	})
	if allocs != 0 {
		t.Errorf("appending into a large enough buffer: %v allocs, want 0", allocs)
	}
}

func TestDecoderNoAlloc(t *testing.T) {
	b := AppendUvarint(nil, 1<<40)
	b = AppendBytes(b, []byte("value"))
	b = AppendBool(b, true)
	allocs := testing.AllocsPerRun(100, func() {
		d := NewDecoder(b)
		d.Uvarint()
		d.Bytes()
		d.Bool()
		if d.Finish() != nil {
			panic(d.Err())
		}
	})
	if allocs != 0 {
		t.Errorf("decoding: %v allocs, want 0", allocs)
	}
}
