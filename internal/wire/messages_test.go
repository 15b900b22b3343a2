package wire

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

const maxU = math.MaxUint64

// val returns a value of n bytes with a recognizable pattern.
func val(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i)
	}
	return p
}

// manyEntries returns n entries at ascending slots from first, in ballot b,
// with values of size bytes (every 7th a no-op, every 5th chosen).
func manyEntries(n int, first Slot, b Ballot, size int) []Entry {
	es := make([]Entry, n)
	for i := range es {
		es[i] = Entry{Slot: first + Slot(i), Ballot: b, Chosen: i%5 == 0}
		if i%7 == 3 {
			es[i].NoOp = true
		} else {
			es[i].Value = val(size, byte(i))
		}
	}
	return es
}

type roundTripCase struct {
	name string
	msg  Message
}

// roundTripCases covers every message type: zero values, maximum values,
// many entries, large values, and odd orders. Fuzz targets seed from them.
func roundTripCases() []roundTripCase {
	b7 := MakeBallot(7, 3)
	mixed := []Entry{
		{Slot: 10, Ballot: b7, Value: []byte("a")},
		{Slot: 11, Ballot: MakeBallot(2, 1), NoOp: true},
		{Slot: 9, Ballot: b7, Chosen: true, Value: []byte{}},
		{Slot: maxU, Ballot: maxU, NoOp: true, Chosen: true},
		{Slot: 0, Ballot: 0},
		{Slot: 0, Ballot: maxU, Value: val(300, 1)},
		{Slot: 1 << 63, Ballot: 1},
	}
	return []roundTripCase{
		{"Prepare zero", &Prepare{}},
		{"Prepare", &Prepare{Ballot: b7, From: 42}},
		{"Prepare max", &Prepare{Ballot: maxU, From: maxU}},

		{"Promise zero", &Promise{}},
		{"Promise reject", &Promise{Promised: MakeBallot(9, 2)}},
		{"Promise empty entries", &Promise{OK: true, Promised: b7, Forgotten: 3, Entries: []Entry{}}},
		{"Promise mixed", &Promise{OK: true, Promised: b7, Forgotten: 5, Entries: mixed}},
		{"Promise page", &Promise{OK: true, Promised: b7, Forgotten: 5, Next: 9, Entries: mixed}},
		{"Promise max", &Promise{OK: true, Promised: maxU, Forgotten: maxU, Next: maxU, Entries: []Entry{{Slot: maxU, Ballot: maxU, Value: []byte{0}}}}},
		{"Promise many", &Promise{OK: true, Promised: b7, Forgotten: 1000, Entries: manyEntries(2000, 1000, MakeBallot(6, 1), 3)}},

		{"Accept zero", &Accept{}},
		{"Accept heartbeat", &Accept{Ballot: b7, Commit: 100, Min: 50, Done: 60}},
		{"Accept chosen", &Accept{Ballot: b7, Commit: 100, Chosen: []Slot{101, 105, 103, 0, maxU}}},
		{"Accept empty lists", &Accept{Ballot: b7, Chosen: []Slot{}, Entries: []Entry{}}},
		{"Accept one", &Accept{Ballot: b7, Commit: 4, Entries: []Entry{{Slot: 4, Ballot: b7, Value: []byte("x")}}}},
		// Entries' ballots need not equal Accept.Ballot; they round-trip as given.
		{"Accept mixed", &Accept{Ballot: b7, Commit: 8, Min: 2, Done: 3, Chosen: []Slot{9}, Entries: mixed}},
		{"Accept max", &Accept{Ballot: maxU, Commit: maxU, Min: maxU, Done: maxU, Chosen: []Slot{maxU}, Entries: []Entry{{Slot: maxU, Ballot: maxU, NoOp: true}}}},
		{"Accept many", &Accept{Ballot: b7, Commit: 1 << 40, Entries: manyEntries(5000, 1<<40, b7, 16)}},
		{"Accept large value", &Accept{Ballot: b7, Entries: []Entry{{Slot: 1, Ballot: b7, Value: val(1<<20+3, 9)}}}},

		{"Accepted zero", &Accepted{}},
		{"Accepted", &Accepted{OK: true, Promised: b7, Done: 77}},
		{"Accepted max", &Accepted{OK: true, Promised: maxU, Done: maxU}},

		{"ObserveRequest zero", &ObserveRequest{}},
		{"ObserveRequest max", &ObserveRequest{From: maxU}},

		{"ObserveEvent zero", &ObserveEvent{}},
		{"ObserveEvent", &ObserveEvent{Commit: 12, Forgotten: 3, Entries: mixed}},
		{"ObserveEvent chosen marks", &ObserveEvent{Commit: 20, Forgotten: 10, Entries: []Entry{{Slot: 15, Ballot: b7, Chosen: true}, {Slot: 16, Ballot: b7, Chosen: true}}}},
		{"ObserveEvent max", &ObserveEvent{Commit: maxU, Forgotten: maxU, Entries: []Entry{{Slot: maxU, Ballot: maxU, Chosen: true, Value: []byte("v")}}}},

		{"ProposeRequest zero", &ProposeRequest{}},
		{"ProposeRequest", &ProposeRequest{Wait: true, Value: []byte("put k v")}},
		{"ProposeRequest slot", &ProposeRequest{HasSlot: true, Slot: 99, Value: []byte{0}}},
		{"ProposeRequest slot without HasSlot", &ProposeRequest{Slot: 5}},
		{"ProposeRequest max", &ProposeRequest{HasSlot: true, Wait: true, Slot: maxU, Value: val(70000, 3)}},

		{"ProposeReply zero", &ProposeReply{}},
		{"ProposeReply not leader", &ProposeReply{Status: ProposeNotLeader, Leader: b7, Commit: 10}},
		{"ProposeReply max", &ProposeReply{Status: ProposeTaken, Slot: maxU, Leader: maxU, Commit: maxU, ChosenIn: maxU}},
		{"ProposeReply chosen", &ProposeReply{Status: ProposeOK, Slot: 4, Leader: b7, Commit: 5, ChosenIn: b7}},

		{"Probe zero", &Probe{}},
		{"Probe max", &Probe{Ballot: maxU}},

		{"ProbeReply zero", &ProbeReply{}},
		{"ProbeReply", &ProbeReply{LeaderAlive: true, Leader: b7, Promised: MakeBallot(8, 1)}},
		{"ProbeReply max", &ProbeReply{LeaderAlive: true, Leader: maxU, Promised: maxU}},
	}
}

// normalize returns a deep copy of m with empty values and lists made nil,
// so that messages that encode alike compare equal.
func normalize(m Message) Message {
	entries := func(es []Entry) []Entry {
		if len(es) == 0 {
			return nil
		}
		out := make([]Entry, len(es))
		for i, e := range es {
			if len(e.Value) == 0 {
				e.Value = nil
			} else {
				e.Value = bytes.Clone(e.Value)
			}
			out[i] = e
		}
		return out
	}
	switch m := m.(type) {
	case *Promise:
		c := *m
		c.Entries = entries(c.Entries)
		return &c
	case *Accept:
		c := *m
		c.Entries = entries(c.Entries)
		if len(c.Chosen) == 0 {
			c.Chosen = nil
		}
		return &c
	case *ObserveEvent:
		c := *m
		c.Entries = entries(c.Entries)
		return &c
	case *ProposeRequest:
		c := *m
		if len(c.Value) == 0 {
			c.Value = nil
		}
		return &c
	}
	return m
}

// equal reports whether a and b are the same message, nil and empty alike.
func equal(a, b Message) bool { return reflect.DeepEqual(normalize(a), normalize(b)) }

func TestRoundTrip(t *testing.T) {
	for _, tc := range roundTripCases() {
		t.Run(tc.name, func(t *testing.T) {
			data, err := tc.msg.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary: %v", err)
			}
			if data[0] != Version || Type(data[1]) != tc.msg.WireType() {
				t.Fatalf("header %x, want %x %x", data[:2], Version, tc.msg.WireType())
			}
			if n, _ := tc.msg.(interface{ size() (int, error) }).size(); n != len(data) {
				t.Errorf("size() = %d, encoded %d bytes", n, len(data))
			}

			// AppendBinary appends after existing bytes, identically.
			prefix := []byte("prefix")
			appended, err := tc.msg.AppendBinary(bytes.Clone(prefix))
			if err != nil || !bytes.HasPrefix(appended, prefix) || !bytes.Equal(appended[len(prefix):], data) {
				t.Fatalf("AppendBinary differs from MarshalBinary (err %v)", err)
			}

			got := New(tc.msg.WireType())
			if err := got.UnmarshalBinary(data); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if !equal(got, tc.msg) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tc.msg)
			}
			decoded, err := Decode(data)
			if err != nil || !equal(decoded, tc.msg) {
				t.Fatalf("Decode = %+v, %v", decoded, err)
			}

			// Decoded values never alias the input.
			for i := range data {
				data[i] ^= 0xff
			}
			if !equal(got, tc.msg) {
				t.Fatal("decoded message changed with its input buffer")
			}
		})
	}
}

func TestAppendBinaryNoAlloc(t *testing.T) {
	for _, tc := range roundTripCases() {
		data, _ := tc.msg.MarshalBinary()
		buf := make([]byte, 0, len(data))
		allocs := testing.AllocsPerRun(10, func() {
			if _, err := tc.msg.AppendBinary(buf); err != nil {
				panic(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: AppendBinary into a buffer of exactly the size: %v allocs", tc.name, allocs)
		}
	}
}

// TestDecodedValuesDoNotOverlap checks that the values of one decoded
// message share one array yet cannot overwrite each other by appending.
func TestDecodedValuesDoNotOverlap(t *testing.T) {
	in := &Accept{Ballot: 1, Entries: manyEntries(10, 0, 1, 4)}
	data, _ := in.MarshalBinary()
	var out Accept
	if err := out.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	for i := range out.Entries {
		v := out.Entries[i].Value
		if cap(v) != len(v) {
			t.Errorf("entry %d: cap %d > len %d", i, cap(v), len(v))
		}
		_ = append(v, 0xee)
	}
	if !equal(&out, in) {
		t.Error("appending to one value changed another")
	}
}

// TestTruncated cuts every encoding at every offset: each prefix must fail.
func TestTruncated(t *testing.T) {
	for _, tc := range roundTripCases() {
		data, _ := tc.msg.MarshalBinary()
		if len(data) > 4096 {
			continue // the small cases cover every field; keep the test fast
		}
		for n := range len(data) {
			m := New(tc.msg.WireType())
			err := m.UnmarshalBinary(data[:n])
			if err == nil {
				t.Errorf("%s: prefix of %d/%d bytes decoded", tc.name, n, len(data))
				continue
			}
			// Cutting can leave a count or length that no longer fits (also
			// ErrTruncated), never anything else.
			if !errors.Is(err, ErrTruncated) {
				t.Errorf("%s: prefix of %d/%d bytes: %v, want ErrTruncated", tc.name, n, len(data), err)
			}
			if !equal(m, New(tc.msg.WireType())) {
				t.Errorf("%s: failed decode changed the receiver", tc.name)
			}
		}
	}
}

func TestRejects(t *testing.T) {
	accept, _ := (&Accept{Ballot: 5, Commit: 1, Entries: []Entry{{Slot: 1, Ballot: 5, Value: []byte("v")}}}).MarshalBinary()
	// accept is: 02 03 | 05 01 00 00 | 00 | 01 | 00 02 00 01 'v'
	if !bytes.Equal(accept, []byte{Version, 3, 5, 1, 0, 0, 0, 1, 0, 0, 0, 1, 'v'}) {
		t.Fatalf("unexpected layout %x", accept)
	}
	hdr := func(t Type, rest ...byte) []byte { return append([]byte{Version, byte(t)}, rest...) }
	with := func(i int, c byte) []byte { b := bytes.Clone(accept); b[i] = c; return b }

	for _, tc := range []struct {
		name  string
		in    []byte
		into  Message
		want  error
		field string
	}{
		{"empty", nil, &Accept{}, ErrTruncated, "Accept"},
		{"version 0", with(0, 0), &Accept{}, ErrVersion, "Accept"},
		{"version 1", with(0, 1), &Accept{}, ErrVersion, "Accept"},
		{"version 3", with(0, 3), &Accept{}, ErrVersion, "Accept"},
		{"other type", accept, &Promise{}, ErrType, "Promise"},
		{"unknown type", with(1, 200), &Accept{}, ErrType, "Accept"},
		{"trailing", append(bytes.Clone(accept), 0), &Accept{}, ErrTrailing, "Accept"},
		{"non-minimal varint", hdr(TypePrepare, 0x85, 0x00, 0), &Prepare{}, ErrMalformed, "Prepare.Ballot"},
		{"overflowing varint", hdr(TypeProbe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), &Probe{}, ErrMalformed, "Probe.Ballot"},
		{"bool 2", hdr(TypeAccepted, 2, 0, 0), &Accepted{}, ErrMalformed, "Accepted.OK"},
		{"entry flags", with(8, 4), &Accept{}, ErrMalformed, "Accept.Entries[0].flags"},
		{"value past end", with(11, 2), &Accept{}, ErrTruncated, "Accept.Entries[0].Value"},
		{"huge value length", append(accept[:11:11], AppendUvarint(nil, 1<<62)...), &Accept{}, ErrTooLarge, "Accept.Entries[0].Value"},
		{"value over MaxValueSize", append(accept[:11:11], AppendUvarint(nil, MaxValueSize+1)...), &Accept{}, ErrTooLarge, "Accept.Entries[0].Value"},
		{"entry count past end", with(7, 2), &Accept{}, ErrTruncated, "Accept.Entries"},
		{"huge entry count", append(accept[:7:7], AppendUvarint(nil, 1<<60)...), &Accept{}, ErrTooLarge, "Accept.Entries"},
		{"entry count over MaxEntries", append(accept[:7:7], AppendUvarint(nil, MaxEntries+1)...), &Accept{}, ErrTooLarge, "Accept.Entries"},
		{"huge chosen count", append(accept[:6:6], AppendUvarint(nil, maxU)...), &Accept{}, ErrTooLarge, "Accept.Chosen"},
		{"chosen count past end", with(6, 8), &Accept{}, ErrTruncated, "Accept.Chosen"},
		{"propose flags", hdr(TypeProposeRequest, 4, 0, 0), &ProposeRequest{}, ErrMalformed, "ProposeRequest.flags"},
		{"propose huge value", hdr(TypeProposeRequest, append([]byte{0, 0}, AppendUvarint(nil, maxU)...)...), &ProposeRequest{}, ErrTooLarge, "ProposeRequest.Value"},
		{"propose status", hdr(TypeProposeReply, 3, 0, 0, 0), &ProposeReply{}, ErrMalformed, "ProposeReply.Status"},
		{"probe reply bool", hdr(TypeProbeReply, 0xff, 0, 0), &ProbeReply{}, ErrMalformed, "ProbeReply.LeaderAlive"},
	} {
		before := normalize(tc.into)
		err := tc.into.UnmarshalBinary(tc.in)
		var e *Error
		switch {
		case !errors.Is(err, tc.want):
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		case !errors.As(err, &e) || e.Field != tc.field:
			t.Errorf("%s: error %v names field %q, want %q", tc.name, err, e.Field, tc.field)
		case !equal(tc.into, before):
			t.Errorf("%s: failed decode changed the receiver", tc.name)
		}
	}
}

func TestPeekType(t *testing.T) {
	for _, tc := range roundTripCases() {
		data, _ := tc.msg.MarshalBinary()
		if got, err := PeekType(data); err != nil || got != tc.msg.WireType() {
			t.Errorf("%s: PeekType = %v, %v", tc.name, got, err)
		}
	}
	for _, tc := range []struct {
		in   []byte
		want error
	}{
		{nil, ErrTruncated},
		{[]byte{Version}, ErrTruncated},
		{[]byte{9, 1}, ErrVersion},
		{[]byte{Version, 0}, ErrType},
		{[]byte{Version, 11}, ErrType},
	} {
		if _, err := PeekType(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("PeekType(%x) = %v, want %v", tc.in, err, tc.want)
		}
		if _, err := Decode(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("Decode(%x) = %v, want %v", tc.in, err, tc.want)
		}
	}
	if s := Type(42).String(); s != "Type(42)" {
		t.Errorf("Type(42).String() = %q", s)
	}
}

func TestEncodeRejects(t *testing.T) {
	big := make([]byte, MaxValueSize+1)
	for _, tc := range []struct {
		name string
		msg  Message
		want error
	}{
		{"no-op with value", &Accept{Entries: []Entry{{Slot: 1, NoOp: true, Value: []byte("x")}}}, ErrMalformed},
		{"unknown status", &ProposeReply{Status: 3}, ErrMalformed},
		{"entry value too large", &Promise{Entries: []Entry{{Value: big}}}, ErrTooLarge},
		{"propose value too large", &ProposeRequest{Value: big}, ErrTooLarge},
		{"too many entries", &ObserveEvent{Entries: make([]Entry, MaxEntries+1)}, ErrTooLarge},
		{"too many chosen", &Accept{Chosen: make([]Slot, MaxEntries+1)}, ErrTooLarge},
	} {
		buf := []byte("keep")
		out, err := tc.msg.AppendBinary(buf)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: AppendBinary error %v, want %v", tc.name, err, tc.want)
		}
		if string(out) != "keep" {
			t.Errorf("%s: AppendBinary on error returned %q, want the input", tc.name, out)
		}
		if _, err := tc.msg.MarshalBinary(); !errors.Is(err, tc.want) {
			t.Errorf("%s: MarshalBinary error %v, want %v", tc.name, err, tc.want)
		}
	}
	// At the limits exactly, encoding works.
	if _, err := (&ProposeRequest{Value: big[:MaxValueSize]}).MarshalBinary(); err != nil {
		t.Errorf("value of MaxValueSize: %v", err)
	}
	if _, err := (&Accept{Chosen: make([]Slot, MaxEntries)}).MarshalBinary(); err != nil {
		t.Errorf("MaxEntries chosen slots: %v", err)
	}
}

// TestHugeCountAllocatesLittle decodes short inputs that claim enormous
// lists and values: each must fail without allocating in proportion to the
// claim.
func TestHugeCountAllocatesLittle(t *testing.T) {
	inputs := map[string][]byte{
		// 13 bytes: header, Commit, Forgotten, and a count of 2^60 entries.
		"ObserveEvent 2^60 entries": append([]byte{Version, byte(TypeObserveEvent), 0, 0}, AppendUvarint(nil, 1<<60)...),
		"Accept 2^60 chosen":        append([]byte{Version, byte(TypeAccept), 0, 0, 0, 0}, AppendUvarint(nil, 1<<60)...),
		"Accept 2^60 entries":       append([]byte{Version, byte(TypeAccept), 0, 0, 0, 0, 0}, AppendUvarint(nil, 1<<60)...),
		"Promise MaxEntries":        append([]byte{Version, byte(TypePromise), 1, 0, 0, 0}, AppendUvarint(nil, MaxEntries)...),
		"ProposeRequest 2^60 value": append([]byte{Version, byte(TypeProposeRequest), 0, 0}, AppendUvarint(nil, 1<<60)...),
	}
	for name, in := range inputs {
		if len(in) > 16 {
			t.Fatalf("%s: input of %d bytes", name, len(in))
		}
		if _, err := Decode(in); err == nil {
			t.Fatalf("%s: decoded", name)
		}
		allocs := testing.AllocsPerRun(100, func() { _, _ = Decode(in) })
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const runs = 100
		for range runs {
			_, _ = Decode(in)
		}
		runtime.ReadMemStats(&after)
		perRun := (after.TotalAlloc - before.TotalAlloc) / runs
		t.Logf("%s: %v allocs, %d bytes per decode", name, allocs, perRun)
		if allocs > 10 || perRun > 1024 {
			t.Errorf("%s: %v allocs, %d bytes per decode; want at most 10 and 1 KiB", name, allocs, perRun)
		}
	}
}

func TestErrorText(t *testing.T) {
	data, _ := (&Accept{Ballot: 1, Entries: []Entry{{Slot: 1, Ballot: 1, Value: []byte("abc")}}}).MarshalBinary()
	err := new(Accept).UnmarshalBinary(data[:len(data)-1])
	want := "wire: truncated input: Accept.Entries[0].Value at offset 12: need 3 bytes, have 2"
	if err == nil || err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	err = new(Prepare).UnmarshalBinary(data)
	if err == nil || !strings.Contains(err.Error(), "got Accept, want Prepare") {
		t.Errorf("error %q does not name the types", err)
	}
	err = fmt.Errorf("context: %w", err)
	if !errors.Is(err, ErrType) {
		t.Error("wrapped error lost its sentinel")
	}
}
