package wire

import (
	"encoding"
	"fmt"
)

// Version is the first byte of every encoded message. A decoder rejects any
// other version with ErrVersion. Version 2 added Promise.Next (paged
// promises); nodes of version 1 and 2 cannot talk to each other.
const Version byte = 2

// Limits on a single message, enforced when encoding and when decoding (as
// ErrTooLarge). They are not configurable, so every node agrees on them.
const (
	// MaxValueSize is the largest Entry.Value or ProposeRequest.Value.
	MaxValueSize = 64 << 20
	// MaxEntries is the largest number of elements in one list of a message
	// (Entries, and Accept.Chosen).
	MaxEntries = 1 << 20
)

// Type is the message-type tag, the second byte of every encoded message.
type Type uint8

// The message types. Tag values are part of the encoding: never reuse or
// renumber one.
const (
	TypePrepare        Type = 1
	TypePromise        Type = 2
	TypeAccept         Type = 3
	TypeAccepted       Type = 4
	TypeObserveRequest Type = 5
	TypeObserveEvent   Type = 6
	TypeProposeRequest Type = 7
	TypeProposeReply   Type = 8
	TypeProbe          Type = 9
	TypeProbeReply     Type = 10
)

var typeNames = [...]string{
	TypePrepare:        "Prepare",
	TypePromise:        "Promise",
	TypeAccept:         "Accept",
	TypeAccepted:       "Accepted",
	TypeObserveRequest: "ObserveRequest",
	TypeObserveEvent:   "ObserveEvent",
	TypeProposeRequest: "ProposeRequest",
	TypeProposeReply:   "ProposeReply",
	TypeProbe:          "Probe",
	TypeProbeReply:     "ProbeReply",
}

// String returns the message type's name, such as "Accept".
func (t Type) String() string {
	if t.known() {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

func (t Type) known() bool { return int(t) < len(typeNames) && typeNames[t] != "" }

// A Message is one of the protocol messages of this package (*Prepare,
// *Promise, …). AppendBinary and MarshalBinary fail only when the message
// breaks a limit (ErrTooLarge) or a rule of its type (ErrMalformed);
// UnmarshalBinary decodes exactly one message of the receiver's type and
// leaves the receiver unchanged on error.
type Message interface {
	WireType() Type
	encoding.BinaryAppender
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
}

// Compile-time checks that every message is a Message.
var (
	_ Message = (*Prepare)(nil)
	_ Message = (*Promise)(nil)
	_ Message = (*Accept)(nil)
	_ Message = (*Accepted)(nil)
	_ Message = (*ObserveRequest)(nil)
	_ Message = (*ObserveEvent)(nil)
	_ Message = (*ProposeRequest)(nil)
	_ Message = (*ProposeReply)(nil)
	_ Message = (*Probe)(nil)
	_ Message = (*ProbeReply)(nil)
)

// PeekType returns the type of the encoded message in data, checking only
// its two header bytes (ErrTruncated, ErrVersion, or ErrType for an unknown
// tag).
func PeekType(data []byte) (Type, error) {
	d := Decoder{data: data}
	v := d.Byte()
	if d.err == nil && v != Version {
		d.fail(ErrVersion, 0, "version %d, want %d", v, Version)
	}
	t := Type(d.Byte())
	if d.err == nil && !t.known() {
		d.fail(ErrType, 1, "unknown tag %d", uint8(t))
	}
	if d.err != nil {
		return 0, d.err
	}
	return t, nil
}

// New returns a new zero message of type t, or nil if t is unknown.
func New(t Type) Message {
	switch t {
	case TypePrepare:
		return new(Prepare)
	case TypePromise:
		return new(Promise)
	case TypeAccept:
		return new(Accept)
	case TypeAccepted:
		return new(Accepted)
	case TypeObserveRequest:
		return new(ObserveRequest)
	case TypeObserveEvent:
		return new(ObserveEvent)
	case TypeProposeRequest:
		return new(ProposeRequest)
	case TypeProposeReply:
		return new(ProposeReply)
	case TypeProbe:
		return new(Probe)
	case TypeProbeReply:
		return new(ProbeReply)
	}
	return nil
}

// Decode decodes a message of whatever type data holds. Use it where the
// type is not known in advance; otherwise call UnmarshalBinary on a value of
// the expected type.
func Decode(data []byte) (Message, error) {
	t, err := PeekType(data)
	if err != nil {
		return nil, err
	}
	m := New(t)
	if err := m.UnmarshalBinary(data); err != nil {
		return nil, err
	}
	return m, nil
}

// headerLen is the size of the version byte and the type tag.
const headerLen = 2

func appendHeader(b []byte, t Type) []byte { return append(b, Version, byte(t)) }

// header reads and checks the version byte and the type tag.
func (d *Decoder) header(want Type) {
	v := d.Byte()
	if d.err == nil && v != Version {
		d.fail(ErrVersion, 0, "version %d, want %d", v, Version)
	}
	t := Type(d.Byte())
	if d.err == nil && t != want {
		d.fail(ErrType, 1, "got %v, want %v", t, want)
	}
}

// finish checks for trailing bytes and puts the message type in front of
// the field name of the error, if any.
func (d *Decoder) finish(t Type) error {
	d.field = ""
	err := d.Finish()
	if e, ok := err.(*Error); ok {
		if e.Field == "" {
			e.Field = t.String()
		} else {
			e.Field = t.String() + "." + e.Field
		}
	}
	return err
}

// tooLarge returns the encoding error for a field over a limit.
func tooLarge(t Type, field string, n, limit int) error {
	return fmt.Errorf("%w: %v.%s has length %d, limit %d", ErrTooLarge, t, field, n, limit)
}
