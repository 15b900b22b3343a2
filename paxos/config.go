package paxos

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/synod-go/synod/log"
)

// Config configures one node. Zero values of the tuning fields take the
// documented defaults; New fills them in on its own copy.
type Config struct {
	// ID is this node's id; it must appear in the membership passed to
	// Start. Required to be unique in the cluster.
	ID NodeID

	// PromiseLog, AcceptedLog and RecordedLog hold the acceptor's promise
	// (and the node's done watermark), the acceptor's accepted entries, and
	// the observer's chosen values. Required. They must be durable
	// (log.OpenFile or log.OpenBadger) unless Volatile is set; they may be
	// three Logs of one database.
	PromiseLog  log.Log
	AcceptedLog log.Log
	RecordedLog log.Log

	// AcceptorDialer, ObserverDialer and ProposerDialer return clients for a
	// remote member's roles. They are called once per member by Start; the
	// clients are used concurrently. TransportDialers builds all three from a
	// transport.Dialer. Required.
	AcceptorDialer func(m Member) (AcceptorClient, error)
	ObserverDialer func(m Member) (ObserverClient, error)
	ProposerDialer func(m Member) (ProposerClient, error)

	// Clock is the time source for every timer. Default: the real clock.
	Clock clockwork.Clock
	// Logger receives the node's logs. Default: discard.
	Logger *slog.Logger

	// ElectionTimeout is how long a follower waits without hearing a leader
	// before it probes and campaigns; each wait is randomized in
	// [ElectionTimeout, 2*ElectionTimeout). Each campaign of this node's
	// that fails in a row (preempted, or no quorum of promises within
	// twice its Prepare timeout) doubles the wait and the Prepare timeout
	// (RPCTimeout), up to 8× in all; winning or hearing a leader resets
	// them. Default 500ms.
	ElectionTimeout time.Duration
	// HeartbeatInterval is how often an idle leader tells followers it is
	// alive and how far the log is committed. Must be well below
	// ElectionTimeout. Default 50ms.
	HeartbeatInterval time.Duration
	// RPCTimeout bounds each call to a remote role (a leader's calls to an
	// acceptor share a deadline for a tenth of it, so one is cut off after
	// between 0.9 and 1 RPCTimeout). Default 1s.
	RPCTimeout time.Duration
	// MaxBatch is the most values one Accept carries. 1 turns batching off.
	// Default 256.
	MaxBatch int
	// MaxBatchBytes bounds the value bytes of one Accept (a single larger
	// value still goes alone), and of one page of this node's acceptor's
	// promises: a Prepare's reply carries at most that much of the
	// accepted values it must report (or one larger value), and the
	// candidate asks for the rest page by page, so no reply outgrows what
	// the transport carries however long the accepted tail. Default 1 MiB.
	MaxBatchBytes int
	// MaxInflight is the most Accepts (batches) a leader has in flight at
	// once (the pipeline window). A leader batches naturally: while one
	// batch is in flight, the values that queue behind it go out together
	// when it is answered; only full batches (MaxBatch values or
	// MaxBatchBytes) are sent into the window before that. Default 8.
	MaxInflight int
	// MaxPending bounds the values queued at the leader behind the window,
	// and separately the proposals handed to the node but not yet queued.
	// When followers or disks fall behind, Propose blocks while both are
	// full, until its context ends (it then returns the context's error,
	// and the caller may retry). Default 4096.
	MaxPending int
	// MaxValueSize is the largest value Propose accepts. Default
	// DefaultMaxValueSize (8 MiB). A value must fit, with a few dozen
	// bytes around it, both one write of the node's logs (an acceptor
	// whose log refuses a write stops answering: log.MaxFileWrite for a
	// FileDB) and one message of the transport (tcp.DefaultMaxFrameSize
	// leaves room for 16 MiB): raise it only as far as both allow, and
	// with a smaller tcp MaxFrameSize lower it and MaxBatchBytes to
	// match, or a large value is refused by the transport at every try.
	MaxValueSize int
	// CatchupDelay is how long an observer waits for the local acceptor to
	// learn the slots it knows to be chosen before fetching them from
	// peers: it catches up once, a CatchupDelay after it saw itself behind,
	// it has still not reached what was chosen then. Default
	// 2*HeartbeatInterval.
	CatchupDelay time.Duration

	// HoleTimeout is how long a leader lets a slot below a chosen one stay
	// empty (ProposeAt beyond the next free slot leaves such holes) before
	// it fills it with a no-op, so that in-order delivery and the release
	// of memory are not stalled forever. Negative: never. Default
	// 2*ElectionTimeout.
	HoleTimeout time.Duration

	// Volatile permits a PromiseLog or AcceptedLog that is not durable
	// (log.Memory). Without it New refuses such logs with ErrNotDurable: an
	// acceptor that forgets its promises and accepted values when its
	// process stops can, on rejoining under the same ID, let two different
	// values be chosen for one slot. A volatile node must therefore never
	// be restarted into a cluster that outlived it under the same ID; use
	// it for tests, or for a cluster whose nodes all start fresh together.
	// For a node that must survive restarts, use log.OpenFile or
	// log.OpenBadger.
	Volatile bool

	// Seed seeds the randomness of election timeouts and backoff. Default:
	// derived from ID.
	Seed int64
}

// DefaultMaxValueSize is Config.MaxValueSize's default: 8 MiB, which one
// write of the shipped logs takes with its record around it (log.FileDB
// writes at most log.MaxFileWrite, 16 MiB, at once) and one tcp frame
// carries with its message.
const DefaultMaxValueSize = 8 << 20

func (c *Config) withDefaults() Config {
	d := *c
	if d.Clock == nil {
		d.Clock = clockwork.NewRealClock()
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if d.ElectionTimeout == 0 {
		d.ElectionTimeout = 500 * time.Millisecond
	}
	if d.HeartbeatInterval == 0 {
		d.HeartbeatInterval = 50 * time.Millisecond
	}
	if d.RPCTimeout == 0 {
		d.RPCTimeout = time.Second
	}
	if d.MaxBatch == 0 {
		d.MaxBatch = 256
	}
	if d.MaxBatchBytes == 0 {
		d.MaxBatchBytes = 1 << 20
	}
	if d.MaxInflight == 0 {
		d.MaxInflight = 8
	}
	if d.MaxPending == 0 {
		d.MaxPending = 4096
	}
	if d.MaxValueSize == 0 {
		d.MaxValueSize = DefaultMaxValueSize
	}
	if d.HoleTimeout == 0 {
		d.HoleTimeout = 2 * d.ElectionTimeout
	}
	if d.CatchupDelay == 0 {
		d.CatchupDelay = 2 * d.HeartbeatInterval
	}
	if d.Seed == 0 {
		d.Seed = int64(d.ID)*7919 + 1
	}
	return d
}

// Validate reports the first problem with c, after defaults are applied.
func (c *Config) Validate() error {
	d := c.withDefaults()
	var errs []error
	if d.PromiseLog == nil || d.AcceptedLog == nil || d.RecordedLog == nil {
		errs = append(errs, errors.New("PromiseLog, AcceptedLog and RecordedLog are required"))
	}
	if d.PromiseLog != nil && d.AcceptedLog != nil && !d.Volatile && (!log.IsDurable(d.PromiseLog) || !log.IsDurable(d.AcceptedLog)) {
		errs = append(errs, fmt.Errorf("%w: PromiseLog and AcceptedLog must be durable (log.OpenFile, log.OpenBadger), or set Config.Volatile for tests", ErrNotDurable))
	}
	if d.AcceptorDialer == nil || d.ObserverDialer == nil || d.ProposerDialer == nil {
		errs = append(errs, errors.New("AcceptorDialer, ObserverDialer and ProposerDialer are required (see TransportDialers)"))
	}
	if d.ElectionTimeout < 0 || d.HeartbeatInterval < 0 || d.RPCTimeout < 0 || d.CatchupDelay < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if d.HeartbeatInterval*2 > d.ElectionTimeout {
		errs = append(errs, fmt.Errorf("HeartbeatInterval (%v) must be at most half of ElectionTimeout (%v)", d.HeartbeatInterval, d.ElectionTimeout))
	}
	if d.MaxBatch < 0 || d.MaxBatchBytes < 0 || d.MaxInflight < 0 || d.MaxPending < 0 || d.MaxValueSize < 0 {
		errs = append(errs, errors.New("MaxBatch, MaxBatchBytes, MaxInflight, MaxPending and MaxValueSize must not be negative"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("paxos: invalid config: %w", errors.Join(errs...))
	}
	return nil
}
