package wire

import (
	"bytes"
	"testing"
)

// Fuzz targets. Run one with, for example,
//
//	go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime 30s ./internal/wire
//
// Each checks that any input either decodes or returns an error without
// panicking, and that a decoded message re-encodes to exactly the input (the
// encoding is canonical) and decodes again to the same value.

// seedFuzz adds the encodings of the round-trip cases of the given types
// (all types if none), minus the header when bodyOnly.
func seedFuzz(f *testing.F, bodyOnly bool, types ...Type) {
	for _, tc := range roundTripCases() {
		if len(types) > 0 && !containsType(types, tc.msg.WireType()) {
			continue
		}
		data, err := tc.msg.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		if len(data) > 4096 {
			continue
		}
		if bodyOnly {
			data = data[headerLen:]
		}
		f.Add(data)
	}
}

func containsType(ts []Type, t Type) bool {
	for _, u := range ts {
		if u == t {
			return true
		}
	}
	return false
}

// checkCanonical decodes data into m and, on success, checks that it
// re-encodes to data and decodes again to an equal message.
func checkCanonical(t *testing.T, m Message, data []byte) {
	t.Helper()
	if err := m.UnmarshalBinary(data); err != nil {
		return
	}
	again, err := m.MarshalBinary()
	if err != nil {
		t.Fatalf("decoded %+v but cannot re-encode it: %v", m, err)
	}
	if !bytes.Equal(again, data) {
		t.Fatalf("not canonical: decoded %+v from\n%x\nre-encodes as\n%x", m, data, again)
	}
	m2 := New(m.WireType())
	if err := m2.UnmarshalBinary(again); err != nil {
		t.Fatalf("re-encoding of %+v does not decode: %v", m, err)
	}
	if !equal(m, m2) {
		t.Fatalf("second round trip:\n got %+v\nwant %+v", m2, m)
	}
}

// FuzzDecode feeds arbitrary bytes to Decode, so the fuzzer explores every
// message type through the tag byte.
func FuzzDecode(f *testing.F) {
	seedFuzz(f, false)
	f.Add([]byte{})
	f.Add([]byte{Version})
	f.Add([]byte{Version, 0})
	f.Add([]byte{Version + 1, byte(TypeAccept)})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			if m != nil {
				t.Fatalf("Decode returned both %+v and %v", m, err)
			}
			return
		}
		checkCanonical(t, m, data)
	})
}

// fuzzBody fuzzes one message type, with the header prepended so that no
// input is wasted on the version and tag.
func fuzzBody(f *testing.F, typ Type) {
	seedFuzz(f, true, typ)
	f.Fuzz(func(t *testing.T, body []byte) {
		data := append([]byte{Version, byte(typ)}, body...)
		checkCanonical(t, New(typ), data)
	})
}

func FuzzPromise(f *testing.F)        { fuzzBody(f, TypePromise) }
func FuzzAccept(f *testing.F)         { fuzzBody(f, TypeAccept) }
func FuzzObserveEvent(f *testing.F)   { fuzzBody(f, TypeObserveEvent) }
func FuzzProposeRequest(f *testing.F) { fuzzBody(f, TypeProposeRequest) }

// FuzzDecoder runs a script of Decoder reads (ops) over data and checks the
// Decoder's own rules: no panic, the offset only moves forward within the
// input, and once an error is recorded it sticks and reads return zero.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7}, []byte{1, 0x80, 0x01, 3, 'a', 'b', 'c', 2, 1, 2})
	f.Add([]byte{4, 4, 4}, []byte{0x80, 0x00})
	f.Add([]byte{6}, AppendUvarint(nil, 1<<60))
	f.Fuzz(func(t *testing.T, ops, data []byte) {
		d := NewDecoder(data)
		for _, op := range ops {
			off := d.Offset()
			failed := d.Err() != nil
			zero := true
			switch op % 8 {
			case 0:
				zero = d.Byte() == 0
			case 1:
				zero = !d.Bool()
			case 2:
				zero = d.Uvarint() == 0
			case 3:
				zero = d.Varint() == 0
			case 4:
				zero = d.Bytes() == nil
			case 5:
				zero = d.BytesCopy() == nil
			case 6:
				zero = d.Count(int(op>>3)%4, 1<<int(op>>5)) == 0
			case 7:
				zero = d.Next(int(op>>3)) == nil
			}
			switch {
			case d.Offset() < off || d.Offset() > len(data):
				t.Fatalf("op %d moved offset from %d to %d (len %d)", op, off, d.Offset(), len(data))
			case d.Offset()+d.Remaining() != len(data):
				t.Fatalf("offset %d + remaining %d != len %d", d.Offset(), d.Remaining(), len(data))
			case failed && (!zero || d.Offset() != off):
				t.Fatalf("op %d after error %v returned a value or moved", op, d.Err())
			}
		}
		err := d.Finish()
		if (err == nil) != (d.Err() == nil) || (err == nil && d.Remaining() != 0) {
			t.Fatalf("Finish = %v, Err = %v, remaining %d", err, d.Err(), d.Remaining())
		}
	})
}
