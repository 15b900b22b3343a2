package kvstore

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/synod-go/synod/log"
	"github.com/synod-go/synod/transport"
)

// Defaults of Config and ClientConfig.
const (
	DefaultMaxKeySize          = 1 << 10
	DefaultMaxValueSize        = 4 << 20
	DefaultSessionTTL          = 10 * time.Minute
	DefaultSnapshotEvery       = 10000
	DefaultSnapshotBytes       = 16 << 20
	DefaultSnapshotChunkSize   = 512 << 10
	DefaultFetchTimeout        = 10 * time.Second
	DefaultMaxPendingProposals = 1024
	DefaultMaxPendingBytes     = 64 << 20
	DefaultAttemptTimeout      = time.Second
	DefaultMaxAttemptTimeout   = 8 * time.Second
)

// Config configures a Server. Zero values of the tuning fields take the
// documented defaults; NewServer fills them in on its own copy.
type Config struct {
	// Snapshots is the log the server keeps its snapshots in. Required,
	// and never shared with another server or with the paxos logs (a
	// prefix of the node's log.BadgerDB of its own, say "kvstore"). With a
	// durable log a restarted server comes back from its newest snapshot
	// and replays the rest of the log; with a log.Memory it must fetch a
	// snapshot from a peer once the log has been compacted.
	Snapshots log.Log

	// Peers are the addresses of the other servers of the cluster, whose
	// transport Mux serves Register. A server that fell behind what the
	// others still hold fetches a snapshot from one of them. Empty for a
	// single-server cluster.
	Peers []string
	// Dialer reaches Peers. Required when Peers is not empty.
	Dialer transport.Dialer

	// Clock stamps the ops this server proposes (the stamps make the log
	// time that expires sessions) and drives every timer. Default: the
	// real clock.
	Clock clockwork.Clock
	// Logger receives the server's logs. Default: discard.
	Logger *slog.Logger

	// SessionTTL: a client session with no op applied for this long, in
	// log time, is dropped by every replica at the same slot. It must be
	// the same on every server of a cluster, and well above both the
	// servers' clock skew and the time a client may stay cut off from
	// every server. Default DefaultSessionTTL (10 minutes).
	SessionTTL time.Duration

	// MaxKeySize and MaxValueSize bound the key and the value (of Put) or
	// appended bytes (of Append) of one request; larger ones are refused
	// before proposing. An encoded op (value, key and about 40 bytes) must
	// fit in the paxos Config.MaxValueSize. Defaults DefaultMaxKeySize
	// (1 KiB) and DefaultMaxValueSize (4 MiB).
	MaxKeySize   int
	MaxValueSize int

	// The server takes a snapshot once SnapshotEvery slots, or
	// SnapshotBytes bytes of chosen values, have been applied since the
	// last one, then compacts the paxos log below it. Defaults
	// DefaultSnapshotEvery (10000 slots) and DefaultSnapshotBytes (16 MiB).
	SnapshotEvery int
	SnapshotBytes int64
	// SnapshotChunkSize is the target size of one snapshot chunk, both in
	// the snapshot log and on the wire (a chunk is larger only when a
	// single key does not fit). At least 16 KiB. Default
	// DefaultSnapshotChunkSize (512 KiB).
	SnapshotChunkSize int
	// MaxPendingProposals and MaxPendingBytes bound the proposals a server
	// has in flight (a proposal goes on after its client gave up, until it
	// is chosen or the server stops); past them, requests are answered
	// "busy" and the client tries elsewhere. Defaults
	// DefaultMaxPendingProposals (1024) and DefaultMaxPendingBytes
	// (64 MiB).
	MaxPendingProposals int
	MaxPendingBytes     int64
	// FetchTimeout aborts a snapshot transfer from a peer that sends
	// nothing for this long. Default DefaultFetchTimeout (10s).
	FetchTimeout time.Duration
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.Clock == nil {
		d.Clock = clockwork.NewRealClock()
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.SessionTTL == 0 {
		d.SessionTTL = DefaultSessionTTL
	}
	if d.MaxKeySize == 0 {
		d.MaxKeySize = DefaultMaxKeySize
	}
	if d.MaxValueSize == 0 {
		d.MaxValueSize = DefaultMaxValueSize
	}
	if d.SnapshotEvery == 0 {
		d.SnapshotEvery = DefaultSnapshotEvery
	}
	if d.SnapshotBytes == 0 {
		d.SnapshotBytes = DefaultSnapshotBytes
	}
	if d.SnapshotChunkSize == 0 {
		d.SnapshotChunkSize = DefaultSnapshotChunkSize
	}
	if d.FetchTimeout == 0 {
		d.FetchTimeout = DefaultFetchTimeout
	}
	if d.MaxPendingProposals == 0 {
		d.MaxPendingProposals = DefaultMaxPendingProposals
	}
	if d.MaxPendingBytes == 0 {
		d.MaxPendingBytes = DefaultMaxPendingBytes
	}
	return d
}

// Validate reports the problems with c, after defaults are applied.
func (c *Config) Validate() error {
	d := c.withDefaults()
	var errs []error
	if d.Snapshots == nil {
		errs = append(errs, errors.New("the Snapshots log is required"))
	}
	if len(d.Peers) > 0 && d.Dialer == nil {
		errs = append(errs, errors.New("a Dialer is required with Peers"))
	}
	if d.SessionTTL < 0 || d.FetchTimeout < 0 {
		errs = append(errs, errors.New("SessionTTL and FetchTimeout must not be negative"))
	}
	errs = append(errs, checkLimits(d.MaxKeySize, d.MaxValueSize)...)
	if d.SnapshotEvery < 0 || d.SnapshotBytes < 0 {
		errs = append(errs, errors.New("SnapshotEvery and SnapshotBytes must not be negative"))
	}
	if d.MaxPendingProposals < 0 || d.MaxPendingBytes < 0 {
		errs = append(errs, errors.New("MaxPendingProposals and MaxPendingBytes must not be negative"))
	}
	if d.SnapshotChunkSize < 16<<10 {
		errs = append(errs, fmt.Errorf("SnapshotChunkSize %d is below 16 KiB", d.SnapshotChunkSize))
	}
	if len(errs) > 0 {
		return fmt.Errorf("kvstore: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// maxLimit keeps an op within wire.MaxValueSize (64 MiB) with room to spare.
const maxLimit = 32 << 20

func checkLimits(key, value int) []error {
	var errs []error
	if key < 0 || value < 0 {
		errs = append(errs, errors.New("MaxKeySize and MaxValueSize must not be negative"))
	}
	if key > maxLimit || value > maxLimit {
		errs = append(errs, fmt.Errorf("MaxKeySize and MaxValueSize must be at most %d", maxLimit))
	}
	return errs
}

// ClientConfig configures a Client. Zero values of the tuning fields take
// the documented defaults.
type ClientConfig struct {
	// Dialer reaches the servers. Required.
	Dialer transport.Dialer
	// Servers are the addresses of the servers (their Mux serves
	// Register), tried in turn. Required. A client bound to one server,
	// which waits for that server whatever happens, lists only it.
	Servers []string

	// AttemptTimeout bounds one attempt at one server in the first round
	// through Servers; each later round doubles it, up to
	// MaxAttemptTimeout. Defaults DefaultAttemptTimeout (1s) and
	// DefaultMaxAttemptTimeout (8s).
	AttemptTimeout    time.Duration
	MaxAttemptTimeout time.Duration

	// MaxKeySize and MaxValueSize are checked before sending, with the
	// defaults of Config. Servers check their own limits again.
	MaxKeySize   int
	MaxValueSize int

	// Clock drives attempt timeouts and backoff. Default: the real clock.
	Clock clockwork.Clock
	// Logger receives the client's logs. Default: discard.
	Logger *slog.Logger
}

func (c *ClientConfig) withDefaults() ClientConfig {
	d := *c
	if d.AttemptTimeout == 0 {
		d.AttemptTimeout = DefaultAttemptTimeout
	}
	if d.MaxAttemptTimeout == 0 {
		d.MaxAttemptTimeout = max(DefaultMaxAttemptTimeout, d.AttemptTimeout)
	}
	if d.MaxKeySize == 0 {
		d.MaxKeySize = DefaultMaxKeySize
	}
	if d.MaxValueSize == 0 {
		d.MaxValueSize = DefaultMaxValueSize
	}
	if d.Clock == nil {
		d.Clock = clockwork.NewRealClock()
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return d
}

// Validate reports the problems with c, after defaults are applied.
func (c *ClientConfig) Validate() error {
	d := c.withDefaults()
	var errs []error
	if d.Dialer == nil {
		errs = append(errs, errors.New("a Dialer is required"))
	}
	if len(d.Servers) == 0 {
		errs = append(errs, errors.New("the Servers list must not be empty"))
	}
	if d.AttemptTimeout < 0 || d.MaxAttemptTimeout < d.AttemptTimeout {
		errs = append(errs, errors.New("AttemptTimeout must be positive and at most MaxAttemptTimeout"))
	}
	errs = append(errs, checkLimits(d.MaxKeySize, d.MaxValueSize)...)
	if len(errs) > 0 {
		return fmt.Errorf("kvstore: invalid client config: %w", errors.Join(errs...))
	}
	return nil
}

// checkRequest refuses what no server would propose.
func checkRequest(o *op, maxKey, maxValue int) error {
	switch {
	case !o.Kind.valid():
		return fmt.Errorf("%w: %v", ErrUnknownOp, o.Kind)
	case !o.Kind.hasKey():
		return nil
	case len(o.Key) == 0:
		return ErrEmptyKey
	case len(o.Key) > maxKey:
		return fmt.Errorf("%w: %d bytes, limit %d", ErrKeyTooLarge, len(o.Key), maxKey)
	case len(o.Value) > maxValue:
		return fmt.Errorf("%w: %d bytes, limit %d", ErrValueTooLarge, len(o.Value), maxValue)
	}
	return nil
}
