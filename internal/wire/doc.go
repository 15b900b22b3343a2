// Package wire defines Synod's protocol messages and their compact binary
// encoding.
//
// # Messages
//
// Each message type (Prepare, Promise, Accept, Accepted, ObserveRequest,
// ObserveEvent, ProposeRequest, ProposeReply, Probe, ProbeReply) implements
// Message: AppendBinary (encoding.BinaryAppender), MarshalBinary and
// UnmarshalBinary. An encoding is
//
//	Version (1 byte) | Type tag (1 byte) | fields
//
// where the fields are uvarints, bools (one byte, 0 or 1), flag bytes,
// length-prefixed values, and lists of entries whose slots and ballots are
// delta-encoded (the layout of each message is documented beside its
// methods, in encoding.go and entries.go). Decoding a
// message of another type or version fails with ErrType or ErrVersion;
// PeekType reads the tag alone and Decode decodes whatever type arrives.
//
// The encoding is canonical: a message has exactly one encoding, and the
// decoder rejects every other byte string (trailing bytes, non-minimal
// varints, unknown flag bits, bools other than 0 and 1, unknown enum
// values). The one thing not preserved is nil versus empty: an empty Value,
// Entries or Chosen encodes like a nil one and decodes as nil. A NoOp entry
// carries no value; encoding one with a non-empty Value is ErrMalformed.
//
// # Ownership and limits
//
// UnmarshalBinary copies everything out of its input, so the caller may
// reuse the input buffer as soon as it returns; the values of one message
// share one new backing array (each value's capacity equals its length, so
// appending to one value does not touch another). On error the receiver is
// left unchanged.
//
// No message may carry a value longer than MaxValueSize or a list longer
// than MaxEntries (ErrTooLarge, both when encoding and when decoding). A
// decoder checks every length and count against the input that remains
// before allocating, so memory allocated while decoding is bounded by a small
// multiple of the input's length whatever the input claims: a transport that
// bounds its frame size bounds decoding too.
//
// # Primitives
//
// The building blocks are exported for other internal packages (key/value
// operations, transport framing): AppendUvarint, AppendVarint, AppendBool,
// AppendBytes and AppendString append to a caller's buffer without allocating
// when it has room, and a Decoder reads them back. A Decoder never panics;
// its first error sticks (later reads return zero values), so a caller
// decodes a whole structure and checks Err or Finish once. Errors are
// *Error values wrapping one of the sentinels ErrTruncated, ErrTrailing,
// ErrVersion, ErrType, ErrTooLarge and ErrMalformed; test them with
// errors.Is. Any decoding error means the peer sent bytes this build cannot
// use: drop the message, and usually the connection; do not retry the same
// bytes.
//
// The package uses no reflection. Encoding only reads the message, so one
// message may be encoded by several goroutines at once; a Decoder, and a
// message being decoded into, belong to one goroutine.
package wire
