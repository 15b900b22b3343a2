package kvstore

import (
	"errors"
	"fmt"

	"github.com/synod-go/synod/internal/wire"
)

// opVersion is the first byte of every encoded op, request and reply.
// A server refuses other versions; a replica skips (and logs) a chosen op it
// cannot decode, which every replica of the same release does alike.
const opVersion byte = 1

// opKind says what an op does.
type opKind byte

const (
	// opRegister opens the session of a client (no key, no value).
	opRegister opKind = 1
	// opGet reads a key (key, no value).
	opGet opKind = 2
	// opPut replaces a key's value (key and value).
	opPut opKind = 3
	// opAppend appends to a key's value (key and the appended bytes).
	opAppend opKind = 4
)

func (k opKind) String() string {
	switch k {
	case opRegister:
		return "Register"
	case opGet:
		return "Get"
	case opPut:
		return "Put"
	case opAppend:
		return "Append"
	}
	return fmt.Sprintf("opKind(%d)", byte(k))
}

func (k opKind) valid() bool { return k >= opRegister && k <= opAppend }

// hasKey and hasValue say which fields the kind carries on the wire.
func (k opKind) hasKey() bool   { return k != opRegister }
func (k opKind) hasValue() bool { return k == opPut || k == opAppend }
func (k opKind) isWrite() bool  { return k == opPut || k == opAppend }

// op is one client operation. It is both the request a client sends
// (Stamp 0) and the value a server proposes to the log (Stamp set).
//
// Encoding (canonical; anything else is refused):
//
//	version(1) | kind(1) | client uvarint | seq uvarint | ack uvarint |
//	stamp varint | key bytes (not Register) | value bytes (Put, Append)
//
// where bytes is a uvarint length and the bytes (wire.AppendBytes).
type op struct {
	Kind   opKind
	Client uint64 // the client's session id (random, 64 bits)
	// Seq numbers the client's requests from 1 (0 for Register). Together
	// with Client it identifies a request across retries.
	Seq uint64
	// Ack: the client no longer needs the outcome of its requests numbered
	// below Ack (it has their replies, or gave up on them). Servers drop
	// what they keep for those requests, and never execute them later.
	Ack uint64
	// Stamp is the proposing server's clock, in Unix nanoseconds. The
	// largest Stamp applied so far is the log time, which drives session
	// expiry identically on every replica.
	Stamp int64
	Key   []byte
	// Value is the new value (Put) or the bytes to append (Append): never
	// the resulting value.
	Value []byte
}

// appendOp appends the encoding of o to b.
func appendOp(b []byte, o *op) []byte {
	b = append(b, opVersion, byte(o.Kind))
	b = wire.AppendUvarint(b, o.Client)
	b = wire.AppendUvarint(b, o.Seq)
	b = wire.AppendUvarint(b, o.Ack)
	b = wire.AppendVarint(b, o.Stamp)
	if o.Kind.hasKey() {
		b = wire.AppendBytes(b, o.Key)
	}
	if o.Kind.hasValue() {
		b = wire.AppendBytes(b, o.Value)
	}
	return b
}

// encodedOpLen returns len(appendOp(nil, o)).
func encodedOpLen(o *op) int {
	n := 2 + wire.UvarintLen(o.Client) + wire.UvarintLen(o.Seq) + wire.UvarintLen(o.Ack) + wire.VarintLen(o.Stamp)
	if o.Kind.hasKey() {
		n += wire.BytesLen(len(o.Key))
	}
	if o.Kind.hasValue() {
		n += wire.BytesLen(len(o.Value))
	}
	return n
}

// decodeOp decodes an op. Key and Value alias b (their capacity is
// limited, so appending to them never writes into b). An unknown kind is
// an error wrapping ErrUnknownOp; any other bad input wraps ErrMalformed.
func decodeOp(b []byte) (*op, error) {
	d := wire.NewDecoder(b)
	if v := d.Byte(); d.Err() == nil && v != opVersion {
		return nil, fmt.Errorf("%w: op version %d, want %d", ErrMalformed, v, opVersion)
	}
	o := &op{Kind: opKind(d.Byte())}
	if d.Err() == nil && !o.Kind.valid() {
		return nil, fmt.Errorf("%w: kind %d", ErrUnknownOp, byte(o.Kind))
	}
	o.Client = d.Uvarint()
	o.Seq = d.Uvarint()
	o.Ack = d.Uvarint()
	o.Stamp = d.Varint()
	if o.Kind.hasKey() {
		o.Key = d.Bytes()
	}
	if o.Kind.hasValue() {
		o.Value = d.Bytes()
	}
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("%w: op: %w", ErrMalformed, err)
	}
	return o, nil
}

// replyStatus says how a server answered a request.
type replyStatus byte

const (
	// statusOK: done (Put, Append, Register), or Get found the value.
	statusOK replyStatus = 0
	// statusNoKey: Get found no value.
	statusNoKey replyStatus = 1
	// statusExpired: the client's session is unknown to the replicas; the
	// write was not applied at this slot.
	statusExpired replyStatus = 2
	// statusRetry: the server could not get an answer (its proposal
	// failed, it is shutting down, or it skipped the slot by installing a
	// snapshot). The request may or may not have been applied; retry it,
	// here or on another server.
	statusRetry replyStatus = 3
	// statusBadRequest: refused before proposing; Code says why.
	statusBadRequest replyStatus = 4
	// statusStale: the request is below the client's acknowledged
	// watermark; its outcome is no longer tracked.
	statusStale replyStatus = 5
)

const lastStatus = statusStale

// badCode says why a request was refused.
type badCode byte

const (
	badEmptyKey badCode = iota + 1
	badKeyTooLarge
	badValueTooLarge
	badUnknownOp
	badMalformed
)

var badErrors = map[badCode]error{
	badEmptyKey:      ErrEmptyKey,
	badKeyTooLarge:   ErrKeyTooLarge,
	badValueTooLarge: ErrValueTooLarge,
	badUnknownOp:     ErrUnknownOp,
	badMalformed:     ErrMalformed,
}

// badCodeOf returns the code for one of the request errors.
func badCodeOf(err error) badCode {
	for c, e := range badErrors {
		if errors.Is(err, e) {
			return c
		}
	}
	return badMalformed
}

// reply is a server's answer to a request.
//
// Encoding: version(1) | status(1) | code(1) | value bytes | detail bytes.
type reply struct {
	Status replyStatus
	Code   badCode // statusBadRequest only, else 0
	Value  []byte  // statusOK of a Get only
	Detail string  // a human-readable explanation of an error status
}

func appendReply(b []byte, r *reply) []byte {
	b = append(b, opVersion, byte(r.Status), byte(r.Code))
	b = wire.AppendBytes(b, r.Value)
	return wire.AppendString(b, r.Detail)
}

func decodeReply(b []byte) (*reply, error) {
	d := wire.NewDecoder(b)
	if v := d.Byte(); d.Err() == nil && v != opVersion {
		return nil, fmt.Errorf("%w: reply version %d, want %d", ErrMalformed, v, opVersion)
	}
	r := &reply{Status: replyStatus(d.Byte()), Code: badCode(d.Byte())}
	r.Value = d.Bytes()
	r.Detail = string(d.Bytes())
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("%w: reply: %w", ErrMalformed, err)
	}
	if r.Status > lastStatus {
		return nil, fmt.Errorf("%w: reply status %d", ErrMalformed, r.Status)
	}
	if (r.Status == statusBadRequest) != (r.Code != 0) || (r.Code != 0 && badErrors[r.Code] == nil) {
		return nil, fmt.Errorf("%w: reply code %d with status %d", ErrMalformed, r.Code, r.Status)
	}
	return r, nil
}
