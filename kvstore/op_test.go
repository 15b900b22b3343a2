package kvstore

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func opCases() []*op {
	return []*op{
		{Kind: opRegister, Client: 1},
		{Kind: opRegister, Client: 1<<64 - 1, Ack: 7, Stamp: -5},
		{Kind: opGet, Client: 42, Seq: 3, Ack: 2, Stamp: 1_700_000_000_000_000_000, Key: []byte("k")},
		{Kind: opPut, Client: 42, Seq: 4, Ack: 4, Stamp: 1, Key: []byte("key"), Value: []byte("value")},
		{Kind: opPut, Client: 9, Seq: 1, Key: []byte("empty value")},
		{Kind: opAppend, Client: 9, Seq: 1 << 40, Ack: 1 << 39, Key: []byte(strings.Repeat("k", 1000)), Value: bytes.Repeat([]byte{0, 0xff}, 70000)},
	}
}

func TestOpRoundTrip(t *testing.T) {
	for _, o := range opCases() {
		b := appendOp(nil, o)
		if len(b) != encodedOpLen(o) {
			t.Errorf("%v: encoded %d bytes, encodedOpLen says %d", o.Kind, len(b), encodedOpLen(o))
		}
		got, err := decodeOp(b)
		if err != nil {
			t.Fatalf("%v: %v", o.Kind, err)
		}
		if got.Kind != o.Kind || got.Client != o.Client || got.Seq != o.Seq || got.Ack != o.Ack || got.Stamp != o.Stamp ||
			!bytes.Equal(got.Key, o.Key) || !bytes.Equal(got.Value, o.Value) {
			t.Errorf("round trip of %+v gave %+v", o, got)
		}
		// The decoded slices cannot write into the input.
		if len(got.Value) > 0 && cap(got.Value) != len(got.Value) {
			t.Errorf("%v: value capacity %d > length %d", o.Kind, cap(got.Value), len(got.Value))
		}
	}
}

func TestOpDecodeRefuses(t *testing.T) {
	put := appendOp(nil, &op{Kind: opPut, Client: 1, Seq: 2, Key: []byte("k"), Value: []byte("v")})
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"other version", append([]byte{2}, put[1:]...), ErrMalformed},
		{"unknown kind", []byte{opVersion, 9, 1, 1, 0, 0}, ErrUnknownOp},
		{"kind zero", []byte{opVersion, 0, 1, 1, 0, 0}, ErrUnknownOp},
		{"truncated", put[:len(put)-1], ErrMalformed},
		{"trailing byte", append(append([]byte(nil), put...), 0), ErrMalformed},
		{"a key on Register", append(appendOp(nil, &op{Kind: opRegister, Client: 1}), 1, 'k'), ErrMalformed},
		{"non-minimal varint", []byte{opVersion, byte(opRegister), 0x81, 0x00, 0, 0, 0}, ErrMalformed},
		{"length past the end", []byte{opVersion, byte(opGet), 1, 1, 0, 0, 100, 'k'}, ErrMalformed},
	} {
		if _, err := decodeOp(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestCheckRequest(t *testing.T) {
	for _, tc := range []struct {
		o    *op
		want error
	}{
		{&op{Kind: opGet, Seq: 1, Key: []byte("k")}, nil},
		{&op{Kind: opRegister}, nil},
		{&op{Kind: opPut, Seq: 1, Key: []byte("12345678"), Value: []byte("1234567890123456")}, nil},
		{&op{Kind: opGet, Seq: 1}, ErrEmptyKey},
		{&op{Kind: opAppend, Seq: 1, Value: []byte("v")}, ErrEmptyKey},
		{&op{Kind: opPut, Seq: 1, Key: []byte("123456789")}, ErrKeyTooLarge},
		{&op{Kind: opAppend, Seq: 1, Key: []byte("k"), Value: []byte("12345678901234567")}, ErrValueTooLarge},
		{&op{Kind: 7, Seq: 1, Key: []byte("k")}, ErrUnknownOp},
	} {
		if err := checkRequest(tc.o, 8, 16); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%v %q/%q: %v, want %v", tc.o.Kind, tc.o.Key, tc.o.Value, err, tc.want)
		}
	}
}

func TestReplyRoundTrip(t *testing.T) {
	for _, r := range []*reply{
		{Status: statusOK},
		{Status: statusOK, Value: []byte("value")},
		{Status: statusNoKey},
		{Status: statusExpired, Detail: "gone"},
		{Status: statusRetry, Detail: "later"},
		{Status: statusBadRequest, Code: badKeyTooLarge, Detail: "too big"},
		{Status: statusStale},
	} {
		got, err := decodeReply(appendReply(nil, r))
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if got.Status != r.Status || got.Code != r.Code || !bytes.Equal(got.Value, r.Value) || got.Detail != r.Detail {
			t.Errorf("round trip of %+v gave %+v", r, got)
		}
	}
	for _, bad := range [][]byte{
		nil,
		{opVersion, byte(statusOK), byte(badEmptyKey), 0, 0}, // a code without BadRequest
		{opVersion, byte(statusBadRequest), 0, 0, 0},         // BadRequest without a code
		{opVersion, byte(statusBadRequest), 99, 0, 0},        // unknown code
		{opVersion, byte(lastStatus) + 1, 0, 0, 0},           // unknown status
		{opVersion, byte(statusOK), 0, 0, 0, 0},              // trailing
		{opVersion + 1, byte(statusOK), 0, 0, 0},             // version
		{opVersion, byte(statusOK), 0, 5, 'a'},               // truncated value
	} {
		if _, err := decodeReply(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("reply %x: %v, want ErrMalformed", bad, err)
		}
	}
}

// Any input either decodes or fails, never panics; what decodes
// re-encodes to exactly the input (the encoding is canonical).
//
//	go test -run '^$' -fuzz '^FuzzDecodeOp$' -fuzztime 30s ./kvstore
func FuzzDecodeOp(f *testing.F) {
	for _, o := range opCases() {
		if b := appendOp(nil, o); len(b) < 4096 {
			f.Add(b)
		}
	}
	f.Add([]byte{opVersion, 9})
	f.Fuzz(func(t *testing.T, in []byte) {
		o, err := decodeOp(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownOp) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrUnknownOp", err)
			}
			return
		}
		if out := appendOp(nil, o); !bytes.Equal(out, in) {
			t.Fatalf("%x decoded to %+v, which encodes to %x", in, o, out)
		}
	})
}

// go test -run '^$' -fuzz '^FuzzDecodeReply$' -fuzztime 30s ./kvstore
func FuzzDecodeReply(f *testing.F) {
	f.Add(appendReply(nil, &reply{Status: statusOK, Value: []byte("v")}))
	f.Add(appendReply(nil, &reply{Status: statusBadRequest, Code: badEmptyKey, Detail: "x"}))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := decodeReply(in)
		if err != nil {
			return
		}
		if out := appendReply(nil, r); !bytes.Equal(out, in) {
			t.Fatalf("%x decoded to %+v, which encodes to %x", in, r, out)
		}
	})
}
