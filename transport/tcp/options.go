package tcp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/jonboulle/clockwork"
)

// Options configures a Server or a Dialer. The zero value is valid: every
// zero field takes its documented default. Both ends of a connection should
// use the same MaxFrameSize.
type Options struct {
	// TLS, when set, turns on mutual TLS. The same config serves both
	// sides, so it needs Certificates (this node's certificate and key),
	// RootCAs (to verify servers) and ClientCAs (to verify clients); see
	// NodeCert.TLSConfig. A Server requires and verifies a client
	// certificate (ClientAuth is forced to tls.RequireAndVerifyClientCert);
	// a Dialer verifies the server's certificate against the host of the
	// address it dials (or "localhost" for unix sockets) unless ServerName
	// is set. The config is cloned; it must not be changed after use.
	TLS *tls.Config

	// MaxFrameSize is the largest message (request, reply or stream
	// message) a connection sends or accepts, in bytes; each travels in one
	// frame, whose header adds at most 1,058 bytes (most of it for the
	// route name; typically 3 to 30). Default DefaultMaxFrameSize (16 MiB
	// and 64 KiB); at least 1 KiB, at most 1 GiB. Sending a larger
	// message fails with an error wrapping transport.ErrTooLarge and
	// leaves the connection up; receiving a length prefix over
	// MaxFrameSize plus that header bound drops the connection without
	// reading or allocating the frame.
	MaxFrameSize int

	// MaxConcurrentCalls bounds the unary handlers a Server runs at once,
	// over all its connections. A call over the limit fails at once with an
	// error wrapping transport.ErrUnreachable (the handler did not run).
	// Default 1024.
	MaxConcurrentCalls int

	// MaxConcurrentStreams bounds the stream handlers a Server runs at
	// once, like MaxConcurrentCalls. Default 1024.
	MaxConcurrentStreams int

	// StreamWindow is the flow-control window of a stream, in bytes: how
	// much a sender may have in flight that the receiving side has not yet
	// read with ReadMsg. Each message counts its length plus 64 bytes.
	// Default 1 MiB.
	StreamWindow int

	// WriteBuffer is how many bytes of outgoing frames a connection queues
	// before senders wait for the socket. Default 1 MiB.
	WriteBuffer int

	// DialTimeout bounds connecting to a peer, TLS handshake included.
	// Default 5 s. It is a socket deadline, so wall-clock time.
	DialTimeout time.Duration

	// HandshakeTimeout bounds, on an accepted connection, the TLS handshake
	// and the arrival of the client's preamble, and on a dialed connection
	// the arrival of the server's. Default 5 s; wall-clock time.
	HandshakeTimeout time.Duration

	// BackoffMin and BackoffMax bound the wait, measured on Clock, before
	// redialing a peer whose last dial failed. The wait doubles with each
	// failure, with jitter (a random value in [d/2, d]). While it runs,
	// calls to that peer fail at once with transport.ErrUnreachable.
	// Defaults 20 ms and 2 s.
	BackoffMin, BackoffMax time.Duration

	// Clock measures backoff and the deadlines forwarded to remote
	// handlers. Default: the real clock.
	Clock clockwork.Clock

	// Logger receives connection-level events (rejected handshakes,
	// malformed frames, dropped connections). Default: discard.
	Logger *slog.Logger
}

// Defaults.
const (
	// DefaultMaxFrameSize is 16 MiB and 64 KiB: room for a 16 MiB value
	// (twice paxos's default MaxValueSize) with the message that carries
	// it.
	DefaultMaxFrameSize         = 16<<20 + 64<<10
	DefaultMaxConcurrentCalls   = 1024
	DefaultMaxConcurrentStreams = 1024
	DefaultStreamWindow         = 1 << 20
	DefaultWriteBuffer          = 1 << 20
	DefaultDialTimeout          = 5 * time.Second
	DefaultHandshakeTimeout     = 5 * time.Second
	DefaultBackoffMin           = 20 * time.Millisecond
	DefaultBackoffMax           = 2 * time.Second
)

// Validate reports whether o is usable: no negative field, MaxFrameSize in
// [1 KiB, 1 GiB] when set, BackoffMin <= BackoffMax when both are set.
func (o *Options) Validate() error {
	var errs []error
	neg := func(name string, v int64) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("tcp: Options.%s is negative", name))
		}
	}
	neg("MaxFrameSize", int64(o.MaxFrameSize))
	neg("MaxConcurrentCalls", int64(o.MaxConcurrentCalls))
	neg("MaxConcurrentStreams", int64(o.MaxConcurrentStreams))
	neg("StreamWindow", int64(o.StreamWindow))
	neg("WriteBuffer", int64(o.WriteBuffer))
	neg("DialTimeout", int64(o.DialTimeout))
	neg("HandshakeTimeout", int64(o.HandshakeTimeout))
	neg("BackoffMin", int64(o.BackoffMin))
	neg("BackoffMax", int64(o.BackoffMax))
	if o.MaxFrameSize != 0 && (o.MaxFrameSize < 1<<10 || o.MaxFrameSize > 1<<30) {
		errs = append(errs, fmt.Errorf("tcp: Options.MaxFrameSize %d not in [1 KiB, 1 GiB]", o.MaxFrameSize))
	}
	if o.StreamWindow > math.MaxInt32 {
		errs = append(errs, errors.New("tcp: Options.StreamWindow over 2 GiB"))
	}
	if o.BackoffMin > 0 && o.BackoffMax > 0 && o.BackoffMin > o.BackoffMax {
		errs = append(errs, errors.New("tcp: Options.BackoffMin > BackoffMax"))
	}
	return errors.Join(errs...)
}

// withDefaults validates o and returns a copy with defaults filled in.
func (o Options) withDefaults() (Options, error) {
	if err := o.Validate(); err != nil {
		return o, err
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.MaxFrameSize, DefaultMaxFrameSize)
	def(&o.MaxConcurrentCalls, DefaultMaxConcurrentCalls)
	def(&o.MaxConcurrentStreams, DefaultMaxConcurrentStreams)
	def(&o.StreamWindow, DefaultStreamWindow)
	def(&o.WriteBuffer, DefaultWriteBuffer)
	defDur(&o.DialTimeout, DefaultDialTimeout)
	defDur(&o.HandshakeTimeout, DefaultHandshakeTimeout)
	defDur(&o.BackoffMin, DefaultBackoffMin)
	defDur(&o.BackoffMax, DefaultBackoffMax)
	o.BackoffMax = max(o.BackoffMax, o.BackoffMin)
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.TLS != nil {
		o.TLS = o.TLS.Clone()
	}
	return o, nil
}
