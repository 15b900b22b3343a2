package tcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/synod-go/synod/internal/wire"
)

// The wire format. See the package documentation for the layout.

// preamble opens every connection, in both directions: a magic string and
// the protocol version. A peer that sends anything else is not speaking this
// protocol (or not this version) and is dropped.
var preamble = [6]byte{'S', 'Y', 'N', 'O', 'D', protocolVersion}

const protocolVersion = 1

// Frame types.
const (
	frameCall        byte = 1 // client → server: id, timeout, route, request
	frameReply       byte = 2 // server → client: id, reply (or, for an open, the receive window)
	frameError       byte = 3 // server → client: id, code, message
	frameStreamOpen  byte = 4 // client → server: id, timeout, window, route
	frameStreamMsg   byte = 5 // either way: id, message
	frameStreamClose byte = 6 // either way: id, code, message (code 0: clean close)
	frameCancel      byte = 7 // client → server: id
	frameWindow      byte = 8 // either way: id, window increment in bytes
)

// Error codes carried by error and stream-close frames.
const (
	codeOK          byte = 0 // stream-close only: a clean close
	codeRemote      byte = 1 // the handler returned an error; message is its text
	codeUnknown     byte = 2 // no handler for the route
	codeTooLarge    byte = 3 // the reply was over the frame size limit
	codeOverloaded  byte = 4 // the server runs its maximum of concurrent handlers
	codeUnavailable byte = 5 // the server is shutting down
	codeCancelled   byte = 6 // the handler's or stream's context was cancelled
	codeAborted     byte = 7 // stream-close only: the opener closed its Conn
	codeDeadline    byte = 8 // the handler's or stream's deadline passed
)

const (
	lengthSize = 4 // the big-endian uint32 length prefix
	// maxRouteLen bounds a route name on the wire.
	maxRouteLen = 1024
	// maxErrorMsgLen bounds the text of an error frame; longer handler error
	// messages are truncated.
	maxErrorMsgLen = 1 << 10
	// maxHeaderLen bounds the header of a frame (type, id, timeout, window,
	// route): a frame body is at most MaxFrameSize + maxHeaderLen bytes.
	maxHeaderLen = 1 + 3*binary.MaxVarintLen64 + binary.MaxVarintLen16 + maxRouteLen
)

// errFrame is wrapped by every decoding error: the peer broke the protocol
// and the connection is dropped.
var errFrame = errors.New("tcp: malformed frame")

// frame is one decoded frame. Which fields are meaningful depends on typ.
type frame struct {
	typ     byte
	id      uint64
	timeout time.Duration // call, stream-open: the caller's remaining time; 0 for none
	window  uint64        // stream-open: the opener's receive window; window: the increment
	code    byte          // error, stream-close
	route   string        // call, stream-open
	payload []byte        // call, reply, stream-msg: the message; error, stream-close: the error text
}

// encodedLen returns the number of bytes appendFrame writes for f after the
// length prefix.
func (f *frame) encodedLen() int {
	n := 1 + wire.UvarintLen(f.id)
	switch f.typ {
	case frameCall:
		n += wire.UvarintLen(uint64(f.timeout)) + wire.BytesLen(len(f.route))
	case frameStreamOpen:
		n += wire.UvarintLen(uint64(f.timeout)) + wire.UvarintLen(f.window) + wire.BytesLen(len(f.route))
	case frameError, frameStreamClose:
		n++
	case frameWindow:
		n += wire.UvarintLen(f.window)
	}
	return n + len(f.payload)
}

// appendFrame appends f, length prefix included, to b. The caller has
// checked the payload against the size limit.
func appendFrame(b []byte, f *frame) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(f.encodedLen()))
	b = append(b, f.typ)
	b = wire.AppendUvarint(b, f.id)
	switch f.typ {
	case frameCall:
		b = wire.AppendUvarint(b, uint64(f.timeout))
		b = wire.AppendString(b, f.route)
	case frameStreamOpen:
		b = wire.AppendUvarint(b, uint64(f.timeout))
		b = wire.AppendUvarint(b, f.window)
		b = wire.AppendString(b, f.route)
	case frameError, frameStreamClose:
		b = append(b, f.code)
	case frameWindow:
		b = wire.AppendUvarint(b, f.window)
	}
	return append(b, f.payload...)
}

// decodeFrame parses the body of one frame (the bytes after the length
// prefix). f.payload aliases body. Any input either decodes or returns an
// error wrapping errFrame; it never panics. Varints must be minimal, so each
// frame has exactly one encoding.
func decodeFrame(body []byte, f *frame) error {
	var d wire.Decoder
	d.Reset(body)
	*f = frame{typ: d.Byte()}
	f.id = d.Uvarint()
	bad := func(format string, args ...any) {
		d.Fail(fmt.Errorf("%w: "+format, append([]any{errFrame}, args...)...))
	}
	timeout := func() time.Duration {
		v := d.Uvarint()
		if v > math.MaxInt64 {
			bad("timeout %d out of range", v)
			return 0
		}
		return time.Duration(v)
	}
	route := func() string {
		n := d.Uvarint()
		if n > maxRouteLen {
			bad("route length %d over %d", n, maxRouteLen)
			return ""
		}
		return string(d.Next(int(n)))
	}
	rest := func() []byte { return d.Next(d.Remaining()) }
	switch f.typ {
	case frameCall:
		f.timeout = timeout()
		f.route = route()
		f.payload = rest()
	case frameStreamOpen:
		f.timeout = timeout()
		f.window = d.Uvarint()
		f.route = route()
	case frameReply, frameStreamMsg:
		f.payload = rest()
	case frameError, frameStreamClose:
		f.code = d.Byte()
		f.payload = rest()
		if f.code == codeOK && f.typ == frameError {
			bad("error frame with code 0")
		}
	case frameCancel:
	case frameWindow:
		f.window = d.Uvarint()
		if d.Err() == nil && (f.window == 0 || f.window > math.MaxInt32) {
			bad("window increment %d", f.window)
		}
	default:
		if d.Err() == nil {
			bad("unknown frame type %d", f.typ)
		}
	}
	if err := d.Finish(); err != nil {
		if !errors.Is(err, errFrame) {
			err = fmt.Errorf("%w: %w", errFrame, err)
		}
		return err
	}
	return nil
}

// errFrameTooLarge is wrapped by readFrame's error for a length prefix over
// the limit.
var errFrameTooLarge = errors.New("tcp: frame over size limit")

// readFrame reads one frame body from r. A length prefix of 0 or above max
// is an error and nothing is allocated for it. Memory for a large frame
// grows with the bytes actually received, so a peer that announces a big
// frame and sends little costs little.
func readFrame(r io.Reader, max int) ([]byte, error) {
	var hdr [lengthSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return nil, fmt.Errorf("%w: empty frame", errFrame)
	}
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: length %d > %d", errFrameTooLarge, n, max)
	}
	return readBody(r, int(n))
}

// readChunk is the most readBody allocates ahead of the data it has.
const readChunk = 64 << 10

func readBody(r io.Reader, n int) ([]byte, error) {
	if n <= readChunk {
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, noEOF(err)
		}
		return b, nil
	}
	b := make([]byte, 0, readChunk)
	for len(b) < n {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), min(2*cap(b), n))
			copy(nb, b)
			b = nb
		}
		m, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err != nil && len(b) < n {
			return nil, noEOF(err)
		}
	}
	return b, nil
}

// noEOF turns a clean EOF in the middle of a frame into ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
