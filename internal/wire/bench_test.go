package wire

import "testing"

// benchAccept is an Accept with 64 entries of 128-byte values at ascending
// slots, all in the Accept's ballot: a typical batch.
func benchAccept() *Accept {
	b := MakeBallot(1234, 3)
	m := &Accept{Ballot: b, Commit: 1 << 20, Min: 1<<20 - 500, Done: 1<<20 - 400}
	for i := range 64 {
		m.Entries = append(m.Entries, Entry{Slot: 1<<20 + Slot(i), Ballot: b, Value: val(128, byte(i))})
	}
	return m
}

func BenchmarkAcceptEncode(b *testing.B) {
	m := benchAccept()
	buf, _ := m.MarshalBinary()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = m.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAcceptDecode(b *testing.B) {
	data, _ := benchAccept().MarshalBinary()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var m Accept
		if err := m.UnmarshalBinary(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAcceptRoundTrip encodes into a reused buffer and decodes.
func BenchmarkAcceptRoundTrip(b *testing.B) {
	m := benchAccept()
	buf, _ := m.MarshalBinary()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = m.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
		var out Accept
		if err := out.UnmarshalBinary(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAcceptMarshal(b *testing.B) {
	m := benchAccept()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAcceptedRoundTrip(b *testing.B) {
	m := &Accepted{OK: true, Promised: MakeBallot(1234, 3), Done: 1 << 20}
	buf := make([]byte, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = m.AppendBinary(buf[:0])
		var out Accepted
		if err := out.UnmarshalBinary(buf); err != nil {
			b.Fatal(err)
		}
	}
}
